"""What Langfuse reads from spans that do not come from a Langfuse SDK.

OpenTelemetry GenAI instrumentations (and OpenInference, TraceLoop, MLflow) record prompts,
completions, token usage and model parameters under their own attribute names. Langfuse's
OTel ingestion (``packages/shared/src/server/otel/OtelIngestionProcessor.ts`` and
``ObservationTypeMapper.ts`` in langfuse/langfuse) maps them onto its fields; these
functions do the same for the attributes below, in Langfuse's order of precedence:

- type: ``langfuse.observation.type``, OpenInference's ``openinference.span.kind``,
  ``gen_ai.operation.name``, a GenAI tool call (``gen_ai.tool.name`` / ``gen_ai.tool.call.id``),
  then a model name makes a generation;
- input and output: Langfuse's own, MLflow, TraceLoop entities, ``input.value`` /
  ``output.value``, ``input`` / ``output``, tool arguments and response, the flattened
  ``gen_ai.prompt.*`` / ``gen_ai.completion.*`` and ``llm.input_messages.*`` /
  ``llm.output_messages.*`` (rebuilt into lists of messages), ``gen_ai.input.messages`` /
  ``gen_ai.output.messages`` (with ``gen_ai.system_instructions`` as a leading system
  message) and ``gen_ai.tool.call.arguments`` / ``result``;
- usage: ``gen_ai.usage.*`` and ``llm.token_count.*``, normalised to ``input``, ``output``,
  ``total`` and the cache and reasoning details; cost: ``gen_ai.usage.cost`` or
  ``llm.cost.total`` as the total;
- model: ``gen_ai.response.model``, ``gen_ai.request.model``, ``llm.model_name``, ``model``;
  model parameters: ``llm.invocation_parameters`` (JSON) or the ``gen_ai.request.*`` and
  ``llm.invocation_parameters.*`` attributes (numbers and strings as they are, anything
  else as JSON text);
- the span's other attributes are kept as metadata (``filtered_attributes``), values as
  strings, without the ones that became input, output or Langfuse metadata.

Framework-specific rules of Langfuse's (the Vercel AI SDK, Genkit, LiveKit, Logfire, Flue,
Pydantic AI, Vertex ADK) and the GenAI span events are not applied: the span events are not
kept by the local store.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Mapping
from typing import Any

OPENINFERENCE_KINDS = {
    "CHAIN": "CHAIN",
    "RETRIEVER": "RETRIEVER",
    "LLM": "GENERATION",
    "EMBEDDING": "EMBEDDING",
    "AGENT": "AGENT",
    "TOOL": "TOOL",
    "GUARDRAIL": "GUARDRAIL",
    "EVALUATOR": "EVALUATOR",
}
GENAI_OPERATIONS = {
    "chat": "GENERATION",
    "completion": "GENERATION",
    "text_completion": "GENERATION",
    "generate_content": "GENERATION",
    "generate": "GENERATION",
    "embeddings": "EMBEDDING",
    "invoke_agent": "AGENT",
    "create_agent": "AGENT",
    "execute_tool": "TOOL",
}
MODEL_KEYS = (
    "langfuse.observation.model.name",
    "gen_ai.response.model",
    "ai.model.id",
    "gen_ai.request.model",
    "llm.response.model",
    "llm.model_name",
    "model",
)
_TYPE_MODEL_KEYS = (
    "langfuse.observation.model.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "llm.model_name",
    "model",
)
# Attribute pairs holding an input and an output, in Langfuse's order of precedence.
_IO_PAIRS = (
    ("mlflow.spanInputs", "mlflow.spanOutputs"),
    ("traceloop.entity.input", "traceloop.entity.output"),
    ("input.value", "output.value"),
    ("input", "output"),
    ("tool_arguments", "tool_response"),
)
_FLATTENED_IO = (
    ("gen_ai.prompt", "gen_ai.completion"),
    ("llm.input_messages", "llm.output_messages"),
)
# Keys that never stay in metadata.attributes: whatever could have been input or output.
_IO_KEYS = frozenset(
    {
        "langfuse.trace.input",
        "langfuse.trace.output",
        "langfuse.observation.input",
        "langfuse.observation.output",
        "gen_ai.system_instructions",
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.tool.call.arguments",
        "gen_ai.tool.call.result",
        *(key for pair in _IO_PAIRS for key in pair),
        "prompt",
        "all_messages_events",
        "events",
        "final_result",
        "pydantic_ai.all_messages",
    }
)
_NOT_ATTRIBUTES = (
    "gen_ai.prompt",
    "gen_ai.completion",
    "llm.input_messages",
    "llm.output_messages",
    "langfuse.trace.metadata",
    "langfuse.observation.metadata",
    "ai.telemetry.metadata",
)
_MAX_ARRAY_SLOTS = 10_000  # a flattened "gen_ai.prompt.99999999.content" must not allocate that
_DANGEROUS_KEYS = frozenset({"__proto__", "constructor", "prototype"})
_INDEX = re.compile(r"\d+")
# gen_ai.usage.* keys Langfuse folds into input / output / total and its details.
_INPUT_KEYS = ("prompt_tokens", "input_tokens", "prompt")
_OUTPUT_KEYS = ("completion_tokens", "output_tokens", "completion")
_TOTAL_KEYS = ("total_tokens", "total")
_CACHE_READ_KEYS = (
    "cache_read.input_tokens",
    "cache_read_input_tokens",
    "cache_read_tokens",
    "details.cache_read_tokens",
    "details.cache_read_input_tokens",
    "prompt_details.cache_read",
    "input_cached_tokens",
)
_CACHE_WRITE_KEYS = (
    "cache_creation.input_tokens",
    "cache_creation_input_tokens",
    "cache_write_tokens",
    "details.cache_write_tokens",
    "details.cache_creation_input_tokens",
    "prompt_details.cache_write",
    "input_cache_creation",
)
_REASONING_KEYS = ("reasoning.output_tokens", "completion_details.reasoning")
_AUDIO_KEYS = ("completion_details.audio",)
_FOLDED = frozenset(
    (
        *_INPUT_KEYS,
        *_OUTPUT_KEYS,
        *_TOTAL_KEYS,
        *_CACHE_READ_KEYS,
        *_CACHE_WRITE_KEYS,
        *_REASONING_KEYS,
        *_AUDIO_KEYS,
    )
)


def _present(value: Any) -> bool:
    """A value that counts as set (JavaScript's truthiness, which Langfuse's checks use)."""
    return value is not None and value != "" and value is not False and value != 0


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def observation_type(attributes: dict[str, Any]) -> str | None:
    """The type the GenAI conventions give a span, or None (then Langfuse's own rules apply)."""
    kind = OPENINFERENCE_KINDS.get(str(attributes.get("openinference.span.kind")))
    if kind is not None:
        return kind
    kind = GENAI_OPERATIONS.get(str(attributes.get("gen_ai.operation.name")))
    if kind is not None:
        return kind
    if _present(attributes.get("gen_ai.tool.name")) or _present(
        attributes.get("gen_ai.tool.call.id")
    ):
        return "TOOL"
    if any(_present(attributes.get(key)) for key in _TYPE_MODEL_KEYS):
        return "GENERATION"
    return None


def observation_name(span_name: str, attributes: dict[str, Any]) -> str:
    """A GenAI tool span is named after its tool."""
    tool = attributes.get("gen_ai.tool.name")
    return _text(tool) if _present(tool) else span_name


def model_name(attributes: dict[str, Any]) -> str | None:
    """The model a span names, under the first key of ``MODEL_KEYS`` that holds one."""
    for key in MODEL_KEYS:
        if _present(attributes.get(key)):
            return _text(attributes[key])
    return None


def _nested(flat: dict[str, Any], prefix: str) -> Any:
    """``prefix.0.role``, ``prefix.0.content`` ... as ``[{"role", "content"}]``.

    As Langfuse rebuilds them: numeric segments are list positions, others object keys;
    the total number of list slots is bounded, and prototype-polluting keys are dropped.
    """
    if prefix in flat:
        return flat[prefix]
    paths = []
    budget = _MAX_ARRAY_SLOTS
    for key, value in flat.items():
        if not key.startswith(prefix + "."):
            continue
        parts = key[len(prefix) + 1 :].split(".")
        slots = sum(int(part) + 1 for part in parts if _INDEX.fullmatch(part) and len(part) < 7)
        if any(_INDEX.fullmatch(p) and len(p) >= 7 for p in parts) or slots > budget:
            continue
        budget -= slots
        paths.append((parts, value))
    root: Any = [] if paths and any(_INDEX.fullmatch(p[0][0]) for p in paths) else {}
    for parts, value in paths:
        _set_path(root, parts, value)
    return root


def _set_path(root: Any, parts: list[str], value: Any) -> None:
    node = root
    for index, part in enumerate(parts):
        if part in _DANGEROUS_KEYS:
            return
        last = index == len(parts) - 1
        child: Any = value if last else ([] if _INDEX.fullmatch(parts[index + 1]) else {})
        if isinstance(node, list):
            if not _INDEX.fullmatch(part):
                return
            position = int(part)
            node.extend([None] * (position + 1 - len(node)))
            if last or node[position] is None:
                node[position] = child
            node = node[position]
        else:
            if last or part not in node:
                node[part] = child
            node = node[part]
        if not last and not isinstance(node, (list, dict)):
            return


def _with_system_instructions(messages: Any, instructions: Any) -> Any:
    """``gen_ai.system_instructions`` as a leading system message (unless one is there)."""
    parsed = messages
    if isinstance(messages, str):
        try:
            parsed = json.loads(messages)
        except ValueError:
            return messages
    if not isinstance(parsed, list):
        return messages
    if any(isinstance(m, dict) and m.get("role") == "system" for m in parsed):
        return messages
    if isinstance(instructions, str):
        with contextlib.suppress(ValueError):
            instructions = json.loads(instructions)
    return [{"role": "system", "content": instructions}, *parsed]


def input_output(attributes: dict[str, Any]) -> tuple[Any, Any]:
    """The input and output Langfuse reads from a span's attributes (None when absent)."""
    found_in = attributes.get("langfuse.observation.input")
    found_out = attributes.get("langfuse.observation.output")
    if found_in is not None or found_out is not None:
        return found_in, found_out
    for input_key, output_key in _IO_PAIRS:
        found_in, found_out = attributes.get(input_key), attributes.get(output_key)
        if _present(found_in) or _present(found_out):
            return found_in, found_out
    for input_prefix, output_prefix in _FLATTENED_IO:
        if any(key.startswith((input_prefix, output_prefix)) for key in attributes):
            return (
                _nested(
                    {k: v for k, v in attributes.items() if k.startswith(input_prefix)},
                    input_prefix,
                ),
                _nested(
                    {k: v for k, v in attributes.items() if k.startswith(output_prefix)},
                    output_prefix,
                ),
            )
    found_in = attributes.get("gen_ai.input.messages")
    found_out = attributes.get("gen_ai.output.messages")
    if _present(found_in) and _present(attributes.get("gen_ai.system_instructions")):
        found_in = _with_system_instructions(found_in, attributes["gen_ai.system_instructions"])
    if _present(found_in) or _present(found_out):
        return found_in, found_out
    found_in = attributes.get("gen_ai.tool.call.arguments")
    found_out = attributes.get("gen_ai.tool.call.result")
    if _present(found_in) or _present(found_out):
        return found_in, found_out
    return None, None


def filtered_attributes(attributes: dict[str, Any]) -> dict[str, str]:
    """The attributes kept as ``metadata.attributes``: not input, output or Langfuse
    metadata, every value as a string (JSON text for anything else), as Langfuse keeps them."""
    return {
        key: _text(value)
        for key, value in attributes.items()
        if key not in _IO_KEYS and not key.startswith(_NOT_ATTRIBUTES)
    }


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _first(raw: dict[str, float], keys: tuple[str, ...]) -> float | None:
    return next((raw[key] for key in keys if key in raw), None)


def _whole(value: float) -> int | float:
    # float(): max(inputs - cache, 0) is the int 0 when a cache exceeds its inputs, and an
    # int has no is_integer() before Python 3.12 (a 500 for Anthropic-style usage).
    return int(value) if float(value).is_integer() else value


def usage_details(attributes: dict[str, Any]) -> dict[str, int | float]:
    """Token usage from ``gen_ai.usage.*`` / ``llm.token_count.*``, as Langfuse normalises it.

    ``input`` excludes cached and cache-creation tokens, ``output`` reasoning and audio
    tokens, each kept under its own key; other keys pass through (``details.`` dropped).
    """
    raw: dict[str, float] = {}
    for key, value in attributes.items():
        if key.startswith("gen_ai.usage.") and key != "gen_ai.usage.cost":
            name = key[len("gen_ai.usage.") :]
        elif key.startswith("llm.token_count."):
            name = key[len("llm.token_count.") :]
        else:
            continue
        number = _number(value)
        if number is not None:
            raw[name] = number
    if not raw:
        return {}
    details: dict[str, int | float] = {
        (key[len("details.") :] if key.startswith("details.") else key): _whole(value)
        for key, value in raw.items()
        if key not in _FOLDED
    }
    inputs, outputs = _first(raw, _INPUT_KEYS), _first(raw, _OUTPUT_KEYS)
    total = _first(raw, _TOTAL_KEYS)
    cache_read, cache_write = _first(raw, _CACHE_READ_KEYS), _first(raw, _CACHE_WRITE_KEYS)
    reasoning, audio = _first(raw, _REASONING_KEYS), _first(raw, _AUDIO_KEYS)
    if inputs is not None:
        details["input"] = _whole(max(inputs - (cache_read or 0) - (cache_write or 0), 0))
    if outputs is not None:
        details["output"] = _whole(max(outputs - (reasoning or 0) - (audio or 0), 0))
    for name, value in (
        ("total", total),
        ("input_cached_tokens", cache_read),
        ("input_cache_creation", cache_write),
        ("output_reasoning_tokens", reasoning),
        ("output_audio_tokens", audio),
    ):
        if value is not None:
            details[name] = _whole(value)
    return details


def cost_details(attributes: dict[str, Any]) -> dict[str, float]:
    """``gen_ai.usage.cost`` (or OpenInference's ``llm.cost.total``) as the total cost."""
    for key in ("gen_ai.usage.cost", "llm.cost.total"):
        value = attributes.get(key)
        if value is not None and value != "":
            number = _number(value)
            if number is not None:
                return {"total": number}
    return {}


def _parameter(value: Any) -> Any:
    """Model parameters are strings or numbers in Langfuse; anything else as JSON text."""
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return value
    return json.dumps(value, separators=(",", ":"))


def model_parameters(attributes: dict[str, Any]) -> dict[str, Any]:
    """Model parameters from OpenInference's or the GenAI request attributes."""
    for key in ("llm.invocation_parameters", "model_config"):
        text = attributes.get(key)
        if isinstance(text, str) and text:
            try:
                parsed = json.loads(text)
            except ValueError:
                continue
            if isinstance(parsed, dict):
                return {name: _parameter(value) for name, value in parsed.items()}
    found: dict[str, Any] = {}
    for prefix in ("gen_ai.request.", "llm.invocation_parameters."):
        for key, value in attributes.items():
            if key.startswith(prefix) and key[len(prefix) :] != "model":
                found[key[len(prefix) :]] = _parameter(value)
    return found


# OpenAI's usage shapes (Chat Completions, Responses): the counts' keys and their details'.
_OPENAI_USAGE_SHAPES = (
    ("prompt_tokens", "completion_tokens", "prompt_tokens_details", "completion_tokens_details"),
    ("input_tokens", "output_tokens", "input_tokens_details", "output_tokens_details"),
)


def openai_usage(details: Mapping[str, Any]) -> dict[str, int] | None:
    """Usage details in one of OpenAI's shapes as Langfuse's ``UsageDetails`` reads them:
    ``input``, ``output``, ``total``, and each count of ``*_tokens_details`` as
    ``input_<name>`` / ``output_<name>``, taken out of ``input`` / ``output`` (cached tokens
    are part of the prompt's). None for any other shape: exactly those keys, the three counts
    present, every count a whole number of at least 0 (a detail may be null)."""
    for inputs, outputs, input_details, output_details in _OPENAI_USAGE_SHAPES:
        if inputs not in details or outputs not in details or "total_tokens" not in details:
            continue
        if not details.keys() <= {inputs, outputs, "total_tokens", input_details, output_details}:
            return None
        input_count, output_count, total = (
            _token_count(details[key]) for key in (inputs, outputs, "total_tokens")
        )
        if input_count is None or output_count is None or total is None:
            return None
        usage = {"input": input_count, "output": output_count, "total": total}
        for key, side in ((input_details, "input"), (output_details, "output")):
            nested = details.get(key)
            if nested is None:
                continue
            if not isinstance(nested, Mapping):
                return None
            for name, value in nested.items():
                if value is None:
                    continue
                count = _token_count(value)
                if count is None:
                    return None
                usage[f"{side}_{name}"] = count
                usage[side] = max(usage[side] - count, 0)
        return usage
    return None


def _token_count(value: Any) -> int | None:
    """A whole number of tokens of at least 0 (5.0 is 5, as JSON numbers are in Langfuse)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if value < 0 or not math.isfinite(value) or not float(value).is_integer():
        return None
    return int(value)
