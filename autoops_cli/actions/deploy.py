"""``autoops deploy``: bring the integration up as the AutoOps application will, and prove it.

Steps: the health checks; ``initialize_langfuse_integration()``; then a canary: one
simulation event traced through the same core the agents use (workflow, an agent operation,
its decision), delivered, and polled on the read API until the trace and its observations
are visible, which gives the ingestion delay.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from config.errors import ApiError, AutoopsError, ExitCode

if TYPE_CHECKING:
    from rich.table import Table

    from config.langfuse_integration import LangfuseIntegrationService
    from config.settings_sources import LoadedSettings

# The canary's trace tag: autoops metrics leaves these traces out of the workflow's figures.
CANARY_TAG = "autoops-canary"
CANARY_OBSERVATIONS = 3  # workflow, agent operation, decision


@dataclass
class DeployResult:
    """Every step's outcome, the canary, and the exit code."""

    steps: list[dict[str, Any]] = field(default_factory=list)
    canary: dict[str, Any] | None = None
    exit_code: int = 0

    def step(self, name: str, status: str, detail: str) -> None:
        """Record a step."""
        self.steps.append({"step": name, "status": status, "detail": detail})

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` document."""
        return {"ok": self.exit_code == 0, "steps": self.steps, "canary": self.canary}


def deploy_table(result: DeployResult, *, dry_run: bool) -> Table:
    """The steps as a table: step, status, detail."""
    from rich import box
    from rich.table import Table

    from autoops_cli.output import escape

    title = "deploy" + (" (dry run)" if dry_run else "")
    table = Table(box=box.ASCII, title=title, header_style="bold")
    for column in ("step", "status", "detail"):
        table.add_column(column, overflow="fold")
    for step in result.steps:
        table.add_row(step["step"], step["status"], escape(str(step["detail"])))
    return table


def canary_event(now: float) -> dict[str, Any]:
    """The simulation event the canary traces."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    return {
        "event_id": f"canary-{stamp}-{int(now * 1000) % 1000:03d}",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "event_type": "demand_spike",
        "trigger_source": "autoops_deploy",
        "product_id": "CANARY",
        "severity": "low",
        "data": {
            "current_stock": 100,
            "forecast_demand": 120,
            "current_price": 10.0,
            "unit_cost": 6.0,
        },
    }


def deploy(
    loaded: LoadedSettings, *, canary: bool, canary_timeout: float, dry_run: bool
) -> DeployResult:
    """Run the deployment steps; nothing is sent with ``dry_run``."""
    from autoops_cli.actions.health import run_checks

    result = DeployResult()
    report = run_checks(loaded, timeout=10.0)
    code = report.exit_code(strict=False)
    failed = [f"{c.name}: {c.message}" for c in report.checks if c.status == "fail"]
    result.step(
        "health-check",
        "fail" if code else "ok",
        f"failed: {'; '.join(failed)}" if failed else "healthy",
    )
    if code:
        result.exit_code = code
        return result
    config, masking = loaded.require()
    event = canary_event(time.time())
    if dry_run:
        result.step(
            "initialize", "planned", f"initialize_langfuse_integration() in {loaded.mode} mode"
        )
        if canary:
            result.step(
                "canary", "planned", f"would trace event {event['event_id']} and poll for it"
            )
            result.canary = {"event": event, "sent": False}
        return result
    from config.langfuse_integration import (
        get_langfuse_integration,
        initialize_langfuse_integration,
    )
    from config.sampling_rules import SamplingRules

    # The service only carries the canary, which must never be sampled out: a global rate or
    # rule below 1 would otherwise fail the deployment by chance.
    ready = initialize_langfuse_integration(
        config, masking, sample_rate=1.0, sampling_rules=SamplingRules()
    )
    service = get_langfuse_integration()
    where = f"{service.mode} mode, destination {service.destination}"
    if not ready:
        result.step("initialize", "fail", f"{where}: not ready (see the log line above)")
        result.exit_code = int(ExitCode.FAILURE)
        service.shutdown(timeout=0)
        return result
    result.step("initialize", "ok", where)
    if canary:
        _run_canary(service, event, canary_timeout, result)
    service.shutdown(timeout=0)
    return result


def _run_canary(
    service: LangfuseIntegrationService, event: dict[str, Any], timeout: float, result: DeployResult
) -> None:
    deadline = time.monotonic() + timeout
    # Batches an earlier run left for this host go first (from the start-up on): a refusal,
    # or a flush cut short, may then be theirs and not the canary's.
    backlog = service.client.pending()
    refused_before = service.get_performance_metrics()["dead_letters"]
    trace_id = service.create_simulation_trace(
        event, session_id="autoops-deploy", tags=[CANARY_TAG]
    )
    span_id = service.start_agent_span("inventory_agent", "deploy_canary", {"product_id": "CANARY"})
    service.log_agent_decision(
        span_id,
        {"decision_type": "hold", "action": "hold"},
        confidence=1.0,
        reasoning="deployment canary",
    )
    service.end_agent_span(span_id, {"action": "hold"})
    service.finalize_trace(trace_id, {"canary": True})
    sent_at = time.monotonic()
    delivered = service.flush(timeout=max(0.1, deadline - time.monotonic()))
    metrics = service.get_performance_metrics()
    state = metrics["delivery_state"]
    result.canary = {"trace_id": trace_id, "event_id": event["event_id"], "delivered": delivered}
    if state == "credentials_rejected":
        result.step("canary", "fail", "Langfuse rejected the keys")
        result.exit_code = int(ExitCode.CONFIG)
        return
    refused = metrics["dead_letters"] > refused_before  # flush() is done with those: True
    # Polling for a trace that was never delivered would end in "not visible", and a longer
    # --canary-timeout would be the wrong advice; with older batches sent first, only the
    # read API can tell whether the canary itself arrived.
    failed = refused or not delivered
    visible, problem = (
        (None, None) if failed and not backlog else _poll_until_visible(service, trace_id, deadline)
    )
    if visible is None and failed:
        detail = _undelivered(service, trace_id, timeout, refused=refused)
        if backlog:
            detail += f" ({backlog} older batch(es) for this host went before it)"
        result.step("canary", "fail", detail)
        # As replay says it: refused or not Langfuse's API 5, not reached (yet) 4.
        result.exit_code = int(
            ExitCode.API if refused or state == "host_misconfigured" else ExitCode.NETWORK
        )
        return
    if visible is None:
        detail = f"trace {trace_id} not visible within {timeout:g} s"
        if problem is not None:  # what the read API said instead, last
            detail += f"; {problem.message}"
        result.step("canary", "fail", detail)
        result.exit_code = problem.exit_code if problem is not None else int(ExitCode.FAILURE)
        return
    delay = round(visible - sent_at, 3)
    result.canary["ingestion_delay_s"] = delay
    result.step("canary", "ok", f"trace {trace_id} visible after {delay:.2f} s")


def _undelivered(
    service: LangfuseIntegrationService, trace_id: str, timeout: float, *, refused: bool
) -> str:
    """Why the canary is not at its destination, and where it is instead."""
    progress = service.client.delivery_progress()
    error = progress.last_error if progress is not None else None
    if refused:
        kept = "refused and kept as a dead letter: see `autoops buffer status`"
    elif progress is not None:
        kept = "kept in the outbox: the next run or `autoops buffer flush` sends it"
    else:
        kept = "not written"
    because = f" ({error})" if error else ""
    return f"trace {trace_id} not delivered to {service.destination} within {timeout:g} s{because}; {kept}"


@dataclass
class ReadProblem:
    """An answer of the read API that says nothing about the canary, and its exit code."""

    message: str
    exit_code: int


def _poll_until_visible(
    service: LangfuseIntegrationService, trace_id: str, deadline: float
) -> tuple[float | None, ReadProblem | None]:
    """When the trace and its observations were first seen, or None by the deadline, with
    the last problem the read API had (rejected keys end the polling at once)."""
    problem: ReadProblem | None = None
    while True:
        seen = _visible(service, trace_id, max(0.1, deadline - time.monotonic()))
        if seen is True:
            return time.monotonic(), None
        if isinstance(seen, ReadProblem):
            problem = seen
            if problem.exit_code == int(ExitCode.CONFIG):
                return None, problem
        if time.monotonic() >= deadline:
            return None, problem
        time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))


def _visible(
    service: LangfuseIntegrationService, trace_id: str, timeout: float
) -> bool | ReadProblem:
    """Whether the canary is visible yet; a ``ReadProblem`` when the answer could not say."""
    if service.mode == "local":
        from config.store.local_store import LocalStore

        assert service.store_path is not None
        store = LocalStore(service.store_path)
        try:
            rows = store.query("SELECT COUNT(*) FROM observations WHERE trace_id = ?", (trace_id,))
        finally:
            store.close()
        return int(rows[0][0]) >= CANARY_OBSERVATIONS
    from autoops_cli.langfuse_api.client import ApiClient

    def answer(api: ApiClient, path: str, params: list[tuple[str, str]]) -> dict[str, Any] | None:
        """The JSON object at ``path``; None for a 404 (not there yet, or no v2 API)."""
        body = api.get(path, params, allow=(404,))
        if body is not None and not isinstance(body, dict):
            raise ApiError(f"{api.host}{path} answered 200 without a JSON object", status=200)
        return body

    try:
        with ApiClient(service.config, timeout=timeout) as api:
            # The v2 observations API is the real-time read path; v1 servers answer 404 there.
            found = answer(
                api, "/api/public/v2/observations", [("traceId", trace_id), ("limit", "50")]
            )
            if found is not None:
                return _canary_observations(found.get("data"), trace_id)
            found = answer(api, f"/api/public/traces/{trace_id}", [])
            return (
                found is not None
                and found.get("id") == trace_id
                and _canary_observations(found.get("observations"), trace_id)
            )
    except AutoopsError as exc:  # rejected keys (3), an HTTP error (5), the network (4)
        return ReadProblem(exc.message, int(exc.exit_code))


def _canary_observations(observations: Any, trace_id: str) -> bool:
    """Whether an answer lists the canary's observations: those of its trace, counted (an
    answer of anything else, or of another trace, is no sign of the canary)."""
    if not isinstance(observations, list):
        return False
    ours = [
        o
        for o in observations
        if isinstance(o, dict) and trace_id in (o.get("traceId"), o.get("trace_id"))
    ]
    return len(ours) >= CANARY_OBSERVATIONS
