"""``autoops health-check``: is the Langfuse integration up, are the keys good, is it fast.

Each check gives a status (ok, warn, fail), a measured value and a one-line explanation. In
local mode the store is checked instead of the network. The whole run stays within its
timeout: every socket operation gets only the time that is left, so a host trickling its
answers is cut off at the deadline like one that does not answer.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoops_cli.output_files import is_special, open_writer
from config.errors import ExitCode
from config.http_answers import (
    SHORT_ANSWER_BYTES,
    AnswerTooLarge,
    request_bounded,
    server_message,
)
from config.redaction import redact_secrets
from config.settings import is_loopback_host

if TYPE_CHECKING:
    import httpx
    from rich.table import Table

    from config.settings_sources import LoadedSettings

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass
class Check:
    """One check's outcome."""

    name: str
    status: str
    value: Any
    message: str
    exit_code: int = int(ExitCode.FAILURE)  # what a failure of this check means

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "name": self.name,
            "status": self.status,
            "value": self.value,
            "message": self.message,
        }


@dataclass
class HealthReport:
    """Every check of one run."""

    mode: str
    host: str | None
    checks: list[Check] = field(default_factory=list)

    def healthy(self, *, strict: bool) -> bool:
        """No failure (and, with ``strict``, no warning)."""
        return not self.failed(strict=strict)

    def failed(self, *, strict: bool) -> list[Check]:
        """The checks that make the report unhealthy (warnings too, with ``strict``)."""
        return [c for c in self.checks if c.status == FAIL or (strict and c.status == WARN)]

    def exit_code(self, *, strict: bool) -> int:
        """0 healthy; 3 configuration or credentials; 4 network; else 1."""
        failed = self.failed(strict=strict)
        if not failed:
            return 0
        codes = {c.exit_code for c in failed if c.status == FAIL}
        for code in (int(ExitCode.CONFIG), int(ExitCode.NETWORK)):
            if code in codes:
                return code
        return int(ExitCode.FAILURE)

    def as_dict(self, *, strict: bool) -> dict[str, Any]:
        """The ``--json`` document."""
        return {
            "healthy": self.healthy(strict=strict),
            "mode": self.mode,
            "host": self.host,
            "checks": [c.as_dict() for c in self.checks],
        }


