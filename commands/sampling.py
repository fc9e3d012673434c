"""``autoops sampling show|set|reset``: which traces are kept, and changing it safely."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from autoops_cli.state import AppState

if TYPE_CHECKING:
    from autoops_cli.actions.sampling.file import SamplingChange

app = typer.Typer(
    help="See and change sampling: the global rate and the rules per event type, severity, agent.",
    no_args_is_help=True,
)

EVENT_TYPE = typer.Option(None, "--event-type", help="A rule for this event type.")
SEVERITY = typer.Option(None, "--severity", help="A rule for this severity (e.g. critical).")
AGENT = typer.Option(None, "--agent", help="A rule for events routed to this agent.")
USER = typer.Option(False, "--user", help="Edit the user file (~/.config/autoops/config.toml).")
PROJECT = typer.Option(False, "--project", help="Edit the project file autoops.toml (default).")


@app.command()
def show(ctx: typer.Context) -> None:
    """Show the effective sampling: global rate, rules, their origins, and what the core does.

    Each value names its source (flag, environment variable, which file) and the values it overrides; the lines under the table say what the core will do with them, including the adaptive lowering and the last replay's changes.

    **Example:** LANGFUSE_SAMPLE_RATE=0.1 autoops sampling show --json
    """
    _render(ctx.obj, None)


@app.command(name="set", context_settings={"ignore_unknown_options": True})
def set_(
    ctx: typer.Context,
    rate: str = typer.Argument(..., metavar="RATE", help="Fraction of traces kept, 0 to 1."),
    event_type: str | None = EVENT_TYPE,
    severity: str | None = SEVERITY,
    agent: str | None = AGENT,
    user: bool = USER,
    project: bool = PROJECT,
) -> None:
    """Set the global sample rate, or one rule's rate, in autoops.toml or the user file.

    Only that key is written; the file's other content and comments stay. An invalid rate exits 2 and leaves the file as it was. Shows the effective sampling afterwards and warns when a higher source (e.g. LANGFUSE_SAMPLE_RATE) overrides what was written.

    **Example:** autoops sampling set 1.0 --severity critical
    """
    from autoops_cli.actions.sampling import set_sampling

    state: AppState = ctx.obj
    change = set_sampling(
        rate,
        event_type=event_type,
        severity=severity,
        agent=agent,
        user=user,
        project=project,
        config_file=state.config_file,
        validate=state.settings,
    )
    _render(state, change)


@app.command()
def reset(
    ctx: typer.Context,
    event_type: str | None = EVENT_TYPE,
    severity: str | None = SEVERITY,
    agent: str | None = AGENT,
    user: bool = USER,
    project: bool = PROJECT,
) -> None:
    """Remove one rule, or the global sample rate, from autoops.toml or the user file.

    A lower source (the user file, or the default 1.0) then applies; the effective sampling is shown afterwards. A file without that key is left untouched.

    **Example:** autoops sampling reset --event-type demand_spike
    """
    from autoops_cli.actions.sampling import reset_sampling

    state: AppState = ctx.obj
    change = reset_sampling(
        event_type=event_type,
        severity=severity,
        agent=agent,
        user=user,
        project=project,
        config_file=state.config_file,
        validate=state.settings,
    )
    _render(state, change)


def _render(state: AppState, change: SamplingChange | None) -> None:
    from autoops_cli.actions.sampling.report import (
        change_warnings,
        explanation_lines,
        sampling_report,
        sampling_table,
    )

    out = state.output
    if change is not None:
        _announce(state, change)
    state.settings()  # warnings on stderr; an invalid configuration exits 3 here
    loaded = state.load_settings()
    report = sampling_report(loaded)
    warnings = change_warnings(change, loaded) if change is not None else []
    for warning in warnings:
        out.warning(warning)
    if out.json_mode:
        document = (
            report
            if change is None
            else {**change.as_dict(), "warnings": warnings, "sampling": report}
        )
        out.emit_json(document)
        return
    out.render(sampling_table(report))
    for line in explanation_lines(report):
        out.line(f"- {line}")


def _announce(state: AppState, change: SamplingChange) -> None:
    from autoops_cli.actions.sampling.report import show_value

    setting, path, out = change.key.setting, change.path, state.output
    if change.rate is not None and not change.changed:
        out.info(f"{setting} is already {show_value(change.rate)} in {path}; file unchanged")
    elif change.rate is not None:
        was = "" if change.previous is None else f" (was {show_value(change.previous)})"
        created = " (created the file)" if change.created else ""
        out.success(f"set {setting} = {show_value(change.rate)} in {path}{was}{created}")
    elif change.changed:
        out.success(f"removed {setting} from {path} (was {show_value(change.previous)})")
    else:
        out.info(f"{setting} is not set in {path}; file unchanged")
