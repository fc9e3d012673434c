"""Where settings come from and which one wins: the sources, layered, with their origins.

Sources, highest first (docs/architecture.md, Configuration): command-line flags, the
environment, ``.env`` in the working directory, the project file ``autoops.toml``
(``--config``, ``AUTOOPS_CONFIG``, or found by walking up from the working directory), the
user file (``$XDG_CONFIG_HOME/autoops/config.toml``, by default
``~/.config/autoops/config.toml``), then the defaults.

Both a plain ``LangfuseConfig()`` (through ``LayeredSettingsSource``) and the CLI's
``config.settings_sources.load_settings`` use ``collect_layers``, so there is one precedence
rule in the code base. This module knows nothing of the settings models themselves: they are
passed in, so ``config.settings`` can build on it without an import cycle.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from pydantic import AliasChoices
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from config.errors import ConfigurationError, LocalFileError
from config.sampling_rules import SAMPLING_TABLE, parse_rule_table

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
        if not _may_be_file(path):
            source = "--config" if explicit is not None else CONFIG_ENV
            what = "is not a regular file" if path.exists() else "does not exist"
            raise LocalFileError(f"config file {path} (from {source}) {what}")
        return path
    for directory in (cwd, *cwd.parents):
        candidate = directory / PROJECT_FILE_NAME
        if candidate.is_file():
            return candidate
    return None


def _may_be_file(path: Path) -> bool:
    """Whether ``path`` is a file, or cannot be looked at (a directory on its way that this
    user may not search): reading it then says why (exit 6) rather than the lookup failing
    with a traceback, or the file being passed over in silence."""
    try:
        return path.is_file()
    except OSError:
        return True


def _not_a_file(path: Path) -> str | None:
    """What stands at ``path`` instead of a configuration file, or None (a file, nothing,
    or a place this user may not look: reading it says why)."""
    try:
        if not os.path.lexists(path) or path.is_file():
            return None
        if path.is_symlink() and not path.exists():
            return "a link to nothing (or in a loop)"
    except OSError:
        return None
    return "not a regular file (a folder, a pipe or a device)"


TOML_TOO_DEEP = "values nested too deeply to read (no setting nests more than a few levels)"


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
    except RecursionError:  # arrays or inline tables nested hundreds deep
        raise ConfigurationError(f"{path}: invalid TOML: {TOML_TOO_DEEP}") from None
    except UnicodeDecodeError as exc:  # TOML is UTF-8; tomllib lets this one through
        raise ConfigurationError(
            f"{path}: invalid TOML: not UTF-8 (byte {exc.start + 1}: {exc.object[exc.start : exc.start + 1]!r})"
        ) from None


def read_dotenv(path: Path) -> tuple[dict[str, str], list[int]]:
    """The variables of a ``.env`` file (none when there is no file), and the numbers of
    its lines that are not ``NAME=value`` (python-dotenv skips them, saying so in a log line
    of its own with no file name; ``config validate`` lists them as warnings instead)."""
    if not _may_be_file(path):
        return {}, []
    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

    quiet = logging.getLogger("dotenv.main")
    was_disabled, quiet.disabled = quiet.disabled, True
    try:
        values = dotenv_values(path, encoding="utf-8")
        with path.open(encoding="utf-8") as stream:
            unread = [binding.original.line for binding in parse_stream(stream) if binding.error]
    except OSError as exc:
        raise LocalFileError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigurationError(
            f"{path}: not UTF-8 (byte {exc.start + 1}: "
            f"{exc.object[exc.start : exc.start + 1]!r}); save it as UTF-8"
        ) from None
    finally:
        quiet.disabled = was_disabled
    return {k: v for k, v in values.items() if v is not None}, unread


def did_you_mean(name: str, known: Sequence[str], shape: str = "{}") -> str:
    """``"; did you mean X?"`` for the closest known name, or ``""`` when none is close."""
    import difflib

    close = difflib.get_close_matches(name.lower(), list(known), n=1, cutoff=0.6)
    return f"; did you mean {shape.format(close[0])}?" if close else ""


# --- layering ---------------------------------------------------------------------------


def section_of(model: type[BaseSettings]) -> str:
    """The table of ``autoops.toml`` a settings model reads (its ``toml_section``)."""
    return str(getattr(model, "toml_section", ""))


def setting_key(model: type[BaseSettings], name: str) -> str:
    """A field's setting name, ``table.key`` (e.g. ``langfuse.host``)."""
    return f"{section_of(model)}.{name}"


def env_names(model: type[BaseSettings], field: str) -> tuple[str, ...]:
    """The environment variables a field is read from, in order of preference."""
    info = model.model_fields[field]
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return tuple(c for c in alias.choices if isinstance(c, str) and c.isupper())
    prefix = str(model.model_config.get("env_prefix", ""))
    return ((prefix + field).upper(),)


def _from_variables(
    models: Sequence[type[BaseSettings]], variables: Mapping[str, str], kind: str, path: Path | None
) -> dict[str, RawValue]:
    found: dict[str, RawValue] = {}
    for model in models:
        for name in model.model_fields:
            for var in env_names(model, name):
                value = variables.get(var)
                if value is not None and value.strip() != "":
                    found[setting_key(model, name)] = RawValue(value, Origin(kind, var, path))
                    break
    return found


