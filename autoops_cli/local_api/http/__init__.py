"""The HTTP side of ``autoops serve``: the Starlette app, ingestion, client limits, uvicorn."""
