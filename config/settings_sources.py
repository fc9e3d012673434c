"""The effective settings for the CLI: validated, with origins, and every problem at once.

The sources and their precedence are ``config.settings_layers`` (shared with a plain
``LangfuseConfig()``); this module validates the merged values of both models, turns every
validation error into a ``SettingProblem`` naming setting and source, and adds warnings.
"""

from __future__ import annotations

import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings, InitSettingsSource

from config.errors import ConfigurationError
from config.sampling_rules import SAMPLING_TABLE, SamplingRules, rules_from_settings
from config.settings import (
    SETTINGS_MODELS,
    DataMaskingConfig,
    LangfuseConfig,
)
from config.settings_layers import (
    Origin,
    RawValue,
    SettingProblem,
    SettingsFiles,
    collect_layers,
    sampling_values,
    section_of,
    setting_key,
)


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
        return rules_from_settings(sampling_values(self.values))

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


def load_sampling_rules(
    *, cwd: Path | None = None, environ: Mapping[str, str] | None = None
) -> SamplingRules:
    """The sampling rules a plain ``LangfuseConfig()`` process applies (library use).

    Read from the same files as the settings; a bad rule, or a file that is not TOML, is a
    ``ConfigurationError`` (the rules must not silently differ between processes).
    """
    layers = collect_layers(SETTINGS_MODELS, cwd=cwd, environ=environ)
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
    return rules_from_settings(sampling_values(layers.values))


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
    setting = setting_key(model, name) if name else section_of(model)
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
    section = section_of(model)
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


def _overridden_problems(
    model: type[BaseSettings],
    values: dict[str, RawValue],
    shadowed: Mapping[str, list[RawValue]],
) -> list[SettingProblem]:
    """Bad values a higher source overrides (``config validate`` checks every source): a
    committed ``autoops.toml`` with ``max_retries = -4`` broke the first run without the
    environment variable that hid it. Each one is validated in place of the value used."""
    section = section_of(model)
    found: list[SettingProblem] = []
    for setting, hidden in shadowed.items():
        if setting.split(".", 1)[0] != section:
            continue
        for raw in hidden:
            problems: list[SettingProblem] = []
            _validate(model, {**values, setting: raw}, problems)
            used = values[setting].origin.describe() if setting in values else "the default"
            found.extend(
                SettingProblem(
                    problem.setting,
                    problem.source,
                    f"{problem.message} (overridden by {used}: it applies where that is not set)",
                )
                for problem in problems
                if problem.setting == setting
            )
    return found


def rate_zero_effect(rules: SamplingRules | None) -> str:
    """What a global sample rate of 0 does: drop every trace, unless a rule keeps some (the
    rate covers only the traces no rule matches)."""
    keeping = [name for _, name, rate in rules.items() if rate > 0] if rules else []
    if not keeping:
        return "sample rate 0 drops every trace"
    return (
        "sample rate 0 drops every trace that no sampling rule keeps "
        f"({len(keeping)} rule(s) keep some: {', '.join(keeping[:3])}"
        f"{' ...' if len(keeping) > 3 else ''})"
    )


def rules_or_none(loaded_values: dict[str, RawValue]) -> SamplingRules | None:
    """The sampling rules of these values; None when one is bad (reported on its own)."""
    try:
        return rules_from_settings(sampling_values(loaded_values))
    except (ValueError, TypeError):  # a bad rule is reported as a problem of its own
        return None


def _warnings_for(
    config: LangfuseConfig, loaded_values: dict[str, RawValue]
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
                rate_zero_effect(rules_or_none(loaded_values)),
            )
        )
    host = loaded_values.get("langfuse.host")
    if host is not None and not config.has_keys:
        # A host with no keys is local mode: what `serve --help` once suggested, silently.
        found.append(
            SettingProblem(
                "langfuse.host",
                host.origin.describe(),
                f"{config.host} is set but LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY are not: "
                "local mode, traces go to the local store (set both keys to send to that host)",
            )
        )
    return found


def _exposed_secrets(
    loaded_values: dict[str, RawValue],
    files: SettingsFiles,
    shadowed: Mapping[str, list[RawValue]],
) -> list[SettingProblem]:
    """Every file that holds the key, the one it is taken from or one a higher source
    overrides: a key left in a world-readable autoops.toml leaks all the same (whether the
    settings are valid or not: a malformed key given elsewhere hid it)."""
    secret = loaded_values.get("langfuse.secret_key")
    holding = [secret, *shadowed.get("langfuse.secret_key", [])] if secret is not None else []
    return [
        _exposed_secret(path, value)
        for path in (files.project, files.user, files.dotenv)
        for value in holding
        if path is not None and value.origin.path == path and _open_to_others(path)
    ]


# Reading or writing it (execute bits let no one read a file).
_OPEN_BITS = stat.S_IRGRP | stat.S_IWGRP | stat.S_IROTH | stat.S_IWOTH


def _open_to_others(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & _OPEN_BITS)
    except OSError:
        return False


def _exposed_secret(path: Path, value: RawValue) -> SettingProblem:
    mode = stat.S_IMODE(path.stat().st_mode)
    readable = mode & (stat.S_IRGRP | stat.S_IROTH)
    elsewhere = "the environment" if path.name == ".env" else "the environment or .env"
    return SettingProblem(
        "langfuse.secret_key",
        value.origin.describe(),
        f"file holding the secret key is {'readable' if readable else 'writable'} by others "
        f"(mode {mode:o}); run chmod 600 {path}, or move the key to {elsewhere}",
    )


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
    layers = collect_layers(
        SETTINGS_MODELS, cwd=cwd, environ=environ, config_file=config_file, flags=flags
    )
    problems = list(layers.problems)
    langfuse = _validate(LangfuseConfig, layers.values, problems)
    masking = _validate(DataMaskingConfig, layers.values, problems)
    warnings = list(layers.warnings)
    for model in (LangfuseConfig, DataMaskingConfig):
        warnings.extend(_overridden_problems(model, layers.values, layers.shadowed))
    if langfuse is not None:
        warnings.extend(_warnings_for(langfuse, layers.values))
    warnings.extend(_exposed_secrets(layers.values, layers.files, layers.shadowed))
    return LoadedSettings(
        langfuse=langfuse,
        masking=masking,
        values=layers.values,
        files=layers.files,
        problems=problems,
        warnings=warnings,
        shadowed=layers.shadowed,
    )
