"""The seed's ``LangfuseClient``: the low-level client wrapper with error handling.

It owns the connection to wherever traces go, chosen by mode: the local store (local mode),
the outbox and its background sender (langfuse mode), or nothing (tracing disabled). The
tracer hands it finished batches (it is the tracer's ``SpanExporter``); whatever the
destination raises goes to the error handler, never to the caller. ``check_connection`` is a
cheap probe of the destination.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from config.redaction import core_logger

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from config.delivery.sender import DeliveryProgress
    from config.error_handler import LangfuseErrorHandler
    from config.errors import LocalFileError
    from config.settings import LangfuseConfig
    from config.tracing.span_records import ScoreRecord, SpanExporter, SpanRecord

logger = core_logger("autoops.delivery")

HEALTH_PATH = "/api/public/health"
PROJECTS_PATH = "/api/public/projects"


@dataclass(frozen=True)
class ConnectionCheck:
    """What a connectivity probe found."""

    available: bool
    destination: str
    detail: str
    round_trip_ms: float | None = None
    keys_rejected: bool = False  # Langfuse answered 401/403 to the keys


class LangfuseClient:
    """The connection to the trace destination, with every error handed to the error handler.

    ``mode`` is ``local``, ``langfuse`` or ``disabled``; ``exporter`` replaces the one the mode
    would choose (tests, benchmarks, a custom destination). ``writer_process`` has local mode
    write the store from another process (``StoreProcessExporter``: the replay, on a machine
    with a CPU to spare); otherwise each batch is written before ``export`` returns.
    """

    def __init__(
        self,
        config: LangfuseConfig,
        *,
        mode: str,
        error_handler: LangfuseErrorHandler,
        exporter: SpanExporter | None = None,
        store_path: Path | None = None,
        retention_days: int = 30,
        writer_process: bool = False,
    ) -> None:
        self.config = config
        self.mode = mode
        self.error_handler = error_handler
        self.store_path: Path | None = None
        self._handed = 0  # batches given to an exporter that keeps no count of its own
        self._write_failure: LocalFileError | None = None
        self._exporter: SpanExporter = (
            exporter
            if exporter is not None
            else self._connect(store_path, retention_days, writer_process)
        )
        # A forked child connects again on its first use (``exporter``); not in an at-fork
        # hook, which also runs in the child of a subprocess started with preexec_fn.
        self._pid = os.getpid()
        self._reconnects = exporter is None and not writer_process and mode != "disabled"
        self._reconnecting = threading.Lock()
        _CLIENTS.add(self)

    @property
    def exporter(self) -> SpanExporter:
        """The destination; in a forked child, one of its own (``reconnect_after_fork``)."""
        if self._reconnects and self._pid != os.getpid():
            with self._reconnecting:  # the child's threads: one connects, the others wait
                if self._pid != os.getpid():
                    self.reconnect_after_fork()
                    self._pid = os.getpid()
        return self._exporter

    def _connect(
        self, store_path: Path | None, retention_days: int | None, writer_process: bool
    ) -> SpanExporter:
        """The exporter the mode asks for (the store file is opened, or created, here)."""
        from config.delivery.exporters import LocalStoreExporter, NullExporter, resource_attributes
        from config.store.local_store import WRITER_CACHE_KIB, LocalStore, default_store_path

        if self.mode == "disabled":
            return NullExporter()
        self.store_path = store_path or default_store_path()
        if self.mode == "langfuse":
            from config.delivery.outbox import Outbox
            from config.delivery.sender import OutboxExporter

            return OutboxExporter(
                self.config,
                Outbox(self.store_path),
                resource=resource_attributes(self.config),
                on_unreachable=self.error_handler.handle_connection_error,
            )
        store = LocalStore(self.store_path, cache_kib=WRITER_CACHE_KIB)
        if retention_days is not None:
            store.prune(retention_days)
        if writer_process:
            from config.delivery.store_process import StoreProcessExporter

            try:
                return StoreProcessExporter(store)
            except OSError as exc:  # no process to be had: the same writes, in this one
                logger.warning("cannot start the store writer process (%s); writing here", exc)
        return LocalStoreExporter(store)

    @property
    def destination(self) -> str:
        """Where traces go, in words: ``local store <path>``, the Langfuse host, or ``none``."""
        if self.mode == "langfuse":
            return self.config.host
        if self.mode == "local":
            return f"local store {self.store_path}" if self.store_path else "local store"
        return "none (tracing disabled)"

    @property
    def stats(self) -> Any:
        """The exporter's delivery figures (``ExportStats`` or ``DeliveryStats``), if it has any."""
        return getattr(self.exporter, "stats", None)

    # --- the tracer's exporter ----------------------------------------------------------

    def export(self, spans: list[SpanRecord], scores: list[ScoreRecord]) -> None:
        """Hand a batch to the destination; a failure goes to the error handler (batch lost).

        A local file that cannot be written is kept as ``write_failure`` too: the replay
        stops on it instead of reporting traces that are not on disk.
        """
        from config.errors import LocalFileError

        try:
            self.exporter.export(spans, scores)
        except LocalFileError as exc:
            if self._write_failure is None:
                self._write_failure = exc
            self.error_handler.handle_connection_error(exc, where="export")
        except Exception as exc:
            self.error_handler.handle_connection_error(exc, where="export")
        finally:
            self._handed += 1

    def flush(
        self, timeout: float, on_progress: Callable[[DeliveryProgress], None] | None = None
    ) -> bool:
        """Deliver what was handed over, waiting while progress is made.

        Gives up after ``timeout`` seconds without progress (the outbox keeps the rest);
        True when everything was delivered. ``on_progress`` hears where delivery stands
        while it waits (only destinations that deliver report it).
        """
        try:
            if on_progress is not None and getattr(self.exporter, "reports_progress", False):
                return bool(self.exporter.flush(timeout, on_progress=on_progress))  # type: ignore[call-arg]
            return self.exporter.flush(timeout)
        except Exception as exc:
            self.error_handler.handle_connection_error(exc, where="flush")
            return False

    def stop_delivering(self) -> None:
        """Deliver nothing more: the outbox and the delivery counts stay as they are now, for
        a run to report (only destinations that deliver have anything to stop)."""
        freeze = getattr(self.exporter, "freeze", None)
        if callable(freeze):
            freeze()

    def reconnect_after_fork(self) -> None:
        """In a forked child: a destination of its own. The outbox's writer and sender
        threads did not follow it there (its batches stayed in memory: a multiprocessing
        worker's traces were lost), and SQLite connections must not cross a fork. What the
        parent had handed over is the parent's to deliver; the old exporter is left as it
        is (closing its connection here could disturb the parent's)."""
        try:
            self._exporter = self._connect(self.store_path, None, writer_process=False)
        except Exception as exc:
            self.error_handler.handle_connection_error(exc, where="fork")

    def shutdown(self, timeout: float) -> None:
        """Flush (``timeout`` s without progress ends it) and release the destination."""
        try:
            self.exporter.shutdown(timeout)
        except Exception as exc:
            self.error_handler.handle_connection_error(exc, where="shutdown")

    # --- durability: what the replay may report as processed ------------------------------

    def exported_batches(self) -> int:
        """Batches handed to the destination so far: the ticket ``committed_batches`` reaches."""
        counter = getattr(self.exporter, "exported_batches", None)
        return int(counter()) if callable(counter) else self._handed

    def committed_batches(self) -> int:
        """Batches durable at the destination (written to the store or the outbox file), with
        every earlier one. An exporter that keeps no count is taken as synchronous."""
        counter = getattr(self.exporter, "committed_batches", None)
        return int(counter()) if callable(counter) else self._handed

    @property
    def write_failure(self) -> LocalFileError | None:
        """The first failure to write the local store or the outbox file, if any."""
        failure = getattr(self.exporter, "write_failure", None)
        return failure if failure is not None else self._write_failure

    def wait_committed(self, ticket: int, timeout: float) -> bool:
        """Wait up to ``timeout`` s until batch ``ticket`` is durable; False if it is not."""
        wait = getattr(self.exporter, "wait_committed", None)
        if callable(wait):
            return bool(wait(ticket, timeout))
        return self.committed_batches() >= ticket

    def outbox_rows_up_to(self) -> int | None:
        """The newest outbox row this process answers for (None without an outbox)."""
        rows_up_to = getattr(self.exporter, "rows_up_to", None)
        return int(rows_up_to()) if callable(rows_up_to) else None

    def answer_up_to(self, seq: int) -> None:
        """The outbox rows up to ``seq`` are this process's to deliver and report (a replay's
        workers wrote them); nothing for destinations without an outbox."""
        answer = getattr(self.exporter, "answer_up_to", None)
        if callable(answer):
            answer(seq)

    def finishing(self) -> None:
        """The producer is done: write what is queued without waiting for the sender.

        Signal-safe (sets a flag).
        """
        finishing = getattr(self.exporter, "finishing", None)
        if callable(finishing):
            finishing()

    def limit_flush(self, seconds: float) -> None:
        """From now on a flush gives up after ``seconds`` at the latest (a stop was asked).

        Signal-safe (sets a value).
        """
        limit = getattr(self.exporter, "limit_flush", None)
        if callable(limit):
            limit(seconds)

    def interrupt(self) -> None:
        """A waiting flush gives up now; what is not delivered stays in the outbox.

        Signal-safe (sets a flag).
        """
        interrupt = getattr(self.exporter, "interrupt", None)
        if callable(interrupt):
            interrupt()

    def delivery_progress(self) -> DeliveryProgress | None:
        """Where delivery to Langfuse stands (None for destinations that do not send)."""
        progress = getattr(self.exporter, "delivery_progress", None)
        if not callable(progress):
            return None
        try:
            return progress()  # type: ignore[no-any-return]
        except Exception as exc:
            self.error_handler.handle_connection_error(exc, where="delivery_progress")
            return None

    def pending(self) -> int:
        """Batches not delivered yet (0 for destinations without an outbox)."""
        pending = getattr(self.exporter, "pending", None)
        if not callable(pending):
            return 0
        try:
            return int(pending())
        except Exception as exc:
            self.error_handler.handle_connection_error(exc, where="pending")
            return 0

    def enable_fallback_mode(self) -> bool:
        """Stop sending for the cool-down (batches keep going to the outbox).

        False when the destination does not send (the local store, no tracing).
        """
        pause = getattr(self.exporter, "pause_sending", None)
        if not callable(pause):
            return False
        pause()
        return True

    # --- the probe ----------------------------------------------------------------------

    def check_connection(self, timeout: float = 5.0) -> ConnectionCheck:
        """Probe the destination cheaply: Langfuse's health route and the keys (two GETs), or
        the store file.

        A failure goes to the error handler (fallback mode) and is returned, not raised.
        """
        if self.mode == "disabled":
            return ConnectionCheck(False, self.destination, "tracing disabled: no destination")
        started = time.perf_counter()
        try:
            detail = (
                self._probe_langfuse(timeout) if self.mode == "langfuse" else self._probe_store()
            )
        except Exception as exc:
            from config.errors import CredentialsError

            self.error_handler.handle_connection_error(exc)
            return ConnectionCheck(
                False,
                self.destination,
                f"{type(exc).__name__}: {exc}",
                keys_rejected=isinstance(exc, CredentialsError),
            )
        elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
        return ConnectionCheck(True, self.destination, detail, elapsed_ms)

    def _probe_langfuse(self, timeout: float) -> str:
        import httpx

        from config.errors import ApiError, CredentialsError
        from config.http_answers import SHORT_ANSWER_BYTES, request_bounded, server_message

        assert self.config.public_key is not None and self.config.secret_key is not None
        keys = (self.config.public_key, self.config.secret_key.get_secret_value())
        with httpx.Client(base_url=self.config.host, timeout=timeout) as http:
            # The health route is public (asked without the keys): whether Langfuse is up is
            # told apart from whether it takes the keys.
            response = request_bounded(http, "GET", HEALTH_PATH, limit=SHORT_ANSWER_BYTES)
            if not response.is_success:
                raise ApiError(
                    f"{self.config.host}{HEALTH_PATH} answered {response.status_code}: "
                    f"{server_message(response)}",
                    status=response.status_code,
                )
            try:
                version = response.json().get("version", "?")
            except (ValueError, AttributeError, RecursionError):
                version = "?"
            # Wrong keys would otherwise pass for a working integration until the first
            # batch: the projects route, which every key of a project may read, refuses them
            # (401/403). Any other answer is left to delivery.
            response = request_bounded(
                http, "GET", PROJECTS_PATH, limit=SHORT_ANSWER_BYTES, auth=keys
            )
        if response.status_code in (401, 403):
            raise CredentialsError(
                f"Langfuse at {self.config.host} rejected the keys "
                f"({response.status_code}: {server_message(response)})"
            )
        return f"Langfuse {version} answered {HEALTH_PATH}, keys accepted"

    def _probe_store(self) -> str:
        if self.store_path is None:
            return f"{type(self.exporter).__name__} given by the caller (not probed)"
        from config.store.local_store import LocalStore

        LocalStore(self.store_path).close()  # opens (and checks) the file as a writer would
        return f"store {self.store_path} opens"


# Every live client, for the fork hook below.
_CLIENTS: weakref.WeakSet[LangfuseClient] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A lock held by another thread at the fork (a child connecting while one of its
    # threads forked a grandchild) would be held for ever in the child: a new one. Nothing
    # else is done here (see ``LangfuseClient.exporter``).
    for client in list(_CLIENTS):
        client._reconnecting = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)
