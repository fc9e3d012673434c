"""Where settings come from, which one wins, and every problem with them at once.

Sources, highest first (ARCHITECTURE.md, Configuration): command-line flags, the environment,
``.env`` in the working directory, the project file ``autoops.toml`` (``--config``,
``AUTOOPS_CONFIG``, or found by walking up from the working directory), the user file
(``$XDG_CONFIG_HOME/autoops/config.toml``, by default ``~/.config/autoops/config.toml``),
then the defaults. Both the CLI (``load_settings``) and a plain ``LangfuseConfig()`` use the
layering below, so there is one precedence rule in the code base.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings, InitSettingsSource, PydanticBaseSettingsSource

from config.errors import ConfigurationError, LocalFileError
from config.settings import (
    SETTINGS_MODELS,
    DataMaskingConfig,
    LangfuseConfig,
    env_names,
    is_loopback_host,
)
from config.tracing.sampling import (
    SAMPLING_TABLE,
    SamplingRules,
    parse_rule_table,
    rules_from_settings,
)

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo

PROJECT_FILE_NAME = "autoops.toml"
CONFIG_ENV = "AUTOOPS_CONFIG"
# Tables of autoops.toml owned by features that are not settings models: the sampling rules
# (``sampling.<kind>.<name>``, read by ``_from_toml`` into the same layered values).
OTHER_KNOWN_TABLES = frozenset({SAMPLING_TABLE})


@dataclass(frozen=True)
class Origin:
    """Where a setting's value came from."""

    kind: str  # default | flag | env | dotenv | file
    name: str = ""  # flag, environment variable, or "table.key"
    path: Path | None = None

    def describe(self) -> str:
        """A human description, e.g. ``environment variable LANGFUSE_HOST``."""
        if self.kind == "flag":
            return f"flag {self.name}"
        if self.kind == "env":
            return f"environment variable {self.name}"
        if self.kind == "dotenv":
            return f"{self.path} ({self.name})"
        if self.kind == "file":
            return f"{self.path} (key {self.name})"
        return "default"


@dataclass(frozen=True)
class SettingProblem:
    """One problem with one setting; ``source`` says where the bad value came from."""

    setting: str
    source: str
    message: str

    def as_dict(self) -> dict[str, str]:
        """The JSON shape of ``config validate``."""
        return {"setting": self.setting, "source": self.source, "message": self.message}

    def line(self) -> str:
        """One line for the terminal."""
        return f"{self.setting} ({self.source}): {self.message}"


@dataclass
class RawValue:
    """A value as a source gave it, before validation."""

    value: Any
    origin: Origin


@dataclass
class SettingsFiles:
    """The files the settings were read from (or would be)."""

    project: Path | None
    user: Path
    dotenv: Path


@dataclass
class LoadedSettings:
    """The effective settings with their origins, or the problems that stop them."""

    langfuse: LangfuseConfig | None
    masking: DataMaskingConfig | None
    values: dict[str, RawValue]
    files: SettingsFiles
    problems: list[SettingProblem] = field(default_factory=list)
    warnings: list[SettingProblem] = field(default_factory=list)
    # Values a higher source overrode, per setting, highest first (what `sampling show` explains).
    shadowed: dict[str, list[RawValue]] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    @property
    def mode(self) -> str:
        """``langfuse`` or ``local``; ``local`` when the settings are invalid."""
        return self.langfuse.mode if self.langfuse is not None else "local"

    def origin_of(self, setting: str) -> Origin:
        """Where ``setting`` (``table.key``) came from."""
        raw = self.values.get(setting)
        return raw.origin if raw is not None else Origin("default")

    @property
    def sampling_rules(self) -> SamplingRules:
        """The sampling rules of the user and project files (project wins per rule)."""
        return rules_from_settings(_sampling_values(self.values))

    def require(self) -> tuple[LangfuseConfig, DataMaskingConfig]:
        """The validated models, or ``ConfigurationError`` listing every problem."""
        if self.langfuse is None or self.masking is None or self.problems:
            count = len(self.problems)
            raise ConfigurationError(
                f"invalid configuration ({count} problem{'s' if count != 1 else ''}): "
                + "; ".join(p.line() for p in self.problems),
                problems=[p.line() for p in self.problems],
                hint="run `autoops config validate` for details",
            )
        return self.langfuse, self.masking


