"""Langfuse-shaped answers from the local store: plain functions of a store and query parameters."""
