"""Validate JSON bodies against Langfuse's OpenAPI spec (``reference/langfuse/openapi.yml``).

The spec is loaded once per process; one validator per operation response (or component
schema) is built on first use and kept, so a test can check hundreds of bodies cheaply.

OpenAPI 3.0 details handled here:

- ``$ref`` into ``#/components/schemas`` resolves through a ``referencing`` registry holding
  the whole spec;
- ``nullable: true`` next to a ``$ref`` (``level: {$ref: ObservationLevel, nullable: true}``)
  means "the referenced schema or null"; a validator applies the ``$ref`` alone and would
  refuse null, so such schemas are rewritten to ``anyOf: [{$ref}, null]`` when loaded;
- ``nullable`` next to a ``type`` and the ``date-time`` format are checked by
  ``OAS30Validator`` itself.
"""

from __future__ import annotations

import functools
from typing import Any

from tests.support.paths import REPO_ROOT

SPEC_PATH = REPO_ROOT / "reference" / "langfuse" / "openapi.yml"
SPEC_URI = "urn:langfuse:openapi"
_NULL_ONLY = {"enum": [None]}


@functools.cache
def load_spec() -> dict[str, Any]:
    """The spec as a dict, nullable ``$ref`` schemas rewritten (the repository carries it)."""
    import yaml

    # The C loader when present: the spec is 17,000 lines.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with SPEC_PATH.open(encoding="utf-8") as handle:
        spec: dict[str, Any] = yaml.load(handle, Loader=loader)
    return dict(_nullable_refs(spec))


def _nullable_refs(node: Any) -> Any:
    if isinstance(node, list):
        return [_nullable_refs(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _nullable_refs(value) for key, value in node.items()}
    if "$ref" in node and node.get("nullable") is True:
        rest = {key: value for key, value in node.items() if key not in ("$ref", "nullable")}
        return {**rest, "anyOf": [{"$ref": node["$ref"]}, _NULL_ONLY]}
    return node


@functools.cache
def _registry() -> Any:
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    resource = Resource.from_contents(load_spec(), default_specification=DRAFT4)
    return Registry().with_resource(SPEC_URI, resource)


@functools.cache
def _validator(pointer: str) -> Any:
    """A validator of the schema at ``pointer`` (a JSON pointer into the spec)."""
    from openapi_schema_validator import OAS30Validator

    return OAS30Validator(
        {"$ref": f"{SPEC_URI}#{pointer}"},
        registry=_registry(),
        format_checker=OAS30Validator.FORMAT_CHECKER,
    )


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


def response_pointer(path_template: str, method: str, status: int) -> str:
    """The JSON pointer of an operation's ``application/json`` response schema."""
    spec = load_spec()
    operation = spec["paths"].get(path_template, {}).get(method.lower())
    if operation is None:
        raise AssertionError(f"the spec has no operation {method.upper()} {path_template}")
    response = operation["responses"].get(str(status))
    if response is None:
        raise AssertionError(f"{method.upper()} {path_template} documents no {status} response")
    if "schema" not in response.get("content", {}).get("application/json", {}):
        raise AssertionError(f"{method.upper()} {path_template} {status} has no JSON schema")
    return (
        f"/paths/{_escape(path_template)}/{method.lower()}/responses/{status}"
        "/content/application~1json/schema"
    )


def _check(validator: Any, body: Any, what: str) -> None:
    errors = sorted(validator.iter_errors(body), key=lambda error: list(error.absolute_path))
    if not errors:
        return
    lines = [f"{what}: {len(errors)} schema violation(s)"]
    for error in errors[:10]:
        where = "/".join(str(part) for part in error.absolute_path) or "(root)"
        lines.append(f"  at {where}: {error.message[:300]}")
        for sub in (error.context or [])[:3]:
            sub_where = "/".join(str(part) for part in sub.absolute_path) or "(root)"
            lines.append(f"    - {sub_where}: {sub.message[:200]}")
    raise AssertionError("\n".join(lines))


def validate_response(path_template: str, method: str, status: int, body: Any) -> None:
    """Assert that ``body`` matches the spec's response schema of that operation."""
    pointer = response_pointer(path_template, method, status)
    _check(_validator(pointer), body, f"{method.upper()} {path_template} {status}")


def validate_schema(name: str, body: Any) -> None:
    """Assert that ``body`` matches the component schema ``name``."""
    if name not in load_spec()["components"]["schemas"]:
        raise AssertionError(f"the spec has no component schema {name}")
    _check(_validator(f"/components/schemas/{_escape(name)}"), body, f"schema {name}")