def _from_toml(
    models: Sequence[type[BaseSettings]],
    data: dict[str, Any],
    path: Path,
    problems: list[SettingProblem],
    warnings: list[SettingProblem],
) -> dict[str, RawValue]:
    found: dict[str, RawValue] = {}
    tables = {section_of(model): model for model in models}
    for table, content in data.items():
        if table == SAMPLING_TABLE:
            rules, rule_problems = parse_rule_table(content)
            for setting, rate in rules:
                found[setting] = RawValue(rate, Origin("file", setting, path))
            for setting, message in rule_problems:
                problems.append(SettingProblem(setting, f"{path} (key {setting})", message))
            continue
        model = tables.get(table)
        if model is None and not isinstance(content, dict):
            # A key before any table header (`sample_rate = 0.1` without `[langfuse]`): it
            # was "an unknown table, ignored", exit 0, and the setting silently not used.
            owners = [section_of(m) for m in models if table in m.model_fields]
            known = ", ".join(f"[{t}]" for t in sorted({*tables, *OTHER_KNOWN_TABLES}))
            message = (
                f"a setting outside any table; it belongs under [{owners[0]}] ({owners[0]}.{table})"
                if owners
                else f"a setting outside any table (known tables: {known})"
            )
            problems.append(SettingProblem(table, f"{path} (key {table})", message))
            continue
        if model is None:
            if table not in OTHER_KNOWN_TABLES:
                names = sorted({*tables, *OTHER_KNOWN_TABLES})
                known = ", ".join(f"[{t}]" for t in names)
                guess = did_you_mean(table, names, "[{}]")
                warnings.append(
                    SettingProblem(
                        table, str(path), f"unknown table, ignored{guess} (known: {known})"
                    )
                )
            continue
        if not isinstance(content, dict):
            problems.append(SettingProblem(table, str(path), f"[{table}] must be a table"))
            continue
        for key, value in content.items():
            setting = f"{table}.{key}"
            if key not in model.model_fields:
                names = sorted(model.model_fields)
                guess = did_you_mean(key, names, f"{table}.{{}}")
                problems.append(
                    SettingProblem(
                        setting,
                        f"{path} (key {setting})",
                        f"unknown setting{guess} (known: {', '.join(names)})",
                    )
                )
                continue
            if isinstance(value, bool | str) and _takes_a_number(
                model.model_fields[key].annotation
            ):
                # pydantic would take a boolean for 0 or 1 (``sample_rate = false`` dropped
                # every trace), and "0.5" for a number, where a sampling rule's "0.5" is
                # refused: a number in a file is written as one.
                message = (
                    f"must be a number, got {str(value).lower()} (a boolean)"
                    if isinstance(value, bool)
                    else f"must be a number, got {value!r} (a string)"
                )
                problems.append(SettingProblem(setting, f"{path} (key {setting})", message))
                continue
            found[setting] = RawValue(value, Origin("file", setting, path))
    return found


def _takes_a_number(annotation: Any) -> bool:
    """Whether a field's type is a number (``float``, ``int``, or either or None)."""
    kinds = get_args(annotation) or (annotation,)
    return any(kind in (int, float) for kind in kinds)


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


def sampling_values(values: Mapping[str, RawValue]) -> dict[str, Any]:
    """The raw values of the ``[sampling]`` rules among layered values."""
    prefix = f"{SAMPLING_TABLE}."
    return {key: raw.value for key, raw in values.items() if key.startswith(prefix)}


def collect_layers(
    models: Sequence[type[BaseSettings]],
    *,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    flags: Mapping[str, tuple[Any, str]] | None = None,
) -> Layers:
    """Merge every source, lowest first, so a higher source overwrites a lower one.

    ``models`` are the settings models whose tables and variables are read;
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
    # Where a configuration file is looked for, something else is skipped: said, not
    # passed over in silence ("configuration valid"). The project file is looked for only
    # when none is named (--config, AUTOOPS_CONFIG).
    named = config_file is not None or bool(environ.get(CONFIG_ENV))
    for looked_at in (files.user, None if named else cwd / PROJECT_FILE_NAME):
        if looked_at is not None and (problem := _not_a_file(looked_at)) is not None:
            warnings.append(SettingProblem("file", str(looked_at), f"{problem}: ignored"))
    for path in (files.user, files.project):
        if path is not None and _may_be_file(path):
            try:
                data = read_toml(path)
            except ConfigurationError as exc:
                problems.append(SettingProblem("file", str(path), exc.message.split(": ", 1)[1]))
                continue
            layers.merge(_from_toml(models, data, path, problems, warnings))
    try:
        variables, unread = read_dotenv(files.dotenv)
    except ConfigurationError as exc:  # listed with the others (config validate --json)
        problems.append(SettingProblem("file", str(files.dotenv), exc.message.split(": ", 1)[1]))
        variables, unread = {}, []
    for line in unread:
        warnings.append(
            SettingProblem("file", f"{files.dotenv}:{line}", "not a NAME=value line: ignored")
        )
    layers.merge(_from_variables(models, variables, "dotenv", files.dotenv))
    layers.merge(_from_variables(models, environ, "env", None))
    layers.merge(
        {
            setting: RawValue(value, Origin("flag", flag))
            for setting, (value, flag) in (flags or {}).items()
        }
    )
    return layers


class LayeredSettingsSource(PydanticBaseSettingsSource):
    """pydantic-settings source of a plain ``LangfuseConfig()``: every layer but flags.

    ``models`` are all the settings models, so the files are checked as a whole (an unknown
    table or key is a problem whichever model is being built).
    """

    def __init__(
        self, settings_cls: type[BaseSettings], models: Sequence[type[BaseSettings]]
    ) -> None:
        super().__init__(settings_cls)
        self.models = tuple(models)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Unused: ``__call__`` answers for all fields at once."""
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        layers = collect_layers(self.models)
        if layers.problems:
            raise ConfigurationError(
                "invalid configuration: " + "; ".join(p.line() for p in layers.problems)
            )
        prefix = f"{section_of(self.settings_cls)}."
        return {
            key[len(prefix) :]: raw.value
            for key, raw in layers.values.items()
            if key.startswith(prefix)
        }