# --- finding the files ------------------------------------------------------------------


def user_config_path(environ: Mapping[str, str]) -> Path:
    """The user file: ``$XDG_CONFIG_HOME/autoops/config.toml`` or ``~/.config/...``."""
    base = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME", "~")) / ".config")
    return Path(base).expanduser() / "autoops" / "config.toml"


def find_project_file(
    cwd: Path, environ: Mapping[str, str], explicit: Path | None = None
) -> Path | None:
    """The project file: ``explicit``, else ``AUTOOPS_CONFIG``, else walk up from ``cwd``.

    An explicit path (flag or environment) that does not exist is an error (exit 6), not
    silently ignored.
    """
    chosen = explicit if explicit is not None else environ.get(CONFIG_ENV) or None
    if chosen is not None:
        path = Path(chosen).expanduser()
        if not path.is_absolute():
            path = cwd / path
        if not path.is_file():
            source = "--config" if explicit is not None else CONFIG_ENV
            raise LocalFileError(f"config file {path} (from {source}) does not exist")
        return path
    for directory in (cwd, *cwd.parents):
        candidate = directory / PROJECT_FILE_NAME
        if candidate.is_file():
            return candidate
    return None


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; a syntax error becomes ``ConfigurationError`` naming file and line."""
    import tomllib

    try:
        with path.open("rb") as handle:
            data: dict[str, Any] = tomllib.load(handle)
            return data
    except OSError as exc:
        raise LocalFileError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:  # TOML is UTF-8; tomllib lets this one through
        raise ConfigurationError(
            f"{path}: invalid TOML: not UTF-8 (byte {exc.start + 1}: {exc.object[exc.start : exc.start + 1]!r})"
        ) from None


def read_dotenv(path: Path) -> dict[str, str]:
    """The variables of a ``.env`` file (empty when there is none)."""
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


# --- layering ---------------------------------------------------------------------------


def _setting_key(model: type[BaseSettings], name: str) -> str:
    return f"{model.toml_section}.{name}"  # type: ignore[attr-defined]


def _from_variables(
    variables: Mapping[str, str], kind: str, path: Path | None
) -> dict[str, RawValue]:
    found: dict[str, RawValue] = {}
    for model in SETTINGS_MODELS:
        for name in model.model_fields:
            for var in env_names(model, name):
                value = variables.get(var)
                if value is not None and value.strip() != "":
                    found[_setting_key(model, name)] = RawValue(value, Origin(kind, var, path))
                    break
    return found


def _from_toml(
    data: dict[str, Any], path: Path, problems: list[SettingProblem], warnings: list[SettingProblem]
) -> dict[str, RawValue]:
    found: dict[str, RawValue] = {}
    tables = {model.toml_section: model for model in SETTINGS_MODELS}
    for table, content in data.items():
        if table == SAMPLING_TABLE:
            rules, rule_problems = parse_rule_table(content)
            for setting, rate in rules:
                found[setting] = RawValue(rate, Origin("file", setting, path))
            for setting, message in rule_problems:
                problems.append(SettingProblem(setting, f"{path} (key {setting})", message))
            continue
        model = tables.get(table)
        if model is None:
            if table not in OTHER_KNOWN_TABLES:
                known = ", ".join(f"[{t}]" for t in sorted(tables))
                warnings.append(
                    SettingProblem(table, str(path), f"unknown table, ignored (known: {known})")
                )
            continue
        if not isinstance(content, dict):
            problems.append(SettingProblem(table, str(path), f"[{table}] must be a table"))
            continue
        for key, value in content.items():
            setting = f"{table}.{key}"
            if key not in model.model_fields:
                known = ", ".join(sorted(model.model_fields))
                problems.append(
                    SettingProblem(
                        setting, f"{path} (key {setting})", f"unknown setting (known: {known})"
                    )
                )
                continue
            found[setting] = RawValue(value, Origin("file", setting, path))
    return found


@dataclass
class Layers:
    """Raw values of every source merged by precedence, with their origins."""

    values: dict[str, RawValue]
    files: SettingsFiles
    problems: list[SettingProblem]
    warnings: list[SettingProblem]
    shadowed: dict[str, list[RawValue]] = field(default_factory=dict)

    def merge(self, higher: Mapping[str, RawValue]) -> None:
        """Lay a higher source over the values, remembering what it overrides."""
        for setting, raw in higher.items():
            previous = self.values.get(setting)
            if previous is not None:
                self.shadowed.setdefault(setting, []).insert(0, previous)
            self.values[setting] = raw


def _sampling_values(values: Mapping[str, RawValue]) -> dict[str, Any]:
    prefix = f"{SAMPLING_TABLE}."
    return {key: raw.value for key, raw in values.items() if key.startswith(prefix)}


def collect_layers(
    *,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    flags: Mapping[str, tuple[Any, str]] | None = None,
) -> Layers:
    """Merge every source, lowest first, so a higher source overwrites a lower one.

    ``flags`` maps ``table.key`` to ``(value, "--flag-name")``.
    """
    cwd = cwd or Path.cwd()
    environ = os.environ if environ is None else environ
    problems: list[SettingProblem] = []
    warnings: list[SettingProblem] = []
    files = SettingsFiles(
        project=find_project_file(cwd, environ, config_file),
        user=user_config_path(environ),
        dotenv=cwd / ".env",
    )
    layers = Layers({}, files, problems, warnings)
    for path in (files.user, files.project):
        if path is not None and path.is_file():
            try:
                data = read_toml(path)
            except ConfigurationError as exc:
                problems.append(SettingProblem("file", str(path), exc.message.split(": ", 1)[1]))
                continue
            layers.merge(_from_toml(data, path, problems, warnings))
    layers.merge(_from_variables(read_dotenv(files.dotenv), "dotenv", files.dotenv))
    layers.merge(_from_variables(environ, "env", None))
    layers.merge(
        {
            setting: RawValue(value, Origin("flag", flag))
            for setting, (value, flag) in (flags or {}).items()
        }
    )
    return layers


def load_sampling_rules(
    *, cwd: Path | None = None, environ: Mapping[str, str] | None = None
) -> SamplingRules:
    """The sampling rules a plain ``LangfuseConfig()`` process applies (library use).

    Read from the same files as the settings; a bad rule, or a file that is not TOML, is a
    ``ConfigurationError`` (the rules must not silently differ between processes).
    """
    layers = collect_layers(cwd=cwd, environ=environ)
    bad = [
        p
        for p in layers.problems
        if p.setting in ("file", SAMPLING_TABLE) or p.setting.startswith(f"{SAMPLING_TABLE}.")
    ]
    if bad:
        raise ConfigurationError(
            "invalid sampling rules: " + "; ".join(p.line() for p in bad),
            problems=[p.line() for p in bad],
            hint="run `autoops config validate` for details",
        )
    return rules_from_settings(_sampling_values(layers.values))


class LayeredSettingsSource(PydanticBaseSettingsSource):
    """pydantic-settings source of a plain ``LangfuseConfig()``: every layer but flags."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Unused: ``__call__`` answers for all fields at once."""
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        layers = collect_layers()
        if layers.problems:
            raise ConfigurationError(
                "invalid configuration: " + "; ".join(p.line() for p in layers.problems)
            )
        section = self.settings_cls.toml_section  # type: ignore[attr-defined]
        prefix = f"{section}."
        return {
            key[len(prefix) :]: raw.value
            for key, raw in layers.values.items()
            if key.startswith(prefix)
        }


