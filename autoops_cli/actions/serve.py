"""``autoops serve``: the local Langfuse-compatible API over the local store, with its limits."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autoops_cli.local_api.http.runner import ServeInfo
    from config.settings import LangfuseConfig


def serve(
    config: LangfuseConfig,
    *,
    host: str,
    port: int,
    store: Path | None,
    allow_remote: bool,
    verbose: bool,
    on_ready: Callable[[ServeInfo], None],
    max_body_bytes: int | None = None,
    max_decompressed_bytes: int | None = None,
    body_timeout: float | None = None,
    header_timeout: float | None = None,
    drain_timeout: float | None = None,
    v4_only: bool = False,
) -> None:
    """Serve until stopped; ``on_ready`` gets the address and keys once the socket listens.

    Limits left as None keep their defaults (``ServeLimits``); the tests lower them.
    ``v4_only``: behave as Langfuse Cloud does today (``run_server``).
    """
    from autoops_cli.local_api.http.limits import ServeLimits
    from autoops_cli.local_api.http.runner import run_server
    from config.store.local_store import default_store_path

    default = ServeLimits()
    run_server(
        config,
        host=host,
        port=port,
        store_path=store or default_store_path(),
        allow_remote=allow_remote,
        verbose=verbose,
        on_ready=on_ready,
        limits=ServeLimits(
            max_body_bytes=max_body_bytes or default.max_body_bytes,
            max_decompressed_bytes=max_decompressed_bytes or default.max_decompressed_bytes,
            body_timeout_s=body_timeout or default.body_timeout_s,
            header_timeout_s=header_timeout or default.header_timeout_s,
            drain_timeout_s=drain_timeout or default.drain_timeout_s,
        ),
        v4_only=v4_only,
    )