class Deadline:
    """What is left of the run's time budget."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        """Seconds left (never below a small floor, so a request can still fail cleanly)."""
        return max(0.05, self.end - time.monotonic())

    def expired(self) -> bool:
        """True when the budget is spent."""
        return time.monotonic() >= self.end


# The suite of health-check's JUnit reports: the only file --junit overwrites (another tool's
# report, pytest's or Maven's, is refused).
JUNIT_SUITE_NAME = "autoops health-check"
# How such a report starts: its name anywhere (a CI script running `autoops health-check`,
# a README) made any file naming the command one, and it was replaced.
_JUNIT_REPORT_START = re.compile(
    rb'\A\s*(?:<\?xml[^>]*\?>\s*)?<testsuite\s[^>]*\bname="'
    + re.escape(JUNIT_SUITE_NAME.encode())
    + rb'"'
)


def check_health(
    loaded: LoadedSettings,
    *,
    timeout: float,
    strict: bool,
    wait: float = 0.0,
    junit: Path | None = None,
    on_retry: Callable[[], None] | None = None,
) -> HealthReport:
    """Run the checks, again every second while unhealthy until ``wait`` s have passed.

    ``on_retry`` is told before each new attempt; ``junit`` gets the last report as JUnit XML.
    """
    if junit is not None:
        from autoops_cli.actions.files import refuse_foreign_file

        refuse_foreign_file(
            junit,
            "--junit",
            ours=lambda head: _JUNIT_REPORT_START.match(head) is not None,
            what="a JUnit report of health-check",
        )
    give_up = time.monotonic() + wait
    read_path: Check | None = None
    while True:
        report = run_checks(loaded, timeout=timeout, read_path=read_path)
        if report.healthy(strict=strict) or time.monotonic() + 1.0 > give_up:
            break
        if not any(_waited_for(c, strict) for c in report.checks):
            break  # local findings, or answers waiting does not change: say them now
        # Asked once: its metrics request counts against the host's daily quota on Cloud.
        read_path = next(
            (c for c in report.checks if c.name == "read path" and c.status != FAIL), None
        )
        if on_retry is not None:
            on_retry()
        time.sleep(1.0)
    if junit is not None:
        try:
            with os.fdopen(open_writer(junit), "w", encoding="utf-8") as written:
                if not is_special(junit):
                    written.truncate(0)
                written.write(junit_xml(report, strict=strict))
        except OSError as exc:
            from config.errors import LocalFileError

            raise LocalFileError(f"cannot write {junit}: {exc.strerror}") from None
    return report


def health_table(report: HealthReport) -> Table:
    """The report as a table: check, status, value, message."""
    from rich import box
    from rich.table import Table

    from autoops_cli.output import escape

    table = Table(box=box.ASCII, title=f"health: {report.mode} mode", header_style="bold")
    for column in ("check", "status", "value", "message"):
        table.add_column(column, overflow="fold")
    for check in report.checks:
        table.add_row(  # values and messages may quote a server's answer
            check.name,
            check.status,
            "-" if check.value is None else escape(str(check.value)),
            escape(check.message),
        )
    return table


# The checks a server that is still starting can fail: ``--wait`` retries only for them.
WAITED_FOR = frozenset({"endpoint", "credentials", "latency", "read path"})


def _waited_for(check: Check, strict: bool) -> bool:
    """A failing check that waiting for the server may mend: not a read path that answered
    401/403 (the keys) or 429 (a daily quota, which each retry would spend more of), nor the
    v1 fallback's warning; a 5xx is (a backend still starting behind its health route)."""
    failing = check.status == FAIL or (strict and check.status == WARN)
    if not failing or check.name not in WAITED_FOR:
        return False
    if check.name != "read path" or check.exit_code == int(ExitCode.NETWORK):
        return True
    return check.status == FAIL and isinstance(check.value, int) and check.value >= 500


def run_checks(
    loaded: LoadedSettings, *, timeout: float, read_path: Check | None = None
) -> HealthReport:
    """Run every check once; ``read_path`` is that check's outcome from an earlier run."""
    deadline = Deadline(timeout)
    config = loaded.langfuse
    report = HealthReport(
        mode=loaded.mode, host=config.host if config and config.has_keys else None
    )
    configuration = _configuration(loaded)
    report.checks.append(configuration)
    if config is None:
        return report
    if loaded.mode == "local":
        report.checks.append(_local_store())
    else:
        report.checks.extend(_remote(config, deadline, read_path))
    report.checks.append(_outbox(config.buffer_size))
    report.checks.append(_sampling(loaded, configured=configuration.status != FAIL))
    return report


def _configuration(loaded: LoadedSettings) -> Check:
    if loaded.problems:
        first = loaded.problems[0].line()
        more = f" (+{len(loaded.problems) - 1} more)" if len(loaded.problems) > 1 else ""
        return Check(
            "configuration", FAIL, len(loaded.problems), first + more, int(ExitCode.CONFIG)
        )
    if loaded.warnings:
        # Every warning, not the first only: a secret file readable by others must show
        # even when a plain-http host warning comes first.
        text = "; ".join(warning.line() for warning in loaded.warnings)
        return Check("configuration", WARN, len(loaded.warnings), text)
    return Check("configuration", OK, 0, f"valid ({loaded.mode} mode)")


