"""``autoops config validate|show|init``: the configuration, checked before anything runs."""

from __future__ import annotations

from pathlib import Path

import typer

from autoops_cli.state import AppState

app = typer.Typer(
    help="Validate, show and initialise the configuration.",
    no_args_is_help=True,
)

CONFIG_OPTION = typer.Option(
    None,
    "--config",
    readable=False,  # checked when read: exit 6 in one line, not click's usage error
    help="Project config file to check instead of the one found.",
    show_default=False,
)


@app.command()
def validate(ctx: typer.Context, config_file: Path | None = CONFIG_OPTION) -> None:
    """Check every configuration source and report every problem at once.

    Each problem names the setting, the source it came from (flag, environment variable,
    file and key) and what is wrong. Exit 0 when valid, 3 when not.

    **Example:** LANGFUSE_SAMPLE_RATE=0.5 autoops config validate --json
    """
    from autoops_cli.actions.config import validation_report

    state: AppState = ctx.obj
    loaded = state.load_settings(config_file=config_file)
    report = validation_report(loaded)
    out = state.output
    if out.json_mode:
        out.emit_json(report)
    else:
        for problem in loaded.problems:
            out.error(problem.line())
        for warning in loaded.warnings:
            out.warning(warning.line())
        if loaded.valid:
            out.line(f"configuration valid: {report['mode']} mode ({report['destination']})")
        else:
            count = len(loaded.problems)
            out.stderr.print(f"configuration invalid: {count} problem{'s' if count != 1 else ''}")
    if not loaded.valid:
        raise typer.Exit(3)


@app.command()
def show(
    ctx: typer.Context,
    show_origin: bool = typer.Option(
        False, "--show-origin", help="Also show where each value came from."
    ),
    config_file: Path | None = CONFIG_OPTION,
) -> None:
    """Show the effective configuration, secrets masked.

    Every setting with its value (the secret key as sk-lf-****<last 4>) and, with
    --show-origin, the flag, environment variable, file or default it came from.

    **Example:** autoops config show --show-origin
    """
    from autoops_cli.actions.config import settings_rows, settings_table

    state: AppState = ctx.obj
    loaded = state.load_settings(config_file=config_file)
    loaded.require()
    rows = settings_rows(loaded)
    out = state.output
    if out.json_mode:
        settings = []
        for row in rows:
            item = {"setting": row.setting, "env": row.env, "value": row.value}
            if show_origin:
                item["origin"] = row.origin
            settings.append(item)
        files = loaded.files
        out.emit_json(
            {
                "mode": loaded.mode,
                "files": {
                    "project": str(files.project) if files.project else None,
                    "user": str(files.user) if files.user.is_file() else None,
                    "dotenv": str(files.dotenv) if files.dotenv.is_file() else None,
                },
                "settings": settings,
            }
        )
        return
    out.render(settings_table(rows, show_origin=show_origin))


@app.command()
def init(
    ctx: typer.Context,
    path: Path = typer.Option(
        Path("autoops.toml"), "--path", help="Where to write the project file.", readable=False
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write a commented autoops.toml template (never a secret).

    Every setting is listed with its default and meaning, commented out. Keys belong in
    the environment or in .env, not in this file. Refuses to overwrite without --force.

    **Example:** autoops config init && autoops config validate
    """
    from autoops_cli.actions.config import enclosing_project_note, write_template

    state: AppState = ctx.obj
    written = write_template(path, force=force)
    note = enclosing_project_note(written)
    if note:
        state.output.warning(note)
    if state.output.json_mode:
        state.output.emit_json({"written": str(written)})
    else:
        state.output.success(f"wrote {written}; edit it, then run `autoops config validate`")
