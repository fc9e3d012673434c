"""Which operations of the API 4.35.0 contract ``autoops serve`` answers, found by asking it.

Every operation of ``reference/langfuse/api-4.35.0-contract.json`` is sent, without keys, to
a running ``autoops serve`` in its two modes (default and ``--v4-only``): a route that asks for keys
(401), or answers without them (health), is answered; Langfuse's 404 ``Route ... not found``
(or 405) means not answered; the ``events_only`` 404 means refused as Langfuse v4 refuses
it. ``docs/serve-api.md`` holds the table this builds (a test keeps them equal);
``python -m tests.support.serve_operations`` prints it.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.paths import REPO_ROOT
from tests.support.serve_process import ServeHandle, start_serve, stop_serve

CONTRACT = REPO_ROOT / "reference" / "langfuse" / "api-4.35.0-contract.json"
ANSWERED = "answered"
REFUSED = "404, as Langfuse v4 (events_only)"
NOT_ANSWERED = "not answered (404)"


@dataclass(frozen=True)
class Operation:
    """One operation of the contract and what the server does with it in each mode."""

    method: str
    path: str
    operation_id: str
    deprecated: bool
    default: str
    v4_only: str

    def row(self) -> str:
        deprecated = "deprecated" if self.deprecated else ""
        return (
            f"| `{self.method} {self.path}` | {self.operation_id} | {deprecated} | "
            f"{self.default} | {self.v4_only} |"
        )


def contract_operations() -> list[dict[str, Any]]:
    """The contract's operations, in its order."""
    operations: list[dict[str, Any]] = json.loads(CONTRACT.read_text(encoding="utf-8"))[
        "operations"
    ]
    return operations


def _outcome(status: int, body: Any) -> str:
    if status in (200, 401):
        return ANSWERED
    if status == 404 and "events_only" in str(body.get("message", "")):
        return REFUSED
    assert status in (404, 405), (status, body)
    assert body.get("error") in ("LangfuseNotFoundError", "MethodNotAllowedError"), body
    return NOT_ANSWERED


def served_operations(default: ServeHandle, v4_only: ServeHandle) -> list[Operation]:
    """Every contract operation with what the two servers (default, ``--v4-only``) do."""
    import httpx

    found = []
    for operation in contract_operations():
        path = operation["path"]
        for parameter in operation["parameters"]:
            if parameter["location"] == "path":
                path = path.replace("{" + parameter["name"] + "}", "x")
        outcomes = []
        for handle in (default, v4_only):
            response = httpx.request(operation["method"], handle.url + path, timeout=30)
            outcomes.append(_outcome(response.status_code, response.json()))
        found.append(
            Operation(
                operation["method"],
                operation["path"],
                operation["operationId"],
                bool(operation.get("deprecated")),
                *outcomes,
            )
        )
    return found


def table(operations: list[Operation]) -> str:
    """The Markdown table of ``docs/serve-api.md``."""
    head = (
        "| operation | operationId | 4.35.0 | `autoops serve` | `autoops serve --v4-only` |\n"
        "|---|---|---|---|---|"
    )
    return head + "\n" + "\n".join(operation.row() for operation in operations)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        default = start_serve(Path(folder) / "default" / "traces.db")
        v4_only = start_serve(Path(folder) / "v4only" / "traces.db", "--v4-only")
        try:
            print(table(served_operations(default, v4_only)))
        finally:
            stop_serve(default)
            stop_serve(v4_only)
