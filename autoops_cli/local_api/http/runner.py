"""Starting ``autoops serve``: keys, the store, the socket, and uvicorn until interrupted.

uvicorn runs the application of ``server`` with the deadlines and sizes of ``limits``
(``ServeLimits``, and ``guarded_protocol`` in place of its plain h11 protocol).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoops_cli.local_api.http.limits import (
    KEEP_ALIVE_TIMEOUT_S,
    MAX_HEADER_BYTES,
    ServeLimits,
    guarded_protocol,
)
from config.errors import UsageError
from config.settings import LangfuseConfig, is_loopback_host

if TYPE_CHECKING:
    from autoops_cli.local_api.http.server import ServerSettings


@dataclass(frozen=True)
class ServeInfo:
    """What a client needs to talk to the server (printed at start)."""

    host: str
    public_key: str
    secret_key: str | None  # only when generated for this server: the user needs it
    store: Path

    def as_dict(self) -> dict[str, str | None]:
        """JSON form: ``LANGFUSE_HOST`` and keys to export."""
        return {
            "LANGFUSE_HOST": self.host,
            "LANGFUSE_PUBLIC_KEY": self.public_key,
            "LANGFUSE_SECRET_KEY": self.secret_key,
            "store": str(self.store),
        }


def server_keys(config: LangfuseConfig) -> tuple[str, str, bool]:
    """The configured key pair, or a new one generated for this server run."""
    if config.public_key and config.secret_key:
        return config.public_key, config.secret_key.get_secret_value(), False
    token = os.urandom(12).hex()
    return f"pk-lf-local-{token}", f"sk-lf-local-{os.urandom(16).hex()}", True


def bind_socket(host: str, port: int, *, allow_remote: bool) -> socket.socket:
    """A listening socket; anything but loopback needs ``allow_remote``."""
    if not is_loopback_host(host) and not allow_remote:
        raise UsageError(
            f"--host {host} would expose the local store beyond this machine",
            hint="pass --allow-remote to bind a non-loopback address",
        )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP.
    # Without it every answer (headers and body are two writes) waited ~40 ms for the
    # client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    return sock


def uvicorn_config(app: Any, settings: ServerSettings, *, verbose: bool) -> Any:
    """The uvicorn configuration of the server: guarded h11, no websockets, its limits."""
    import uvicorn

    limits = settings.limits
    return uvicorn.Config(
        app,
        http=guarded_protocol(limits.header_timeout_s, limits.drain_timeout_s),
        ws="none",  # the API has no websocket route: no upgrade is ever accepted
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        log_level="info" if verbose else "warning",
        access_log=verbose,
        timeout_keep_alive=KEEP_ALIVE_TIMEOUT_S,
        lifespan="off",
    )


def run_server(
    config: LangfuseConfig,
    *,
    host: str,
    port: int,
    store_path: Path,
    allow_remote: bool,
    verbose: bool,
    on_ready: Callable[[ServeInfo], None],
    limits: ServeLimits | None = None,
    v4_only: bool = False,
) -> None:
    """Serve until SIGINT/SIGTERM; ``on_ready`` is called once the socket listens.

    ``v4_only``: answer as a Langfuse v4 deployment in ``events_only`` write mode does
    (Langfuse Cloud after 2026-11-16): no deprecated v3 reads, no trace or observation
    events on the legacy batch route.
    """
    try:
        import uvicorn
    except ImportError:
        raise UsageError(
            "autoops serve needs its optional dependencies",
            hint="pip install 'autoops[serve]'",
        ) from None
    from autoops_cli.local_api.http.server import ServerSettings, create_app
    from config.store.local_store import LocalStore

    public_key, secret_key, generated = server_keys(config)
    sock = bind_socket(host, port, allow_remote=allow_remote)
    store = LocalStore(store_path)
    settings = ServerSettings(
        public_key=public_key,
        secret_key=secret_key,
        limits=limits or ServeLimits(),
        v4_only=v4_only,
    )
    app = create_app(settings, store)
    bound_host, bound_port = sock.getsockname()[:2]
    shown_host = f"[{bound_host}]" if ":" in bound_host else bound_host
    on_ready(
        ServeInfo(
            host=f"http://{shown_host}:{bound_port}",
            public_key=public_key,
            secret_key=secret_key if generated else None,
            store=store_path,
        )
    )
    server = uvicorn.Server(uvicorn_config(app, settings, verbose=verbose))
    try:
        server.run(sockets=[sock])
    finally:
        store.close()
        sock.close()
