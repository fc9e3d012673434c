"""``POST /api/public/scores``, and the score validation batch ingestion shares.

A ``CreateScoreRequest`` (or a list of them, as the Python SDK 5 sends) is checked as
Langfuse's zod schema does (name, value of the data type, one subject), stored, and
answered as the spec says; writing the same score id twice stores it once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

from autoops_cli.local_api.http.bodies import TooDeep, iso_micros, metadata_object, storable
from autoops_cli.local_api.query.errors import ApiProblem
from config.store.local_store import LocalStore
from config.tracing.ids import random_id
from config.tracing.span_records import ScoreRecord

SCORE_DATA_TYPES = frozenset({"NUMERIC", "BOOLEAN", "CATEGORICAL", "CORRECTION", "TEXT"})
# What the public API takes (``CreateScoreSource``; EVAL is Langfuse's evaluators' own).
SCORE_SOURCES = ("API", "ANNOTATION")


def _issue(path: str, message: str) -> dict[str, Any]:
    return {"code": "invalid_type", "path": [path], "message": message}


def _score_value(
    body: Mapping[str, Any], data_type: str, issues: list[dict[str, Any]]
) -> float | str:
    value = body.get("value")
    if data_type in ("CATEGORICAL", "TEXT", "CORRECTION"):
        if not isinstance(value, str):
            issues.append(_issue("value", f"{data_type} scores need a string value"))
            return ""
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        issues.append(_issue("value", "Expected number"))
        return 0.0
    if data_type == "BOOLEAN" and value not in (0, 1):
        issues.append(_issue("value", "BOOLEAN scores take 0 or 1"))
    return float(value)


def validated_score(
    body: Any, timestamp_ns: int | None = None
) -> tuple[ScoreRecord | None, list[dict[str, Any]]]:
    """A score record from a ``CreateScoreRequest`` body, or the validation issues.

    ``timestamp_ns``: when the score was made when the body says nothing (its ``timestamp``,
    the time an update sends again with the same id; default now).
    """
    if not isinstance(body, dict):
        return None, [_issue("", "Expected object")]
    issues: list[dict[str, Any]] = []
    name = body.get("name")
    if not isinstance(name, str) or not name:
        issues.append(_issue("name", "Required"))
    data_type = body.get("dataType") or (
        "CATEGORICAL" if isinstance(body.get("value"), str) else "NUMERIC"
    )
    if not isinstance(data_type, str) or data_type not in SCORE_DATA_TYPES:
        issues.append(
            _issue("dataType", f"Invalid enum value, expected one of {sorted(SCORE_DATA_TYPES)}")
        )
    value = _score_value(body, str(data_type), issues)
    for key in (
        "id",
        "traceId",
        "observationId",
        "sessionId",
        "comment",
        "environment",
        "configId",
    ):
        if body.get(key) is not None and not isinstance(body[key], str):
            issues.append(_issue(key, "Expected string"))
    # Any JSON value, as Langfuse's ingestion takes it (a list or a text was refused, and
    # the SDKs dropped the score).
    metadata = metadata_object(body.get("metadata"))
    stamp = body.get("timestamp")
    if stamp is not None:  # the SDK sends it; it was dropped (the score stamped "now")
        try:
            timestamp_ns = iso_micros(stamp) * 1000
        except ValueError:
            issues.append(_issue("timestamp", "Invalid ISO datetime"))
    source = body.get("source", "API")
    if source not in SCORE_SOURCES:
        issues.append(_issue("source", f"Invalid enum value, expected one of {SCORE_SOURCES}"))
    if not any(body.get(k) for k in ("traceId", "observationId", "sessionId")):
        # Dataset runs are not kept: a score of a run alone was acknowledged, then no read
        # could find it (its run dropped, no subject left).
        issues.append(
            _issue(
                "traceId",
                "A score needs a traceId, observationId or sessionId"
                + (" (autoops serve keeps no dataset runs)" if body.get("datasetRunId") else ""),
            )
        )
    if issues:
        return None, issues
    record = ScoreRecord(
        id=body.get("id") or random_id(),
        trace_id=body.get("traceId"),
        observation_id=body.get("observationId"),
        name=str(name),
        value=value,
        timestamp_ns=time.time_ns() if timestamp_ns is None else timestamp_ns,
        data_type=str(data_type),
        comment=body.get("comment"),
        session_id=body.get("sessionId"),
        environment=body.get("environment") or "default",
        metadata=metadata,
        source=str(source),
    )
    return record, []


def create_scores(store: LocalStore, body: Any) -> tuple[int, dict[str, Any]]:
    """Handle ``POST /api/public/scores``; the status and the body.

    One ``CreateScoreRequest`` object: 200 ``{"id"}`` (the spec). A list of them, as the SDK 5
    sends: the valid ones are stored; 202 ``{"message": "Accepted"}`` when all were, else 207
    with ``accepted``, ``rejected`` and one error per rejected score. Idempotent on ids.
    """
    try:
        body = storable(body)
    except TooDeep as problem:
        raise ApiProblem(400, {"message": "Invalid request data", "error": str(problem)}) from None
    if isinstance(body, list):
        records: list[ScoreRecord] = []
        errors: list[dict[str, str]] = []
        for index, item in enumerate(body):
            record, issues = validated_score(item)
            if record is None:
                errors.append(
                    {"message": f"score {index}: " + "; ".join(i["message"] for i in issues)}
                )
            else:
                records.append(record)
        if records:
            store.write([], records)
        if errors:
            return 207, {"accepted": len(records), "rejected": len(errors), "errors": errors}
        return 202, {"message": "Accepted"}
    record, issues = validated_score(body)
    if record is None:
        raise ApiProblem(400, {"message": "Invalid request data", "error": issues})
    store.write([], [record])
    return 200, {"id": record.id}
