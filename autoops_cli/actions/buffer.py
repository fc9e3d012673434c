"""The outbox for the CLI: its status as a table, and a flush that goes on while it progresses."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from config.errors import ConfigurationError, ExitCode

if TYPE_CHECKING:
    from rich.table import Table

    from config.delivery.sender import DeliveryProgress
    from config.settings import LangfuseConfig


def outbox_status() -> dict[str, Any]:
    """The ``autoops buffer status --json`` document."""
    from config.delivery.outbox import Outbox
    from config.store.local_store import default_store_path

    path = default_store_path()
    outbox = Outbox(path)
    try:
        report = outbox.status()
    finally:
        outbox.close()
    return {"store": str(path), **report}


def status_table(report: dict[str, Any]) -> Table:
    """The outbox status as a two-column table."""
    from rich import box
    from rich.table import Table

    table = Table(box=box.ASCII, show_header=False, title="outbox")
    table.add_column("field")
    table.add_column("value", overflow="fold")
    for key in (
        "store", "pending_batches", "pending_spans", "pending_scores", "pending_bytes",
        "oldest_age_s", "dead_letters", "dead_letter_items", "last_dead_letter_message",
    ):  # fmt: skip
        value = report.get(key)
        table.add_row(key, "-" if value is None else str(value))
    for host, batches in sorted(report.get("hosts", {}).items()):
        table.add_row(f"pending for {host}", str(batches))
    return table


def flush_outbox(
    config: LangfuseConfig,
    *,
    wait: float,
    dead_letters: bool,
    on_progress: Callable[[DeliveryProgress], None] | None = None,
) -> tuple[dict[str, Any], int]:
    """Send the outbox for ``config.host``; the result document and the exit code.

    Delivery goes on while the host makes progress and gives up after ``wait`` seconds
    without any (a refused connection fails after ``wait``; ``--wait 60`` waits for a server
    that is starting).
    """
    from config.delivery.exporters import resource_attributes
    from config.delivery.outbox import Outbox
    from config.delivery.sender import OutboxExporter
    from config.store.local_store import default_store_path

    if not config.has_keys:
        raise ConfigurationError(
            "buffer flush needs Langfuse keys (LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY)",
            hint="the outbox is only used in langfuse mode",
        )
    outbox = Outbox(default_store_path())
    try:
        requeued = outbox.requeue_dead_letters(config.host) if dead_letters else 0
        before = outbox.count(config.host)
        exporter = OutboxExporter(config, outbox, resource=resource_attributes(config))
        try:
            delivered = exporter.flush(wait, on_progress=on_progress)
        finally:
            exporter.shutdown(0)
        remaining = outbox.count(config.host)
    finally:
        outbox.close()
    stats = exporter.stats
    result: dict[str, Any] = {
        "host": config.host,
        "requeued_dead_letters": requeued,
        "batches_before": before,
        "delivered_batches": stats.batches_delivered,
        "remaining_batches": remaining,
        "new_dead_letters": stats.dead_letters,
        "state": stats.state,
        "message": "",
    }
    if stats.state == "credentials_rejected":
        result["message"] = (
            f"Langfuse at {config.host} rejected the keys ({stats.last_error}); {remaining} batch(es) kept"
        )
        return result, int(ExitCode.CONFIG)
    if stats.state == "host_misconfigured":
        result["message"] = (
            f"{stats.last_error}; sending stopped, {remaining} batch(es) kept in the outbox"
        )
        return result, int(ExitCode.API)
    if stats.dead_letters:
        result["message"] = (
            f"{stats.dead_letters} batch(es) refused by {config.host} ({stats.last_error}); kept as dead letters"
        )
        return result, int(ExitCode.API)
    if not delivered or remaining:
        result["message"] = (
            f"{remaining} batch(es) not delivered to {config.host} ({stats.last_error}); "
            f"kept in the outbox, nothing delivered for {wait:g} s"
        )
        return result, int(ExitCode.NETWORK)
    result["message"] = (
        f"no batch waits for {config.host}: {stats.batches_delivered} batch(es) delivered"
    )
    return result, 0


def flush_progress_text(progress: DeliveryProgress) -> str:
    """The live line of ``buffer flush``."""
    total = progress.delivered + progress.waiting
    text = f"delivering {progress.delivered}/{total} batches to {progress.host}"
    if progress.state != "ok" and progress.last_error:
        text += f" ({progress.state}: {progress.last_error})"
    return text
