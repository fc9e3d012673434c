"""Reports about the configuration: validation result, effective settings, the template."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoops_cli.actions.files import replace_file
from config.errors import LocalFileError
from config.redaction import mask_secret
from config.settings import (
    SETTINGS_MODELS,
    DataMaskingConfig,
    LangfuseConfig,
)
from config.settings_layers import env_names

if TYPE_CHECKING:
    from rich.table import Table

    from config.settings_sources import LoadedSettings


def destination_of(loaded: LoadedSettings) -> str:
    """Where traces go, in words."""
    if loaded.langfuse is None:
        return "unknown (invalid configuration)"
    if loaded.mode == "langfuse":
        return f"Langfuse at {loaded.langfuse.host}"
    if not loaded.langfuse.has_keys:
        return "local store; no Langfuse keys configured"
    return "local store; tracing to Langfuse is disabled"


def validation_report(loaded: LoadedSettings) -> dict[str, Any]:
    """The ``config validate --json`` document."""
    return {
        "valid": loaded.valid,
        "mode": loaded.mode,
        "destination": destination_of(loaded),
        "errors": [p.as_dict() for p in loaded.problems],
        "warnings": [w.as_dict() for w in loaded.warnings],
    }


@dataclass
class SettingRow:
    """One effective setting, display-ready (secrets already masked)."""

    setting: str
    env: str
    value: Any
    origin: str


def _display(value: Any) -> Any:
    if hasattr(value, "get_secret_value"):
        return mask_secret(value.get_secret_value())
    return value


def settings_rows(loaded: LoadedSettings) -> list[SettingRow]:
    """Every setting of every model with its effective value and origin."""
    rows: list[SettingRow] = []
    pairs = ((LangfuseConfig, loaded.langfuse), (DataMaskingConfig, loaded.masking))
    for model, instance in pairs:
        for name in model.model_fields:
            setting = f"{model.toml_section}.{name}"
            rows.append(
                SettingRow(
                    setting=setting,
                    env=env_names(model, name)[0],
                    value=_display(getattr(instance, name)),
                    origin=loaded.origin_of(setting).describe(),
                )
            )
    return rows


def settings_table(rows: list[SettingRow], *, show_origin: bool) -> Table:
    """The ``config show`` table."""
    from rich import box
    from rich.table import Table

    from autoops_cli.output import escape

    table = Table(box=box.ASCII, show_edge=True, header_style="bold")
    table.add_column("setting", overflow="fold")
    table.add_column("value", overflow="fold")
    if show_origin:
        table.add_column("origin", overflow="fold")
    for row in rows:
        # Escaped as any text from elsewhere: a secret-shaped value masked (as --json masks
        # it), Rich markup ("[bold]") and control characters shown as they are.
        value = "-" if row.value is None else escape(str(row.value))
        cells = [row.setting, value]
        if show_origin:
            cells.append(escape(row.origin))
        table.add_row(*cells)
    return table


def _toml_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_template() -> str:
    """A commented ``autoops.toml``: every setting at its default, commented out.

    Generated from the settings models, so it cannot drift from them. Secret keys are
    listed only as a pointer to the environment.
    """
    lines = [
        "# autoops project configuration.",
        "# Precedence, highest first: command-line flags, environment variables, .env,",
        "# this file, ~/.config/autoops/config.toml, defaults.",
        "# Check it with `autoops config validate`; see it with `autoops config show --show-origin`.",
        "#",
        "# Keys do not belong here: set LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY in the",
        "# environment or in .env (kept out of version control). Without keys, autoops runs",
        "# in local mode on the embedded store (the integration guide's LangfuseConfig",
        "# requires keys; the defaults below are the guide's).",
    ]
    for model in SETTINGS_MODELS:
        lines += ["", f"[{model.toml_section}]"]
        for name, info in model.model_fields.items():
            if name in ("public_key", "secret_key"):
                continue
            env = ", ".join(env_names(model, name))
            lines.append(f"# {info.description} ({env})")
            example = _toml_literal(info.default) if info.default is not None else '""'
            lines.append(f"# {name} = {example}")
    lines += [
        "",
        "[sampling.severity]",
        "# Sampling rules (docs/sampling.md): a rate per severity, per event type",
        "# ([sampling.event_type]) or per routed agent ([sampling.agent]); the highest rate",
        "# among the rules a trace matches wins, else langfuse.sample_rate. `autoops sampling`.",
        "# critical = 1.0",
    ]
    return "\n".join(lines) + "\n"


def project_file_path() -> Path:
    """Where ``sampling set`` creates the project file when none is in use: the folder of
    the project in use (the nearest one up holding ``.autoops/`` or ``autoops.toml``, where
    its store is), else the working directory. One created in a subfolder made that folder
    the project, with a store of its own (the outbox's waiting batches then read as none)."""
    from config.settings_layers import PROJECT_FILE_NAME

    return (_enclosing_project(Path.cwd()) or Path.cwd()) / PROJECT_FILE_NAME


def _enclosing_project(folder: Path) -> Path | None:
    """The project folder a new project file in ``folder`` would split the store from, or
    None: none when ``AUTOOPS_HOME`` fixes the store, and never the home folder (its
    ``.autoops/`` is what running autoops there once left, not a project of every folder
    below it)."""
    from config.store.local_store import HOME_ENV, project_directory

    if os.environ.get(HOME_ENV):
        return None
    found = project_directory(folder)
    return None if found is None or found == Path.home() else found


def enclosing_project_note(written: Path) -> str | None:
    """What a new project file changes when a folder above is a project already (its
    ``.autoops/`` or ``autoops.toml``): this folder becomes a project of its own, with a
    store of its own; the enclosing one's store (and an outbox's waiting batches) no longer
    seen from here. None when there is no such folder."""
    enclosing = _enclosing_project(written.parent.parent)
    if enclosing is None:
        return None
    return (
        f"{enclosing} is a project already: {written.parent} is now one of its own, with its "
        f"own store (.autoops/); to configure {enclosing}, write "
        f"{enclosing / written.name} instead (--path)"
    )


def write_template(path: Path, *, force: bool) -> Path:
    """Write the template atomically; refuse to overwrite without ``force`` (exit 6)."""
    path = path.expanduser().absolute()  # not resolved: a link (even a looping one) is named
    if path.exists() and not force:
        raise LocalFileError(f"{path} already exists", hint="use --force to overwrite it")
    if not path.parent.is_dir():
        raise LocalFileError(f"cannot write {path}: directory {path.parent} does not exist")
    try:
        replace_file(path, render_template(), mode=0o644)
    except OSError as exc:
        raise LocalFileError(f"cannot write {path}: {exc.strerror}") from None
    return path
