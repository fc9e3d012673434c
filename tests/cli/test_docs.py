"""The README and CI stay true to the code."""

from __future__ import annotations

from config.settings import SETTINGS_MODELS
from config.settings_layers import env_names
from tests.support.paths import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")


def _quick_start_commands() -> list[str]:
    blocks = README.split("## Quick start", 1)[1].split("\n## ", 1)[0].split("```sh\n")[1:]
    return [block.split("\n```", 1)[0].strip() for block in blocks]


def test_ci_runs_the_readme_test_command() -> None:
    install_and_run, install_and_test = _quick_start_commands()
    assert "pytest" in install_and_test
    assert install_and_test in (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert install_and_run.startswith("python3 -m venv .venv && .venv/bin/pip install .")


def test_readme_configuration_table_lists_every_setting() -> None:
    table = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    for model in SETTINGS_MODELS:
        for name in model.model_fields:
            row = next(
                (
                    line
                    for line in table.splitlines()
                    if line.startswith(f"| `{model.toml_section}.{name}`")
                ),
                None,
            )
            assert row is not None, f"{model.toml_section}.{name} missing from the README"
            for variable in env_names(model, name):
                assert f"`{variable}`" in row


def test_architecture_doc_exists_and_names_the_packages() -> None:
    text = (REPO_ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for package in (
        "autoops_cli/",
        "commands/",
        "config/",
        "tests/",
        "completions/",
        "benchmarks/",
    ):
        assert package in text