# --- validation -------------------------------------------------------------------------


def _problem_from_error(
    model: type[BaseSettings], error: Any, values: dict[str, RawValue]
) -> SettingProblem:
    message = str(error["msg"]).removeprefix("Value error, ")
    loc = error.get("loc") or ()
    name = str(loc[0]) if loc else ""
    if not name and ": " in message:
        # Cross-field checks name their field as "field: message".
        head, rest = message.split(": ", 1)
        if head in model.model_fields:
            name, message = head, rest
    setting = _setting_key(model, name) if name else model.toml_section  # type: ignore[attr-defined]
    raw = values.get(setting)
    origin = raw.origin if raw is not None else Origin("default")
    secret = name in model.model_fields and model.model_fields[name].annotation in (
        SecretStr,
        SecretStr | None,
    )
    if error.get("type") != "value_error" and not secret and raw is not None:
        message = f"{message}, got {raw.value!r}"
    return SettingProblem(setting, origin.describe(), message)


def _validate(
    model: type[BaseSettings], values: dict[str, RawValue], problems: list[SettingProblem]
) -> Any:
    section = model.toml_section  # type: ignore[attr-defined]
    data = {
        key.split(".", 1)[1]: raw.value
        for key, raw in values.items()
        if key.split(".", 1)[0] == section
    }
    try:
        # The sources were merged above; validate exactly that, without reading them again.
        return model(_build_sources=((InitSettingsSource(model, init_kwargs=data),), data))
    except ValidationError as exc:
        problems.extend(_problem_from_error(model, err, values) for err in exc.errors())
        return None


