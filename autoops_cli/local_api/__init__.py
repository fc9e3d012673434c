"""The local Langfuse-compatible API over the local store (``autoops serve``).

``server`` holds the HTTP layer (Starlette on uvicorn); the other modules are plain
functions from a store and query parameters to Langfuse-shaped JSON, usable without HTTP
(``autoops traces`` / ``metrics`` in local mode answer through the same functions).
"""
