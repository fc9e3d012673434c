"""Hostile configuration: random project files and environment values (property tests).

Whatever a configuration file or an environment variable holds, ``autoops config validate``
ends with exit 0 (valid) or 3 (invalid), every problem on its own line naming the setting
and where it came from (the file, or the variable), never a traceback and never the secret.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.settings import SETTINGS_MODELS
from config.settings_layers import env_names
from tests.conftest import KNOWN_SECRET, Cli, CliResult, Figures
from tests.support.property_budget import examples

SETTINGS = [(model.toml_section, name) for model in SETTINGS_MODELS for name in model.model_fields]
ENV_NAMES = sorted({env for model in SETTINGS_MODELS for name in model.model_fields
                    for env in env_names(model, name)})  # fmt: skip
HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


def toml_value(value: Any) -> str:
    """A TOML literal for a JSON-like value (floats include nan and inf, as TOML allows)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON escapes are TOML basic-string escapes
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


SCALARS = (
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(
        [
            "http://127.0.0.1:3000",
            "https://cloud.langfuse.com",
            "ftp://x",
            "0.5",
            "1e400",
            "true",
            "pk-lf-x",
            KNOWN_SECRET,
        ]
    )
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def project_files(draw: st.DrawFn) -> str:
    """An autoops.toml with known and unknown keys holding any kind of value."""
    tables: dict[str, dict[str, Any]] = {}
    for _ in range(draw(st.integers(1, 6))):
        if draw(st.booleans()):
            table, key = draw(st.sampled_from(SETTINGS))
        else:
            table = draw(st.sampled_from(["langfuse", "masking", "sampling", "other"]))
            key = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12))
        tables.setdefault(table, {})[key] = draw(VALUES)
    lines = []
    for table, values in tables.items():
        lines.append(f"[{table}]")
        lines.extend(f"{json.dumps(k)} = {toml_value(v)}" for k, v in values.items())
    return "\n".join(lines) + "\n"


def assert_clean(result: Any, figures: Figures) -> None:
    figures.exited(result.exit_code)
    assert result.exit_code in (0, 3), result.both
    assert "Traceback" not in result.both
    assert KNOWN_SECRET not in result.both and KNOWN_SECRET[6:] not in result.both
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    if result.exit_code == 3:
        assert errors, result.stderr


@settings(max_examples=examples(60), deadline=None, suppress_health_check=HEALTH)
@given(text=project_files())
def test_any_project_file_is_valid_or_each_problem_is_named(
    cli: Cli, workdir: Path, reliability: Figures, text: str
) -> None:
    path = workdir / "autoops.toml"
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    reliability.tried()
    result = cli("config", "validate")
    assert_clean(result, reliability)
    for line in result.stderr.splitlines():
        if line.startswith("error:"):
            # The setting and the file it came from, or the file itself for a syntax error.
            assert str(path) in line or "langfuse." in line or "masking." in line, line


def validate_with_file(cli: Cli, path: Path, raw: bytes, reliability: Figures) -> CliResult:
    """``config validate`` with ``raw`` as the file at ``path``: clean, whatever it holds."""
    path.write_bytes(raw)
    reliability.tried()
    result = cli("config", "validate")
    assert_clean(result, reliability)
    return result


@settings(max_examples=examples(60), deadline=None, suppress_health_check=HEALTH)
@given(raw=st.binary(max_size=200))
def test_any_bytes_as_a_project_file(
    cli: Cli, workdir: Path, reliability: Figures, raw: bytes
) -> None:
    path = workdir / "autoops.toml"
    result = validate_with_file(cli, path, raw, reliability)
    if "invalid TOML" in result.stderr:
        assert str(path) in result.stderr
        assert any(where in result.stderr for where in ("line", "end of document", "byte"))


@settings(max_examples=examples(60), deadline=None, suppress_health_check=HEALTH)
@given(raw=st.binary(max_size=200))
def test_any_bytes_as_a_dotenv_file(
    cli: Cli, workdir: Path, reliability: Figures, raw: bytes
) -> None:
    """A .env that is not UTF-8 (Latin-1 from an old editor) was an internal error."""
    path = workdir / ".env"
    result = validate_with_file(cli, path, raw, reliability)
    if "not UTF-8" in result.stderr:
        assert result.exit_code == 3 and f"({path}): not UTF-8 (byte" in result.stderr


@settings(max_examples=examples(60), deadline=None, suppress_health_check=HEALTH)
@given(
    env=st.dictionaries(
        st.sampled_from(ENV_NAMES),
        st.text(max_size=40).filter(lambda v: "\x00" not in v)
        | st.sampled_from(["nan", "inf", "-1", "1e400", "0", "yes", "", " 0.5 ", "http://[::1"]),
        max_size=6,
    )
)
def test_any_environment_values(cli: Cli, reliability: Figures, env: dict[str, str]) -> None:
    reliability.tried()
    keys = {"LANGFUSE_PUBLIC_KEY": "pk-lf-hostile", "LANGFUSE_SECRET_KEY": KNOWN_SECRET}
    result = cli("config", "validate", env={**keys, **env, "LANGFUSE_SECRET_KEY": KNOWN_SECRET})
    assert_clean(result, reliability)
    for line in result.stderr.splitlines():
        if line.startswith("error:") and "environment variable" in line:
            assert any(name in line for name in env), line
