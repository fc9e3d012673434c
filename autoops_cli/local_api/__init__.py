"""The local Langfuse-compatible API over the local store (``autoops serve``).

``query`` holds plain functions from a store and query parameters to Langfuse-shaped JSON,
usable without HTTP (``autoops traces`` / ``metrics`` in local mode answer through the same
functions); ``http`` serves them (Starlette on uvicorn) and ingests OTLP traces and scores.
``http`` imports ``query``, never the reverse, and no module imports another in a circle.
Of the rest of the toolkit only the core (``config``) and the package's version are used.
"""