def _local_store() -> Check:
    from config.errors import LocalFileError
    from config.store.local_store import LocalStore, creation_problem, default_store_path

    path = default_store_path()
    try:
        store = LocalStore.existing(path)  # a check creates nothing
        if store is None:
            problem = creation_problem(path)
            if problem is not None:
                return Check("local store", FAIL, str(path), problem, int(ExitCode.LOCAL_FILE))
            return Check(
                "local store",
                OK,
                0,
                f"local mode (no Langfuse keys): no store at {path} yet (the first replay creates it)",
            )
        counts = store.counts()
        store.close()
    except LocalFileError as exc:
        return Check("local store", FAIL, str(path), exc.message, int(ExitCode.LOCAL_FILE))
    if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
        return Check(
            "local store",
            WARN,
            counts["traces"],
            f"store {path} can be read ({counts['traces']} traces) but not written: a replay would stop (exit 6)",
        )
    return Check(
        "local store",
        OK,
        counts["traces"],
        f"local mode (no Langfuse keys): store {path} opens, {counts['traces']} traces",
    )


def _remote(config: Any, deadline: Deadline, read_path: Check | None) -> list[Check]:
    from autoops_cli.langfuse_api.client import deadline_client

    checks = [_transport_security(config)]
    auth = (config.public_key, config.secret_key.get_secret_value())
    with deadline_client(base_url=config.host, deadline=deadline.end) as client:
        endpoint, rtt_ms = _endpoint(client, deadline)
        checks.append(endpoint)
        if endpoint.status == FAIL:
            return checks
        checks.append(_credentials(client, auth, deadline))
        budget = config.max_latency_ms
        status = OK if rtt_ms <= budget else WARN
        checks.append(
            Check(
                "latency",
                status,
                round(rtt_ms, 1),
                f"round trip {rtt_ms:.1f} ms (budget {budget:g} ms)",
            )
        )
        if checks[-2].status != FAIL:
            checks.append(read_path or _read_path(client, auth, deadline))
    return checks


def _transport_security(config: Any) -> Check:
    if not config.uses_plain_http:
        return Check("transport security", OK, "https", "https")
    if is_loopback_host(config.hostname):
        # Nothing leaves the machine: as safe as https (autoops serve, a local Langfuse).
        return Check("transport security", OK, "http", "plain http on loopback")
    return Check(
        "transport security",
        FAIL,
        "http",
        f"plain http to {config.hostname}: keys travel unencrypted",
        int(ExitCode.CONFIG),
    )


def _request_failure(name: str, client: httpx.Client, exc: Exception) -> Check:
    import httpx

    host = str(client.base_url).rstrip("/")
    if isinstance(exc, AnswerTooLarge | httpx.DecodingError):  # it answered, unreadably
        return Check(name, FAIL, None, f"{host}: {type(exc).__name__}: {exc}", int(ExitCode.API))
    if isinstance(exc, httpx.TimeoutException):
        kind = "timed out"
    elif isinstance(exc, httpx.RemoteProtocolError):  # reached: it closed or spoke no HTTP
        kind = "no valid HTTP answer"
    else:
        kind = "unreachable"
    return Check(
        name, FAIL, None, f"{kind}: {host}: {type(exc).__name__}: {exc}", int(ExitCode.NETWORK)
    )


def _endpoint(client: httpx.Client, deadline: Deadline) -> tuple[Check, float]:
    import httpx

    started = time.perf_counter()
    try:
        response = _get(client, "/api/public/health", deadline)
    except (httpx.HTTPError, AnswerTooLarge) as exc:
        return _request_failure("endpoint", client, exc), 0.0
    rtt_ms = (time.perf_counter() - started) * 1000
    body = _json(response)
    status_text = body.get("status") if isinstance(body, dict) else None
    if response.status_code != 200 or status_text != "OK":
        said = status_text if isinstance(status_text, str) else server_message(response, 100)
        return Check(
            "endpoint",
            FAIL,
            response.status_code,
            f"health answered {response.status_code}: {said}",
        ), rtt_ms
    version = _text(body.get("version"))
    return Check("endpoint", OK, version, f"Langfuse {version}, round trip {rtt_ms:.1f} ms"), rtt_ms


