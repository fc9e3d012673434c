"""``autoops events generate``: realistic simulation event files."""

from __future__ import annotations

import typer

from autoops_cli.state import AppState

app = typer.Typer(help="Generate simulation event files for replay.", no_args_is_help=True)


@app.command()
def generate(
    ctx: typer.Context,
    count: int = typer.Option(..., "--count", "-n", min=1, help="How many events."),
    seed: int = typer.Option(42, "--seed", help="Random seed: the same seed gives the same file."),
    types: str | None = typer.Option(
        None, "--types", help="Comma-separated event types to draw from (default: all)."
    ),
    output: str = typer.Option(
        "-", "--output", "-o", help="File to write ('-' for stdout; .gz compresses)."
    ),
) -> None:
    """Write a realistic, reproducible JSON Lines event file (the seed's TestDataGenerator).

    Event types, severities, products and data fields are drawn around realistic values; the same seed and count always give the same file. The format is described in docs/events.md.

    **Example:** autoops events generate --count 1000 --seed 7 --output events.jsonl
    """
    from autoops_cli.actions.events import generate_event_file

    state: AppState = ctx.obj
    written = generate_event_file(output, count, seed=seed, types=types)
    if output != "-":
        if state.output.json_mode:
            state.output.emit_json({"written": output, "events": written})
        else:
            state.output.success(f"wrote {written} events to {output}")