def _warnings_for(
    config: LangfuseConfig, loaded_values: dict[str, RawValue], files: SettingsFiles
) -> list[SettingProblem]:
    def source(setting: str) -> str:
        raw = loaded_values.get(setting)
        return raw.origin.describe() if raw else "default"

    found: list[SettingProblem] = []
    if not config.enabled or not config.tracing_enabled:
        key = "langfuse.enabled" if not config.enabled else "langfuse.tracing_enabled"
        found.append(SettingProblem(key, source(key), "tracing is disabled: nothing is recorded"))
    if config.enable_sampling and config.sample_rate == 0:
        found.append(
            SettingProblem(
                "langfuse.sample_rate",
                source("langfuse.sample_rate"),
                "sample rate 0 drops every trace",
            )
        )
    if config.has_keys and config.uses_plain_http and is_loopback_host(config.hostname):
        found.append(
            SettingProblem(
                "langfuse.host", source("langfuse.host"), "plain http (acceptable on loopback only)"
            )
        )
    secret = loaded_values.get("langfuse.secret_key")
    for path in (files.project, files.user):
        if secret is None or path is None or secret.origin.path != path:
            continue
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            found.append(
                SettingProblem(
                    "langfuse.secret_key",
                    secret.origin.describe(),
                    f"file holding the secret key is readable by others (mode {stat.S_IMODE(mode):o}); "
                    f"run chmod 600 {path}, or move the key to the environment or .env",
                )
            )
    return found


def load_settings(
    *,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    flags: Mapping[str, tuple[Any, str]] | None = None,
) -> LoadedSettings:
    """Read every source and validate; problems are collected, not raised.

    Raises ``LocalFileError`` only when an explicitly named config file does not exist.
    """
    layers = collect_layers(cwd=cwd, environ=environ, config_file=config_file, flags=flags)
    problems = list(layers.problems)
    langfuse = _validate(LangfuseConfig, layers.values, problems)
    masking = _validate(DataMaskingConfig, layers.values, problems)
    warnings = list(layers.warnings)
    if langfuse is not None:
        warnings.extend(_warnings_for(langfuse, layers.values, layers.files))
    return LoadedSettings(
        langfuse=langfuse,
        masking=masking,
        values=layers.values,
        files=layers.files,
        problems=problems,
        warnings=warnings,
        shadowed=layers.shadowed,
    )
