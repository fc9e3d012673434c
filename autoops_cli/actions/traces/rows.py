"""The rows ``autoops traces`` prints: one per trace for ``list``, a tree for ``show``.

Built from Langfuse's answers (or the local store's, in the same shapes): a row from a
trace's root observation (v2) or a v1 trace, the tree from a trace's observations. A field
of the wrong type is left out (shown as empty), so a strange answer never makes the command
fail; these are also the ``--json`` documents.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from autoops_cli.langfuse_api.client import count
from autoops_cli.timespec import moment_order

# Deeper observations are listed flat under their ancestor at this depth: the traces of this
# system are 4 levels deep, and an answer nesting hundreds could not be written as JSON.
MAX_TREE_DEPTH = 64
# An input or output nested deeper is shown as its text (with the tree around it, the JSON
# encoder of --json must still reach its bottom).
MAX_VALUE_DEPTH = 500


def trace_document(trace: dict[str, Any], roots: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``traces show --json`` document: the trace's id, name, time and nested tree."""
    return {
        "id": trace.get("id"),
        "name": trace.get("name"),
        "timestamp": trace.get("timestamp"),
        "observations": roots,
    }


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _scalar(value: Any) -> str | int | float | bool | None:
    """A field shown as it is: a string, a finite number, a boolean; anything else is None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if isinstance(value, (str, int, float, bool)) else None


def _decoded(value: Any) -> Any:
    """A value sent as JSON text (Langfuse v4 keeps metadata values as strings), decoded;
    anything else, and text that is not JSON, as it came."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):  # not JSON, or nested beyond the parser
            return value
    return value


def _number_text(value: Any) -> Any:
    """A number sent as text as the number; anything else as it came."""
    parsed = _decoded(value)
    return parsed if isinstance(parsed, (int, float)) and not isinstance(parsed, bool) else value