def _credentials(client: httpx.Client, auth: tuple[str, str], deadline: Deadline) -> Check:
    import httpx

    try:
        response = _get(client, "/api/public/projects", deadline, auth=auth)
    except (httpx.HTTPError, AnswerTooLarge) as exc:
        return _request_failure("credentials", client, exc)
    body = _json(response)
    if response.status_code in (401, 403):
        message = server_message(response)  # the keys masked, if the server echoes them
        return Check(
            "credentials",
            FAIL,
            response.status_code,
            f"keys rejected: {message}",
            int(ExitCode.CONFIG),
        )
    if response.status_code != 200:
        return Check(
            "credentials",
            FAIL,
            response.status_code,
            f"projects answered {response.status_code}",
            int(ExitCode.API),
        )
    projects = body.get("data") if isinstance(body, dict) else None
    if not isinstance(projects, list):
        # A login page or a proxy answering 200 for everything: keys accepted by nothing.
        return Check(
            "credentials",
            FAIL,
            response.status_code,
            f"projects answered 200 {_not_a_list(response, body, 'projects')}: "
            "not the Langfuse API",
        )
    first = projects[0] if projects else None
    name = _text(first.get("name") if isinstance(first, dict) else None)
    return Check("credentials", OK, name, f"keys accepted for project {name!r}")


def _not_a_list(response: httpx.Response, body: Any, what: str) -> str:
    """How a 200 answer that should hold a list of ``what`` in ``data`` is not one."""
    if body is None:
        kind = response.headers.get("content-type", "").split(";")[0].strip() or "no type"
        return f"without a JSON body ({_text(kind)})"
    return f"without a list of {what} in 'data'"


