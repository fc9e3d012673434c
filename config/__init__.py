"""The AutoOps Langfuse integration core.

A library: the AutoOps application imports it without the CLI
(``from config.langfuse_integration import get_langfuse_integration``). It must not import
typer or rich, and heavy imports (langfuse, opentelemetry, httpx, pydantic-settings)
happen inside the functions that need them.
"""