def _seconds(value: Any) -> float | None:
    """A duration: a finite number (never a boolean), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        seconds = float(value)
    except OverflowError:
        return None
    return seconds if math.isfinite(seconds) else None


def trace_row(trace: dict[str, Any]) -> dict[str, Any]:
    """The columns of ``traces list`` from a v1 trace."""
    metadata = _mapping(trace.get("metadata"))
    output = _mapping(trace.get("output"))
    decisions = _mapping(output.get("decisions"))
    conflicts = count(
        output["conflicts_detected"]
        if "conflicts_detected" in output  # the replay's outcome; else the core's count
        else metadata.get("conflict_count")
    )
    raw_name = trace.get("name")
    name = raw_name if isinstance(raw_name, str) else ""
    declared = trace.get("level")  # the root observation's (v2); v1 traces have none
    if declared in ("DEBUG", "DEFAULT", "WARNING", "ERROR"):
        level = "WARNING" if conflicts and declared in ("DEBUG", "DEFAULT") else declared
    else:  # a failed event's trace has no output; a conflict is a warning
        level = "ERROR" if not output else ("WARNING" if conflicts else "DEFAULT")
    agents = output.get("agents")
    decision_count = len(decisions)
    if not isinstance(agents, list):  # traced through the core's API: in the metadata
        agents = _decoded(metadata.get("participating_agents"))
        decision_count = count(metadata.get("decision_count"))
    return {
        "id": _scalar(trace.get("id")),
        "timestamp": _scalar(trace.get("timestamp")),
        "event_type": _scalar(metadata.get("event_type")) or name.removeprefix("simulation."),
        "product_id": _scalar(metadata.get("product_id")),
        "severity": _scalar(metadata.get("severity")),
        "agents": [a for a in agents if isinstance(a, str)] if isinstance(agents, list) else [],
        "decisions": decision_count,
        "conflicts": conflicts,
        "duration_s": _seconds(trace.get("latency")),
        "level": level,
        "session_id": _scalar(trace.get("sessionId")),
    }


def _observation_ms(observation: dict[str, Any], start: Any) -> float | None:
    """Its ``latency`` (seconds, to the microsecond) in milliseconds; from the start and end
    times, which the API gives to the millisecond, only without one (0.53 ms showed as
    1.0 and 0.19 as 0.0, where `traces list` and `metrics` gave the latency)."""
    latency = _seconds(observation.get("latency"))
    if latency is not None and 0 <= latency * 1000 < math.inf:  # 1e306 s: no milliseconds
        return round(latency * 1000, 3)
    return _duration_ms(start, observation.get("endTime"))


def _duration_ms(start: Any, end: Any) -> float | None:
    """Milliseconds between two ISO timestamps; None unless both are (and comparable)."""
    if not (isinstance(start, str) and isinstance(end, str) and start and end):
        return None
    try:
        begin = datetime.fromisoformat(start.replace("Z", "+00:00"))
        finish = datetime.fromisoformat(end.replace("Z", "+00:00"))
        return round((finish - begin).total_seconds() * 1000, 3)
    except (ValueError, TypeError, OverflowError):  # not ISO, or one naive and one aware
        return None


def _reached(starts: list[dict[str, Any]]) -> set[int]:
    """The nodes (by identity) in the subtrees of ``starts``."""
    seen: set[int] = set()
    stack = list(starts)
    while stack:
        node = stack.pop()
        if id(node) not in seen:
            seen.add(id(node))
            stack.extend(node["children"])
    return seen


def observation_tree(trace: dict[str, Any]) -> list[dict[str, Any]]:
    """The trace's observations as nested nodes (children by start time).

    Observations without a string id are left out. A parent chain that loops back on itself
    (only a broken answer has one) is cut at its earliest observation, which becomes a root:
    every observation is shown, and the result stays a tree, at most ``MAX_TREE_DEPTH`` deep.
    """
    nodes: dict[str, dict[str, Any]] = {}
    order: dict[str, int] = {}
    observations = trace.get("observations")
    for observation in observations if isinstance(observations, list) else []:
        if not isinstance(observation, dict) or not isinstance(observation.get("id"), str):
            continue
        start = _scalar(observation.get("startTime"))
        metadata = _mapping(observation.get("metadata"))
        name = _scalar(observation.get("name"))
        node = {
            "id": observation["id"],
            "name": name,
            "type": _scalar(observation.get("type")),
            "level": _scalar(observation.get("level")),
            "status_message": _scalar(observation.get("statusMessage")),
            "start_time": start,
            "duration_ms": _observation_ms(observation, start),
            "confidence": _scalar(_number_text(metadata.get("confidence"))),
            "parent": observation.get("parentObservationId"),
            "children": [],
        }
        sequence = _number_text(metadata.get("sequence"))
        order[observation["id"]] = sequence if isinstance(sequence, int) else 0
        node.update(
            _what_happened(str(name or ""), metadata, json_or_text(observation.get("output")))
        )
        nodes[observation["id"]] = node
    # By start time, then by the order they were recorded in (events logged within one
    # millisecond, such as a conflict and its resolution, share a timestamp).
    ordered = sorted(
        nodes.values(), key=lambda n: (moment_order(n["start_time"]), order[n["id"]], n["id"])
    )
    roots: list[dict[str, Any]] = []
    for node in ordered:
        parent = nodes.get(node["parent"]) if isinstance(node["parent"], str) else None
        (parent["children"] if parent is not None and parent is not node else roots).append(node)
    reached = _reached(roots)
    for node in ordered:
        if id(node) not in reached:  # on a loop: detach it from its parent, make it a root
            parent = nodes[node["parent"]]
            parent["children"] = [child for child in parent["children"] if child is not node]
            roots.append(node)
            reached |= _reached([node])
    for node in nodes.values():
        del node["parent"]
    _flatten_below(roots, MAX_TREE_DEPTH)
    return roots


def json_or_text(value: Any) -> Any:
    """An input or output as data: v2 answers keep them as JSON text (parsed here when it is
    JSON and nested at most ``MAX_VALUE_DEPTH`` deep), v1 as values."""
    if isinstance(value, str):
        try:  # NaN, Infinity and 1e400 as null, as --json writes them (no deep walk later)
            parsed = json.loads(value, parse_constant=_no_number, parse_float=_finite_or_none)
        except (ValueError, RecursionError):  # not JSON, or nested beyond the parser
            return value
        # Just within the parser's reach (~970 levels), it was beyond the encoder's once
        # placed in the tree: `traces show --json` failed as an internal error.
        return parsed if _nested_within(parsed, MAX_VALUE_DEPTH) else value
    return value


def _no_number(_constant: str) -> None:
    return None


def _finite_or_none(text: str) -> float | None:
    number = float(text)
    return number if math.isfinite(number) else None


def _nested_within(value: Any, limit: int) -> bool:
    """Whether ``value``'s lists and dicts nest at most ``limit`` deep (no recursion)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            if depth >= limit:
                return False
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return True


def _what_happened(name: str, metadata: dict[str, Any], output: Any) -> dict[str, Any]:
    """What a decision or a conflict resolution said, for the tree (docs/tracing-schema.md).

    A decision (``<agent>.decision``): its type, confidence, reasoning and outputs. A
    resolution (``conflict_resolution.<type>``): the rule, whose decision stood and whose
    was overturned.
    """
    if name.endswith(".decision"):
        return {
            "decision": {
                "type": _scalar(metadata.get("decision_type")),
                "confidence": _scalar(_number_text(metadata.get("confidence"))),
                "reasoning": _scalar(metadata.get("reasoning")),
                "outputs": output if isinstance(output, dict) else {},
            }
        }
    if name.startswith("conflict_resolution."):
        result = output if isinstance(output, dict) else {}
        return {
            "resolution": {
                "rule": _scalar(metadata.get("rule")),
                "stood": _scalar(result.get("winner")),
                "overturned": _scalar(metadata.get("overturned_agent"))
                or _scalar(result.get("overturned")),
            }
        }
    return {}


def _flatten_below(roots: list[dict[str, Any]], depth: int) -> None:
    """Nodes at ``depth`` get all their descendants as direct children, in tree order."""
    stack = [(node, 1) for node in roots]
    while stack:
        node, level = stack.pop()
        if level < depth:
            stack.extend((child, level + 1) for child in node["children"])
            continue
        descendants: list[dict[str, Any]] = []
        pending = list(reversed(node["children"]))
        while pending:
            child = pending.pop()
            descendants.append(child)
            pending.extend(reversed(child["children"]))
            child["children"] = []
        node["children"] = descendants
