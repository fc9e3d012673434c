"""``autoops serve``: a local Langfuse-compatible endpoint on the local store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from autoops_cli.state import AppState

if TYPE_CHECKING:
    from autoops_cli.local_api.http.runner import ServeInfo


def serve(
    ctx: typer.Context,
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to listen on (loopback by default)."
    ),
    port: int = typer.Option(
        3000, "--port", min=0, max=65535, help="Port to listen on (0: any free port)."
    ),
    store: Path | None = typer.Option(
        None,
        "--store",
        help="Store file (default: $AUTOOPS_HOME/traces.db or .autoops/traces.db).",
        readable=False,  # opened by the store: its errors are exit 6 in one line
    ),
    allow_remote: bool = typer.Option(
        False,
        "--allow-remote",
        help="Allow a non-loopback --host (the API then answers other machines).",
    ),
    v4_only: bool = typer.Option(
        False,
        "--v4-only",
        help=(
            "Behave as Langfuse Cloud today (a v4 events_only deployment): the deprecated v3 "
            "reads answer 404 and /api/public/ingestion takes scores only."
        ),
    ),
    # Hidden: the server's limits (defaults in autoops_cli.local_api.http.limits.ServeLimits),
    # lowered by the tests that attack the server so they run in seconds.
    max_body_bytes: int | None = typer.Option(None, "--max-body-bytes", min=1, hidden=True),
    max_decompressed_bytes: int | None = typer.Option(
        None, "--max-decompressed-bytes", min=1, hidden=True
    ),
    body_timeout: float | None = typer.Option(None, "--body-timeout", min=0.1, hidden=True),
    header_timeout: float | None = typer.Option(None, "--header-timeout", min=0.1, hidden=True),
    drain_timeout: float | None = typer.Option(None, "--drain-timeout", min=0.1, hidden=True),
) -> None:
    """Serve the local store over Langfuse's public API, for laptops and CI.

    The official Langfuse SDKs and CLI, the AutoOps application and this toolkit talk to it as to Langfuse (API 4.35.0): OTLP trace ingestion, the legacy batch ingestion, scores, traces, sessions, observations, metrics, deletion. --v4-only answers as Langfuse Cloud does today, to see what breaks there. It prints the LANGFUSE_HOST and keys to use (the configured key pair, or a pair generated for this run). Stop it with Ctrl-C.

    All three exports it prints are needed: with LANGFUSE_HOST alone a client has no keys and stays in local mode.

    **Example:** autoops serve --port 3000, then in another terminal: export LANGFUSE_HOST=http://127.0.0.1:3000 LANGFUSE_PUBLIC_KEY=pk-lf-... LANGFUSE_SECRET_KEY=sk-lf-... (the values it printed) and autoops replay examples/events.jsonl
    """
    from autoops_cli.actions.serve import serve as run_serve
    from autoops_cli.output import write_generated_secret
    from config.settings import is_loopback_host

    state: AppState = ctx.obj
    config, _ = state.settings()
    out = state.output

    def announce(info: ServeInfo) -> None:
        if out.json_mode:
            # Not through emit_json: its secret redaction would mask a key generated for this
            # server run, which the client needs.
            write_generated_secret(json.dumps(info.as_dict()) + "\n")
            return
        out.info(f"autoops serve: Langfuse-compatible API on {info.host} (store {info.store})")
        out.line(f"export LANGFUSE_HOST={info.host}")
        out.line(f"export LANGFUSE_PUBLIC_KEY={info.public_key}")
        if info.secret_key:
            # Generated for this server run: the client cannot work without it.
            write_generated_secret(f"export LANGFUSE_SECRET_KEY={info.secret_key}\n")
        else:
            out.line("# LANGFUSE_SECRET_KEY: the configured secret key")
        if not is_loopback_host(host):
            out.warning(f"listening on {host}: other machines can reach this API")
        if v4_only:
            out.info(
                "v4-only: deprecated v3 reads answer 404, /api/public/ingestion takes scores only"
            )
        out.stderr.file.flush()
        out.stdout.file.flush()

    run_serve(
        config,
        host=host,
        port=port,
        store=store,
        allow_remote=allow_remote,
        verbose=out.verbose,
        on_ready=announce,
        max_body_bytes=max_body_bytes,
        max_decompressed_bytes=max_decompressed_bytes,
        body_timeout=body_timeout,
        header_timeout=header_timeout,
        drain_timeout=drain_timeout,
        v4_only=v4_only,
    )