def _read_path(client: httpx.Client, auth: tuple[str, str], deadline: Deadline) -> Check:
    import httpx

    now = time.time()
    query = json.dumps(
        {
            "view": "observations",
            "metrics": [{"measure": "count", "aggregation": "count"}],
            "dimensions": [],
            "filters": [],
            "fromTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 3600)),
            "toTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        }
    )
    found = {}
    try:
        for name, path, params in (
            ("observations", "/api/public/v2/observations", {"limit": 1}),
            ("metrics", "/api/public/v2/metrics", {"query": query}),
        ):
            response = _get(client, path, deadline, params=params, auth=auth)
            found[name] = response.status_code
            if response.status_code in (401, 403):
                return Check(
                    "read path",
                    FAIL,
                    response.status_code,
                    f"v2 {name} answered {response.status_code}: the keys may not read "
                    f"({server_message(response, 100)})",
                    int(ExitCode.CONFIG),
                )
            if response.status_code not in (200, 404):  # 429 (a daily quota), 5xx
                return Check(
                    "read path",
                    FAIL,
                    response.status_code,
                    f"v2 {name} answered {response.status_code}: "
                    f"{server_message(response, 100)}; traces and metrics would fail",
                    int(ExitCode.API),
                )
            body = _json(response, as_the_reads_do=True)
            if response.status_code == 200 and not (
                isinstance(body, dict) and isinstance(body.get("data"), list)
            ):
                return Check(
                    "read path",
                    FAIL,
                    200,
                    f"v2 {name} answered 200 {_not_a_list(response, body, name)}: "
                    "not the Langfuse API",
                )
    except (httpx.HTTPError, AnswerTooLarge) as exc:
        return _request_failure("read path", client, exc)
    if all(code == 200 for code in found.values()):
        return Check(
            "read path", OK, "v2", "v2 observations and metrics available (real-time reads)"
        )
    return Check(
        "read path",
        WARN,
        "v1",
        f"v2 answered {found}: the v1 fallbacks will be used (reads may lag)",
    )


def _outbox(buffer_size: int) -> Check:
    from config.delivery.outbox import outbox_status_at
    from config.errors import LocalFileError
    from config.store.local_store import default_store_path

    try:
        status = outbox_status_at(default_store_path())
    except LocalFileError as exc:  # a file that is not a database, unreadable
        return Check("outbox", FAIL, None, exc.message, int(ExitCode.LOCAL_FILE))
    pending, age = status["pending_batches"], status["oldest_age_s"]
    dead = status["dead_letters"]
    if pending > buffer_size or (age is not None and age > 3600) or dead:
        oldest = f" (oldest {age} s)" if age is not None else ""
        message = f"{pending} batch(es) waiting{oldest}, {dead} dead letter(s): see `autoops buffer status`"
        return Check("outbox", WARN, pending, message)
    return Check("outbox", OK, pending, f"{pending} batch(es) waiting, no dead letters")


def _sampling(loaded: LoadedSettings, *, configured: bool) -> Check:
    """The rate the core would run with, and where it comes from; not told when the
    configuration failed (the defaults it fell back to are no rate the core would use)."""
    config = loaded.langfuse
    assert config is not None
    if not configured:
        return Check("sampling", WARN, None, "not known: the configuration is invalid (above)")
    rate = config.effective_sample_rate
    if not config.enable_sampling:  # the rate written anywhere does not count then
        origin = loaded.origin_of("langfuse.enable_sampling").describe()
        return Check("sampling", OK, rate, f"sampling off: every trace is kept ({origin})")
    origin = loaded.origin_of("langfuse.sample_rate").describe()
    if rate == 0:
        from config.settings_sources import rate_zero_effect, rules_or_none

        effect = rate_zero_effect(rules_or_none(loaded.values))
        return Check("sampling", WARN, rate, f"{effect} ({origin})")
    return Check("sampling", OK, rate, f"sample rate {rate:g} ({origin})")


def _get(client: httpx.Client, path: str, deadline: Deadline, **kwargs: Any) -> httpx.Response:
    """A GET whose answer is read up to a megabyte (health answers are a few bytes)."""
    return request_bounded(
        client, "GET", path, limit=SHORT_ANSWER_BYTES, timeout=deadline.left(), **kwargs
    )


def _json(response: httpx.Response, *, as_the_reads_do: bool = False) -> Any:
    """The answer's JSON, None when it is none; ``as_the_reads_do``: parsed as `traces` and
    `metrics` parse it (NaN, Infinity and 1e400 are no JSON), so the read path check fails
    where they would (it passed an answer both refused)."""
    from autoops_cli.langfuse_api.client import parse_json

    try:
        return parse_json(response.content) if as_the_reads_do else response.json()
    except (ValueError, RecursionError):  # not JSON, or nested beyond the parser
        return None


def _text(value: Any) -> str:
    """A version or a name from an answer: a string or a number as it is, else ``?``."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:g}"
    return "?"


def junit_xml(report: HealthReport, *, strict: bool) -> str:
    """The report as JUnit XML: one test case per check."""
    from xml.etree import ElementTree as ET

    failures = [c for c in report.checks if c.status == FAIL or (strict and c.status == WARN)]
    suite = ET.Element(
        "testsuite",
        name=JUNIT_SUITE_NAME,
        tests=str(len(report.checks)),
        failures=str(len(failures)),
    )
    for check in report.checks:
        case = ET.SubElement(suite, "testcase", classname="autoops.health", name=check.name)
        message = xml_text(redact_secrets(check.message))  # a server may echo the keys
        if check in failures:
            ET.SubElement(case, "failure", message=message, type=check.status).text = message
        ET.SubElement(case, "system-out").text = f"{check.status}: {message}"
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


# Characters XML 1.0 has no place for, even escaped (a server's version or message may hold
# them): written as \xNN / \uNNNN, as the terminal table shows them.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(text: str) -> str:
    """``text`` with the characters XML cannot carry written out as escapes."""
    return _NOT_XML.sub(
        lambda found: (
            f"\\x{ord(found.group()):02x}"
            if ord(found.group()) < 0x100
            else f"\\u{ord(found.group()):04x}"
        ),
        text,
    )
