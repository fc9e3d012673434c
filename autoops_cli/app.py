"""The root ``autoops`` application: global options, the context object, the error boundary.

Command groups live in ``commands/`` and are registered at the bottom of this module.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import typer
from typer._click.core import Context as ClickContext  # typer vendors click since 0.29
from typer._click.core import ParameterSource
from typer._click.exceptions import UsageError as ClickUsageError
from typer.core import TyperGroup

from autoops_cli import __version__
from autoops_cli.output import Output, StdoutError, discard_stdout, writing_stdout
from autoops_cli.state import AppState
from autoops_cli.stop_signals import interrupt_as_exception
from config.errors import (
    EXIT_CODE_MEANINGS,
    AutoopsError,
    ConfigurationError,
    ExitCode,
    LocalFileError,
)

EXIT_CODES_HELP = "\n".join(
    f"* **{int(code)}** {meaning}" for code, meaning in EXIT_CODE_MEANINGS.items()
)

ROOT_HELP = (
    "Operations toolkit for the AutoOps Langfuse integration.\n\n"
    "Validate the configuration, replay recorded simulation events through the agents with "
    "tracing, check that Langfuse is reachable, and summarise traces and agent metrics. "
    "With no Langfuse keys configured everything runs on an embedded local store.\n\n"
    "**Example:** `autoops config validate`\n\n"
    f"**Exit codes:**\n\n{EXIT_CODES_HELP}"
)


class AutoopsGroup(TyperGroup):
    """The root group; its ``invoke`` is the one error boundary of the CLI.

    Expected errors (``AutoopsError``) become one line on stderr and their exit code.
    Anything else is an internal error: one line, exit 1, and a traceback (without local
    variables, secrets redacted) only with ``--verbose``.
    """

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, hoist_output_flags(args))
        except ClickUsageError as exc:
            _report_usage_error(ctx, exc)
            raise  # not reached: the report exits
        except Exception as exc:
            _redact_usage_error(exc)
            raise

    def resolve_command(self, ctx: ClickContext, args: list[str]) -> Any:
        name, command, rest = super().resolve_command(ctx, args)
        if isinstance(command, TyperGroup) and not rest and ctx.params.get("json_output"):
            # A group run bare answers with its help: not for --json, whose reader takes
            # stdout as JSON (and whose errors are one line on stderr).
            names = ", ".join(command.list_commands(ctx))
            group_ctx = ClickContext(command, parent=ctx, info_name=name)  # for its hint
            raise ClickUsageError(f"a command is needed: {names}", ctx=group_ctx)
        return name, command, rest

    def invoke(self, ctx: ClickContext) -> Any:
        interrupt_as_exception()  # start-up is over (``stop_signals``)
        try:
            return super().invoke(ctx)
        except AutoopsError as exc:
            _report_expected(ctx, exc)
            ctx.exit(int(exc.exit_code))
        except KeyboardInterrupt:
            # A Ctrl-C no command took for a stop of its own (at a question): click made it
            # "Aborted!", exit 1, the code of a failed check.
            _output_of(ctx).stderr.print()
            ctx.exit(int(ExitCode.INTERRUPTED))
        except (typer.Exit, typer.Abort):
            raise
        except BrokenPipeError:  # stdout's reader left (| head) while data streamed out
            discard_stdout()
            ctx.exit(int(ExitCode.OK))
        except ClickUsageError as exc:  # a subcommand's bad option, value or argument
            _report_usage_error(ctx, exc)
        except StdoutError as exc:  # a help text (printed by click) that stdout refused
            discard_stdout()
            _report_expected(
                ctx, LocalFileError(f"cannot write to standard output: {exc.strerror or exc}")
            )
            ctx.exit(int(ExitCode.LOCAL_FILE))
        except Exception as exc:
            if type(exc).__module__.startswith("typer"):  # click's own exceptions
                _redact_usage_error(exc)
                raise
            _report_unexpected(ctx, exc)
            ctx.exit(int(ExitCode.FAILURE))


_LINE_BREAKS = re.compile(r"\s*\n\s*")


def _report_usage_error(ctx: ClickContext, exc: ClickUsageError) -> None:
    """A bad command line as every expected error is said: one ``error:`` line (and a
    hint), exit 2, instead of Typer's usage block and boxed message (five lines and more,
    piped and with --json too)."""
    if not exc.format_message().strip():  # a group run bare: its help is the answer
        raise exc
    _redact_usage_error(exc)
    used = exc.ctx if exc.ctx is not None else ctx
    # On one line: click lays out some messages over several ("Choose from:\n\tbash,...");
    # only the line breaks go (the value given is quoted as it was).
    message = _LINE_BREAKS.sub(" ", exc.format_message()).strip()
    _output_of(ctx).error(message, f"`{used.command_path} --help` shows the usage")
    ctx.exit(int(ExitCode.USAGE))


def _redact_usage_error(exc: BaseException) -> None:
    """Mask secrets in a usage error's message before Typer lays it out in its box: click
    echoes the argument given (``autoops "$LANGFUSE_SECRET_KEY"``: "No such command ...").
    Masked after the layout, a secret cut over two lines of the box showed in part."""
    from config.redaction import redact_secrets

    message = getattr(exc, "message", None)
    if isinstance(message, str):
        exc.message = redact_secrets(message)  # type: ignore[attr-defined]
    for name in ("option_name", "possibilities"):  # NoSuchOption builds its text from these
        value = getattr(exc, name, None)
        if isinstance(value, str):
            setattr(exc, name, redact_secrets(value))
        elif isinstance(value, list | tuple):
            setattr(exc, name, [redact_secrets(str(item)) for item in value])


OUTPUT_FLAGS = frozenset({"--json", "--quiet", "-q", "--verbose", "-v"})


def hoist_output_flags(args: list[str]) -> list[str]:
    """Move --json, -q and -v to the front, so they also work after the command.

    ``autoops config validate --json`` then means ``autoops --json config validate``.
    Arguments after ``--`` are left alone.
    """
    end = args.index("--") if "--" in args else len(args)
    flags = [a for a in args[:end] if _output_flag(a)]
    rest = [a for a in args[:end] if not _output_flag(a)]
    return flags + rest + args[end:]


def _output_flag(arg: str) -> bool:
    """``--json``, ``-q``, ``-v``, or short ones together (``-qv``)."""
    if arg in OUTPUT_FLAGS:
        return True
    return len(arg) > 2 and arg[0] == "-" and arg[1] != "-" and set(arg[1:]) <= {"q", "v"}


def _output_of(ctx: ClickContext) -> Output:
    state = ctx.find_object(AppState)
    return state.output if state is not None else Output()


def _report_expected(ctx: ClickContext, exc: AutoopsError) -> None:
    out = _output_of(ctx)
    if isinstance(exc, ConfigurationError) and exc.problems:
        count = len(exc.problems)
        out.error(f"invalid configuration ({count} problem{'s' if count != 1 else ''}):")
        for problem in exc.problems:
            out.stderr.print(f"  - {_escape(problem)}")
        if exc.hint:
            out.stderr.print(f"[dim]hint:[/dim] {_escape(exc.hint)}")
        return
    out.error(exc.message, exc.hint)


def _report_unexpected(ctx: ClickContext, exc: Exception) -> None:
    import traceback

    from config.redaction import redact_secrets

    out = _output_of(ctx)
    if out.verbose:
        # format_exception never includes local variables, where secrets live.
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        sys.stderr.write(redact_secrets(text))
    out.error(
        f"internal error: {type(exc).__name__}: {exc}",
        None if out.verbose else "run again with --verbose for the traceback, and report it",
    )


def _escape(text: str) -> str:
    from autoops_cli.output import escape
    from config.redaction import redact_secrets

    return escape(redact_secrets(text))


def _version_callback(ctx: typer.Context, value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            sdk = version("langfuse")
        except PackageNotFoundError:  # pragma: no cover - a broken install
            sdk = "not installed"
        py = ".".join(str(part) for part in sys.version_info[:3])
        try:
            with writing_stdout():
                if ctx.params.get("json_output"):  # eager as --version, and hoisted before it
                    document = {"autoops": __version__, "langfuse_sdk": sdk, "python": py}
                    typer.echo(json.dumps(document, indent=2))
                else:
                    typer.echo(f"autoops {__version__} (langfuse SDK {sdk}, Python {py})")
        except AutoopsError as exc:  # parsed before the command's error boundary
            Output().error(exc.message)
            raise typer.Exit(int(exc.exit_code)) from None
        raise typer.Exit()


app = typer.Typer(
    name="autoops",
    cls=AutoopsGroup,
    help=ROOT_HELP,
    no_args_is_help=True,
    add_completion=False,  # `autoops completions` ships the scripts instead
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def root(
    ctx: typer.Context,
    json_output: bool = typer.Option(
        False,
        "--json",
        is_eager=True,  # known to --version's callback
        help="Write machine-readable JSON to stdout instead of tables.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors and data; no progress."),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Debug logging (incl. Langfuse/OpenTelemetry) on stderr."
    ),
    config_file: Path | None = typer.Option(
        None,
        "--config",
        readable=False,  # checked when read: exit 6 in one line, not click's usage error
        envvar="AUTOOPS_CONFIG",
        help="Project config file (default: autoops.toml found from the working directory up).",
        show_envvar=True,
    ),
    version: bool | None = typer.Option(
        None,
        "--version",
        callback=_version_callback,
        is_eager=True,
        help="Show the version and exit.",
    ),
) -> None:
    """Build the application state every command takes from ``ctx.obj``."""
    from autoops_cli.logging_setup import configure_logging

    configure_logging(verbose)
    if ctx.get_parameter_source("config_file") is ParameterSource.ENVIRONMENT:
        # From AUTOOPS_CONFIG: the settings read it themselves and name it as its origin
        # (as --config, a missing file would be reported as coming from the flag).
        config_file = None
    ctx.obj = AppState(
        output=Output(json_mode=json_output, quiet=quiet, verbose=verbose),
        config_file=config_file,
    )


def _register_commands() -> None:
    from commands import (
        buffer,
        completions,
        config,
        deploy,
        events,
        health,
        metrics,
        replay,
        sampling,
        serve,
        traces,
    )

    app.command(name="replay")(replay.replay)
    app.command(name="serve")(serve.serve)
    app.command(name="health-check")(health.health_check)
    app.command(name="deploy")(deploy.deploy)
    app.add_typer(events.app, name="events")
    app.add_typer(traces.app, name="traces")
    app.command(name="metrics")(metrics.metrics)
    app.add_typer(buffer.app, name="buffer")
    app.add_typer(sampling.app, name="sampling")
    app.add_typer(config.app, name="config")
    app.add_typer(completions.app, name="completions")


_register_commands()
