"""Changing one sampling setting in a configuration file without disturbing the rest of it.

``autoops sampling set|reset`` edit one key: ``langfuse.sample_rate`` (the global rate) or
``sampling.<kind>.<name>`` (a rule), in the project file ``autoops.toml`` or the user file.
tomlkit keeps the file's comments, order and formatting; the file is replaced atomically and
keeps its mode. Only that one key is ever written, so a secret never is (one already in the
file is carried over untouched).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoops_cli.actions.files import NOT_A_REGULAR_FILE, replace_file
from autoops_cli.output_files import is_special
from autoops_cli.simulation.catalog import sampling_rule_names
from config.errors import ConfigurationError, LocalFileError, UsageError
from config.settings_layers import TOML_TOO_DEEP

if TYPE_CHECKING:
    from tomlkit import TOMLDocument

GLOBAL_KEYS = ("langfuse", "sample_rate")


@dataclass(frozen=True)
class SamplingKey:
    """One sampling setting: the global rate, or the rule of one event type, severity or agent."""

    keys: tuple[str, ...]  # the TOML path, e.g. ("sampling", "severity", "critical")

    @property
    def setting(self) -> str:
        """``langfuse.sample_rate`` or ``sampling.<kind>.<name>``."""
        return ".".join(self.keys)

    @property
    def is_global(self) -> bool:
        """True for the global rate."""
        return self.keys == GLOBAL_KEYS

    def describe(self) -> str:
        """``global rate`` or ``severity = critical``."""
        return "global rate" if self.is_global else f"{self.keys[1]} = {self.keys[2]}"


@dataclass(frozen=True)
class SamplingChange:
    """What ``set`` or ``reset`` did to one file."""

    key: SamplingKey
    scope: str  # project | user
    path: Path
    rate: float | None  # the value written; None for reset
    previous: Any  # the value the file held before; None when it had none
    changed: bool
    created: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "setting": self.key.setting,
            "scope": self.scope,
            "file": str(self.path),
            "rate": self.rate,
            "previous": self.previous,
            "changed": self.changed,
            "created": self.created,
        }


def sampling_key(
    *, event_type: str | None, severity: str | None, agent: str | None, check_names: bool
) -> SamplingKey:
    """The setting the options name; ``UsageError`` for two conditions or an unknown name.

    ``check_names`` refuses names the toolkit does not know (``set``: a typo would write a
    rule that never matches); ``reset`` may remove any rule, known or not.
    """
    given = [
        (kind, name)
        for kind, name in (("event_type", event_type), ("severity", severity), ("agent", agent))
        if name is not None
    ]
    if len(given) > 1:
        raise UsageError(
            "a rule has one condition: give one of --event-type, --severity, --agent",
            hint="rules combine by the highest rate among those a trace matches",
        )
    if not given:
        return SamplingKey(GLOBAL_KEYS)
    kind, name = given[0]
    if not name.strip():
        raise UsageError(f"--{kind.replace('_', '-')} needs a name")
    known = sampling_rule_names()[kind]
    if check_names and name not in known:
        raise UsageError(f"unknown {kind.replace('_', ' ')} {name!r} (known: {', '.join(known)})")
    return SamplingKey(("sampling", kind, name))


def target_file(*, user: bool, project: bool, config_file: Path | None) -> tuple[str, Path]:
    """The scope and file to edit: the project file or the user file.

    Without a project file, a new one goes in the project's folder (the nearest with
    ``.autoops/``, where the store is), else in the working directory: created in a
    subfolder, it moved the project there, and with it the store (an outbox of waiting
    batches then read as empty).
    """
    from autoops_cli.actions.config import project_file_path
    from config.settings_layers import find_project_file, user_config_path

    if user and project:
        raise UsageError("give --user or --project, not both")
    if user:
        return "user", user_config_path(os.environ)
    found = find_project_file(Path.cwd(), os.environ, config_file)
    return "project", found if found is not None else project_file_path()


def set_rate(key: SamplingKey, rate: float, *, scope: str, path: Path) -> SamplingChange:
    """Write ``rate`` at ``key`` in ``path`` (created if missing); the rest stays as it was."""
    document, existed = _read(path)
    table = _table_for(document, key, path, create=True)
    assert table is not None
    previous = _plain(table.get(key.keys[-1]))
    changed = previous != rate or not isinstance(previous, float)
    if changed:
        table[key.keys[-1]] = rate
        # The file ends as it ended (a last line without its newline keeps none): reset
        # then gives it back byte for byte.
        _write(path, document, trailing_newlines=_trailing_newlines(path) if existed else None)
    return SamplingChange(key, scope, path, rate, previous, changed, created=not existed)


def remove_rate(key: SamplingKey, *, scope: str, path: Path) -> SamplingChange:
    """Remove ``key`` from ``path``; the file is not touched when it does not hold it."""
    if not path.is_file():
        return SamplingChange(key, scope, path, None, None, changed=False)
    document, _ = _read(path)
    table = _table_for(document, key, path, create=False)
    if table is None or key.keys[-1] not in table:
        return SamplingChange(key, scope, path, None, None, changed=False)
    previous = _plain(table[key.keys[-1]])
    del table[key.keys[-1]]
    _prune_empty_tables(document, key)
    # A removed table leaves its leading blank line behind: end the file as it ended before.
    _write(path, document, trailing_newlines=_trailing_newlines(path))
    return SamplingChange(key, scope, path, None, previous, changed=True)


def _read(path: Path) -> tuple[TOMLDocument, bool]:
    import tomllib

    import tomlkit
    from tomlkit.exceptions import ParseError

    if not path.exists():
        return tomlkit.document(), False
    if is_special(path):  # a pipe would hang the read; a device is no configuration
        raise LocalFileError(f"cannot edit config file {path}: {NOT_A_REGULAR_FILE}")
    try:
        # Bytes decoded, not read_text: its newline translation wrote CRLF files back as LF.
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LocalFileError(f"cannot read config file {path}: {exc}") from None
    try:
        tomllib.loads(text)  # the same message `config validate` gives
        return tomlkit.parse(text), True
    except (tomllib.TOMLDecodeError, ParseError, RecursionError) as exc:
        reason = TOML_TOO_DEEP if isinstance(exc, RecursionError) else exc
        raise ConfigurationError(
            f"{path}: invalid TOML: {reason}; nothing was changed",
            hint="fix the file, then run `autoops config validate`",
        ) from None


def _table_for(document: TOMLDocument, key: SamplingKey, path: Path, *, create: bool) -> Any | None:
    """The table holding ``key``'s last part; created (a super table for ``[sampling]``)."""
    import tomlkit

    table: Any = document
    for depth, part in enumerate(key.keys[:-1]):
        child = table.get(part)
        if child is None:
            if not create:
                return None
            # [sampling] itself only groups [sampling.<kind>]: no header of its own.
            child = tomlkit.table(is_super_table=depth == 0 and part == "sampling")
            table[part] = child
            child = table[part]
        elif not isinstance(child, dict):
            where = ".".join(key.keys[: depth + 1])
            raise ConfigurationError(
                f"{path} (key {where}): must be a table to hold {key.setting}; nothing was changed"
            )
        table = child
    return table


