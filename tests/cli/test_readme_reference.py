"""The README's command reference and the troubleshooting guide stay true to the code.

- Every row of the README's command table names a real command, writes its arguments as
  they are, and uses only options that command (or the root) really has; options written
  outside brackets are the required ones; every command has exactly one row.
- Every message quoted in a ``message`` column of docs/troubleshooting.md exists in the
  source as written (``<...>`` stands for a part filled in at run time).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from enum import Enum
from functools import cache
from typing import Any

import typer

from autoops_cli.app import app
from config.errors import EXIT_CODE_MEANINGS
from tests.support.helpers import leaf_commands
from tests.support.paths import REPO_ROOT

README = REPO_ROOT / "README.md"
TROUBLESHOOTING = REPO_ROOT / "docs" / "troubleshooting.md"
SOURCE_PACKAGES = ("config", "autoops_cli", "commands")
OPTION = re.compile(r"--[a-z][a-z0-9-]*")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")


def cells(line: str) -> list[str]:
    """The cells of a Markdown table row (``\\|`` is a pipe inside a cell)."""
    parts = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [part.strip().replace("\\|", "|") for part in parts]


def code_spans(text: str) -> list[str]:
    """The contents of the code spans of ``text`` (single or double backticks)."""
    return [match.group(2).strip() for match in CODE_SPAN.finditer(text)]


# --- the README's command table --------------------------------------------------------


def command_rows() -> list[tuple[str, str]]:
    """(usage, description) of every ``| `autoops ...` | ... |`` row."""
    section = README.read_text(encoding="utf-8").split("\n## Commands\n", 1)[1]
    rows = []
    for line in section.split("\n## ", 1)[0].splitlines():
        if line.startswith("| `autoops "):
            usage, description = cells(line)[:2]
            rows.append((code_spans(usage)[0], description))
    return rows


def resolve(usage: str) -> tuple[str, Any, list[str]]:
    """The command a usage line names: its path, the click command, the words after it."""
    command = typer.main.get_command(app)
    words = usage.split()
    assert words[0] == "autoops", usage
    path = ["autoops"]
    rest = words[1:]
    while rest and rest[0] in (getattr(command, "commands", None) or {}):
        command = command.commands[rest[0]]
        path.append(rest.pop(0))
    return " ".join(path), command, rest


def option_names(command: Any) -> set[str]:
    return {
        name
        for param in command.params
        if param.param_type_name == "option"
        for name in (*param.opts, *param.secondary_opts)
    }


def choices(param: Any) -> set[str] | None:
    """The values an option accepts, when they are a fixed set (an Enum-typed option)."""
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return {str(member.value) for member in annotation}
    return None


def value_problems(path: str, command: Any, words: list[str]) -> list[str]:
    """A flag written with a value, an option written without one, or other choices."""
    by_name = {
        name: param
        for param in command.params
        if param.param_type_name == "option"
        for name in (*param.opts, *param.secondary_opts)
    }
    problems = []
    for index, word in enumerate(words):
        match = OPTION.search(word)
        param = by_name.get(match.group(0)) if match else None
        if param is None:
            continue
        following = words[index + 1] if index + 1 < len(words) else ""
        value = "" if word.endswith("]") or following[:1] in ("", "[", "|", "-") else following
        if param.is_flag or param.count:
            if value:
                problems.append(f"{path}: {match.group(0)} is a flag, written with {value!r}")
        elif not value:
            problems.append(f"{path}: {match.group(0)} takes a value, written without one")
        elif "|" in value:
            written = set(value.rstrip("]").split("|"))
            if written != choices(param):
                problems.append(f"{path}: {match.group(0)} choices {sorted(written)}")
    return problems


def outside_brackets(words: list[str]) -> list[str]:
    """The words of a usage line that are not inside ``[...]``."""
    found, depth = [], 0
    for word in words:
        if depth == 0 and not word.startswith("["):
            found.append(word)
        depth += word.count("[") - word.count("]")
    return found


def row_problems(usage: str, description: str) -> list[str]:
    """What is wrong with one row of the command table (nothing, for a true row)."""
    path, command, rest = resolve(usage)
    if getattr(command, "commands", None):
        return [f"{path} is a group, not a command"]
    problems = []
    options = option_names(command)
    # arguments: the upper-case words right after the command, in order
    arguments = [p.name.upper() for p in command.params if p.param_type_name == "argument"]
    written = []
    for word in rest:
        if not re.fullmatch(r"[A-Z_]+", word):
            break
        written.append(word)
    if written != arguments:
        problems.append(f"{path}: arguments written {written}, real {arguments}")
    problems += [f"{path} has no option {o}" for o in OPTION.findall(usage) if o not in options]
    problems += value_problems(path, command, rest)
    global_options = option_names(typer.main.get_command(app))
    problems += [
        f"{path}: its description names {o}, an option it does not have"
        for o in OPTION.findall(description)
        if o not in options | global_options
    ]
    required = {
        param.opts[0]
        for param in command.params
        if param.param_type_name == "option" and param.required
    }
    unbracketed = {w for w in outside_brackets(rest) if w.startswith("--")}
    if unbracketed != required:
        problems.append(
            f"{path}: written as required {sorted(unbracketed)}, required {sorted(required)}"
        )
    return problems


def test_every_readme_row_names_a_real_command_with_real_options() -> None:
    rows = command_rows()
    assert len(rows) >= 10
    assert [problem for row in rows for problem in row_problems(*row)] == []


def test_the_row_check_finds_what_is_wrong() -> None:
    assert row_problems("autoops traces show TRACE_ID [--local]", "`--json` gives a tree") == []
    assert row_problems("autoops traces", "") == ["autoops traces is a group, not a command"]
    assert row_problems("autoops traces show [--local]", "")  # the argument is missing
    assert row_problems("autoops traces show TRACE_ID [--since 1h]", "")  # not its option
    assert row_problems("autoops replay FILE", "`--agent` picks one")  # nor in the description
    assert row_problems("autoops events generate [--count N]", "")  # --count is required
    assert row_problems("autoops metrics --since 1h", "")  # --since is not
    assert row_problems("autoops metrics [--since]", "")  # it takes a value
    assert row_problems("autoops metrics [--local ID]", "")  # a flag takes none
    assert row_problems("autoops metrics [--by hour|week]", "")  # not its choices


def test_every_command_has_exactly_one_readme_row() -> None:
    written = [resolve(usage)[0] for usage, _ in command_rows()]
    real = [path for path, _ in leaf_commands()]
    assert sorted(written) == sorted(real)


# --- the troubleshooting guide ---------------------------------------------------------


def _module_strings() -> dict[str, str]:
    """Module-level string constants (``RATE_RANGE = "..."``) of the source, by name."""
    found: dict[str, set[str]] = {}
    for tree in _trees():
        for node in tree.body:
            target, value = None, None
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
            elif isinstance(node, ast.AnnAssign):
                target, value = node.target, node.value
            if (
                isinstance(target, ast.Name)
                and isinstance(value, ast.Constant)
                and isinstance(value.value, str)
            ):
                found.setdefault(target.id, set()).add(value.value)
    return {name: next(iter(values)) for name, values in found.items() if len(values) == 1}


@cache
def _trees() -> list[ast.Module]:
    return [
        ast.parse(path.read_text(encoding="utf-8"))
        for package in SOURCE_PACKAGES
        for path in sorted((REPO_ROOT / package).rglob("*.py"))
    ]


@cache
def source_messages() -> tuple[str, ...]:
    """Every string of the source as it reads, run-time parts as ``<>``.

    Adjacent literals are one string already (the parser joins them); f-string fields
    become ``<>`` (``'<>'`` with ``!r``), a module constant its value; %-style fields
    (logging) become ``<>``.
    """
    constants = _module_strings()
    percent = re.compile(r"%[-#0 +]*\d*(?:\.\d+)?[sdfr]")

    def field(value: ast.FormattedValue) -> str:
        if isinstance(value.value, ast.Name) and value.value.id in constants:
            return constants[value.value.id]
        return "'<>'" if value.conversion == ord("r") else "<>"

    found: list[str] = []
    for tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.append(percent.sub("<>", node.value))
            elif isinstance(node, ast.JoinedStr):
                found.append(
                    "".join(
                        part.value
                        if isinstance(part, ast.Constant)
                        else field(part)
                        if isinstance(part, ast.FormattedValue)
                        else "<>"
                        for part in node.values
                    )
                )
    return tuple(found)


def in_source(message: str) -> bool:
    """True when some string of the source reads ``message``, ``<...>`` matching any part."""
    pieces = re.split(r"<[^<>]*>", message)
    pattern = re.compile(".*?".join(re.escape(piece) for piece in pieces))
    longest = max(
        pieces, key=len
    )  # a plain substring test first: the regex only where it can match
    return any(pattern.search(text) for text in source_messages() if longest in text)


def quoted_messages(markdown: str) -> Iterator[tuple[str, str]]:
    """(table header, quoted text) for every code span in a column named ``... message``."""
    header: list[str] | None = None
    for line in markdown.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        row = cells(line)
        if header is None:
            header = row
            continue
        if set("".join(row)) <= set("-: "):
            continue
        for name, cell in zip(header, row, strict=False):
            if name.endswith("message"):
                for text in code_spans(cell):
                    yield name, text


def test_the_matcher_tells_real_messages_from_invented_ones() -> None:
    assert in_source("--orchestrator <spec>: expected module:factory")
    assert in_source("invalid configuration (<n> problem<s>):")
    assert in_source("Langfuse rejected the keys (HTTP <status>: <message>)")  # a log format
    assert not in_source("--orchestrator <spec>: expected package:function")
    assert not in_source("the outbox is full, batches were dropped")


def test_every_message_quoted_in_troubleshooting_exists_in_the_code() -> None:
    text = TROUBLESHOOTING.read_text(encoding="utf-8")
    quoted = list(quoted_messages(text))
    assert len(quoted) >= 60
    missing = [message for _, message in quoted if not in_source(message)]
    assert missing == []


def test_troubleshooting_covers_every_exit_code() -> None:
    text = TROUBLESHOOTING.read_text(encoding="utf-8")
    for code, meaning in EXIT_CODE_MEANINGS.items():
        assert f"| {int(code)} | {meaning} |" in text
        if code:
            assert re.search(rf"^## Exit {int(code)}: ", text, re.M), f"no section for {int(code)}"


def test_readme_links_the_guides_and_the_examples() -> None:
    readme = README.read_text(encoding="utf-8")
    for guide in ("docs/developer-guide.md", "docs/troubleshooting.md"):
        assert f"]({guide})" in readme and (REPO_ROOT / guide).exists()
    for example in sorted((REPO_ROOT / "examples").glob("*.py")):
        assert f"examples/{example.name}" in readme, f"{example.name} is not in the README"
