"""``autoops sampling show|set|reset``: what sampling does, and one key changed safely.

``report`` explains the effective rate and rules with their origins; ``file`` edits one key
of ``autoops.toml`` or the user file. ``set_sampling`` and ``reset_sampling`` are the
commands' calls.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autoops_cli.actions.sampling.file import SamplingChange


def set_sampling(
    rate: str,
    *,
    event_type: str | None,
    severity: str | None,
    agent: str | None,
    user: bool,
    project: bool,
    config_file: Path | None,
    validate: Callable[[], object],
) -> SamplingChange:
    """Write the global rate or one rule's rate; an invalid rate or name is a usage error.

    The rate is checked before any file is read, so a bad one leaves the file untouched;
    a change that leaves the configuration invalid (``validate`` raises) is undone.
    """
    from autoops_cli.actions.sampling.file import sampling_key, set_rate, target_file
    from config.errors import UsageError
    from config.sampling_rules import parse_rate

    try:
        value = parse_rate(rate)
    except ValueError as exc:
        raise UsageError(f"invalid rate: {exc}", hint="e.g. 0.1 keeps one trace in ten") from None
    key = sampling_key(event_type=event_type, severity=severity, agent=agent, check_names=True)
    scope, path = target_file(user=user, project=project, config_file=config_file)
    return _kept_if_valid(path, lambda: set_rate(key, value, scope=scope, path=path), validate)


def reset_sampling(
    *,
    event_type: str | None,
    severity: str | None,
    agent: str | None,
    user: bool,
    project: bool,
    config_file: Path | None,
    validate: Callable[[], object],
) -> SamplingChange:
    """Remove one rule, or the global rate, from the file (any name, known or not); undone
    when it leaves the configuration invalid, as ``set_sampling``."""
    from autoops_cli.actions.sampling.file import remove_rate, sampling_key, target_file

    key = sampling_key(event_type=event_type, severity=severity, agent=agent, check_names=False)
    scope, path = target_file(user=user, project=project, config_file=config_file)
    return _kept_if_valid(path, lambda: remove_rate(key, scope=scope, path=path), validate)


def _kept_if_valid(
    path: Path, change: Callable[[], SamplingChange], validate: Callable[[], object]
) -> SamplingChange:
    """``change()`` applied to ``path``, then the whole configuration validated: when it is
    invalid (another key of the file, another file), the file is put back as it was and the
    problems are the command's error (exit 3). It said "set" and then failed, the file
    changed all the same. A change that mends the configuration passes."""
    from autoops_cli.actions.files import editing, replace_file
    from config.errors import ConfigurationError, LocalFileError

    with editing(path):  # read, changed, checked and maybe put back: one edit at a time
        try:
            before = path.read_bytes() if path.is_file() else None
        except OSError as exc:  # unreadable: an internal error, where the docs say exit 6
            raise LocalFileError(f"cannot read config file {path}: {exc.strerror or exc}") from None
        done = change()
        if not done.changed:
            return done
        try:
            validate()
        except ConfigurationError as exc:
            try:
                if before is None:
                    path.unlink(missing_ok=True)
                else:
                    replace_file(path, before.decode("utf-8"), mode=path.stat().st_mode & 0o777)
            except OSError as undo:
                raise LocalFileError(f"cannot put {path} back: {undo.strerror or undo}") from None
            raise ConfigurationError(
                f"{exc.message}; nothing was changed",
                hint="fix the configuration (`autoops config validate`), then run this again",
            ) from None
    return done
