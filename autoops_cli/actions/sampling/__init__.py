"""``autoops sampling show|set|reset``: what sampling does, and one key changed safely.

``report`` explains the effective rate and rules with their origins; ``file`` edits one key
of ``autoops.toml`` or the user file. ``set_sampling`` and ``reset_sampling`` are the
commands' calls.
"""

from __future__ import annotations

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
) -> SamplingChange:
    """Write the global rate or one rule's rate; an invalid rate or name is a usage error.

    The rate is checked before any file is read, so a bad one leaves the file untouched.
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
    return set_rate(key, value, scope=scope, path=path)


def reset_sampling(
    *,
    event_type: str | None,
    severity: str | None,
    agent: str | None,
    user: bool,
    project: bool,
    config_file: Path | None,
) -> SamplingChange:
    """Remove one rule, or the global rate, from the file (any name, known or not)."""
    from autoops_cli.actions.sampling.file import remove_rate, sampling_key, target_file

    key = sampling_key(event_type=event_type, severity=severity, agent=agent, check_names=False)
    scope, path = target_file(user=user, project=project, config_file=config_file)
    return remove_rate(key, scope=scope, path=path)