def _prune_empty_tables(document: TOMLDocument, key: SamplingKey) -> None:
    """Drop the tables ``set`` adds when they are left empty and without comments:
    ``[langfuse]`` for the global rate, ``[sampling.<kind>]`` (then ``[sampling]``) for a
    rule."""
    if key.is_global:
        if _bare(document.get("langfuse")):
            del document["langfuse"]
        return
    sampling = document.get("sampling")
    if not isinstance(sampling, dict):
        return
    if _bare(sampling.get(key.keys[1])):
        del sampling[key.keys[1]]
    if _bare(sampling):
        del document["sampling"]


def _bare(table: Any) -> bool:
    """True for a table with no keys and no comments (removing it loses nothing)."""
    from tomlkit.items import Comment, Table

    if not isinstance(table, Table) or len(table):
        return False
    if table.trivia.comment:  # on its header line: `[langfuse]  # see ticket OPS-12`
        return False
    return not any(isinstance(item, Comment) for _, item in table.value.body)


def _plain(item: Any) -> Any:
    unwrap = getattr(item, "unwrap", None)
    return unwrap() if callable(unwrap) else item


def _trailing_newlines(path: Path) -> int:
    text = path.read_bytes()
    ending = b"\r\n" if text.endswith(b"\r\n") else b"\n"
    count = 0
    while text.endswith(ending):
        text = text[: -len(ending)]
        count += 1
    return count


def _newline(text: str) -> str:
    """The file's line ending: CRLF when its first line ends so, else LF."""
    first = text.find("\n")
    return "\r\n" if first > 0 and text[first - 1] == "\r" else "\n"


def _write(path: Path, document: TOMLDocument, *, trailing_newlines: int | None = None) -> None:
    """Replace the file atomically, keeping its mode (a new file: 0644)."""
    import tomlkit

    text = tomlkit.dumps(document)
    newline = _newline(text)
    if newline == "\r\n":  # the lines tomlkit adds end in LF: a CRLF file stays all CRLF
        text = re.sub(r"(?<!\r)\n", "\r\n", text)
    if trailing_newlines is not None and text.strip():
        text = text.rstrip("\r\n") + newline * trailing_newlines
    try:
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, text, mode=mode)
    except OSError as exc:
        raise LocalFileError(f"cannot write {path}: {exc.strerror or exc}") from None
