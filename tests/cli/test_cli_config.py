"""``autoops config validate|show|init`` as a user sees them."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest

from autoops_cli.actions.config import render_template
from config.settings import DataMaskingConfig, LangfuseConfig
from config.settings_layers import env_names
from tests.conftest import KNOWN_PUBLIC, KNOWN_SECRET, Cli
from tests.support.paths import GOLDEN

BAD_ENV = {
    "LANGFUSE_SAMPLE_RATE": "1.5",
    "LANGFUSE_HOST": "ftp://x",
    "LANGFUSE_PUBLIC_KEY": "abc",
}


def test_validate_names_all_three_problems_on_stderr(cli: Cli) -> None:
    result = cli("config", "validate", env=BAD_ENV)
    assert result.exit_code == 3
    assert result.stdout == ""
    for variable in BAD_ENV:
        assert f"environment variable {variable}" in result.stderr
    assert "between 0 and 1" in result.stderr
    assert "configuration invalid: 3 problems" in result.stderr


def test_validate_json_on_stdout(cli: Cli) -> None:
    result = cli("config", "validate", "--json", env=BAD_ENV)
    assert result.exit_code == 3
    report = json.loads(result.stdout)
    assert report["valid"] is False
    assert report["mode"] == "local"
    assert {e["setting"] for e in report["errors"]} == {
        "langfuse.sample_rate",
        "langfuse.host",
        "langfuse.public_key",
    }
    sources = {e["source"] for e in report["errors"]}
    assert sources == {f"environment variable {v}" for v in BAD_ENV}
    assert all(set(e) == {"setting", "source", "message"} for e in report["errors"])


def test_validate_valid_configurations(cli: Cli) -> None:
    local = cli("config", "validate")
    assert local.exit_code == 0
    assert local.stdout.startswith("configuration valid: local mode")
    keys = {
        "LANGFUSE_PUBLIC_KEY": KNOWN_PUBLIC,
        "LANGFUSE_SECRET_KEY": KNOWN_SECRET,
        "LANGFUSE_HOST": "http://127.0.0.1:3000",
        "LANGFUSE_SAMPLE_RATE": "0",
    }
    result = cli("config", "validate", "--json", env=keys)
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["valid"] is True and report["mode"] == "langfuse"
    # Plain http to loopback is no warning; a sample rate of 0 is.
    assert {w["setting"] for w in report["warnings"]} == {"langfuse.sample_rate"}


def test_a_long_line_piped_is_never_wrapped(run_autoops) -> None:  # type: ignore[no-untyped-def]
    """Piped, a plain line was wrapped at 80 columns: grep missed it, and eval of serve's
    `export` lines failed."""
    host = "https://langfuse.observability.internal." + "x" * 60 + ".example.com"
    keys = {"LANGFUSE_PUBLIC_KEY": KNOWN_PUBLIC, "LANGFUSE_SECRET_KEY": KNOWN_SECRET,
            "LANGFUSE_HOST": host, "COLUMNS": ""}  # fmt: skip
    result = run_autoops("config", "validate", env=keys)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"configuration valid: langfuse mode (Langfuse at {host})\n"


def test_validate_config_option_and_missing_file(cli: Cli, workdir: Path) -> None:
    bad = workdir / "bad.toml"
    bad.write_text("[langfuse]\nsample_rate = 7\n")
    result = cli("config", "validate", "--config", str(bad))
    assert result.exit_code == 3
    assert f"{bad} (key langfuse.sample_rate)" in result.stderr
    assert cli("--config", str(bad), "config", "validate").exit_code == 3
    missing = cli("config", "validate", "--config", "nope.toml")
    assert missing.exit_code == 6
    assert "nope.toml" in missing.stderr and "does not exist" in missing.stderr


def test_a_config_file_that_cannot_be_looked_at_is_exit_6_not_a_traceback(
    cli: Cli, workdir: Path
) -> None:
    """A directory on the user file's way that cannot be searched (another owner's 0700,
    a name too long) fails the lookup itself: one line naming the file, exit 6."""
    unlookable = workdir / ("x" * 300)  # ENAMETOOLONG, as EACCES would, for any user
    result = cli("config", "show", env={"XDG_CONFIG_HOME": str(unlookable)})
    assert result.exit_code == 6, result.both
    assert "cannot read config file" in result.stderr
    assert "Traceback" not in result.both and "internal error" not in result.both


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv to drop root's reads")
def test_an_unreadable_config_file_is_exit_6_in_one_line_wherever_it_is_named(
    workdir: Path,
) -> None:
    """`--config FILE` (or AUTOOPS_CONFIG) unreadable was click's usage error, exit 2; `sampling
    set` on it an internal error. Run without root's right to read any file."""
    import subprocess

    from tests.support.replay_runs import clean_env
    from tests.support.serve_process import autoops_executable

    unreadable = workdir / "locked.toml"
    unreadable.write_text("[langfuse]\nrelease = 'r'\n")
    unreadable.chmod(0)
    without_root_reads = ["setpriv", "--bounding-set=-dac_override,-dac_read_search",
                          "--inh-caps=-dac_override,-dac_read_search"]  # fmt: skip
    env = clean_env(AUTOOPS_HOME=str(workdir / "home"))
    for args in (["--config", str(unreadable), "config", "validate"],
                 ["config", "validate", "--config", str(unreadable)],
                 ["--config", str(unreadable), "sampling", "set", "0.5"]):  # fmt: skip
        done = subprocess.run([*without_root_reads, autoops_executable(), *args], env=env,
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        assert done.returncode == 6, (args, done.stderr)
        assert (
            done.stderr.strip() == f"error: cannot read config file {unreadable}: Permission denied"
        )


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv to drop root's reads")
def test_a_store_this_user_may_not_open_is_said_to_be_so(workdir: Path) -> None:
    """SQLite's "unable to open database file" was all a store of mode 000 got, for a replay
    as for serve: the file is there, and not this user's to open."""
    import subprocess

    from config.store.local_store import LocalStore
    from tests.support.replay_runs import clean_env
    from tests.support.serve_process import autoops_executable

    home = workdir / "home"
    home.mkdir()
    LocalStore(home / "traces.db").close()
    (home / "traces.db").chmod(0)
    without_root_reads = ["setpriv", "--bounding-set=-dac_override,-dac_read_search",
                          "--inh-caps=-dac_override,-dac_read_search"]  # fmt: skip
    for args in (["serve", "--port", "0", "--store", str(home / "traces.db")],
                 ["traces", "list", "--local"]):  # fmt: skip
        done = subprocess.run([*without_root_reads, autoops_executable(), *args],
                              env=clean_env(AUTOOPS_HOME=str(home)), capture_output=True,
                              text=True, timeout=60, check=False, stdin=subprocess.DEVNULL)  # fmt: skip
        assert done.returncode == 6, (args, done.stderr)
        assert f"permission denied ({home / 'traces.db'})" in done.stderr


def test_a_setting_written_before_any_table_is_a_problem_naming_its_table(
    cli: Cli, workdir: Path
) -> None:
    """`sample_rate = 0.1` without `[langfuse]` above it was "an unknown table, ignored":
    exit 0, and the rate was silently not used."""
    (workdir / "autoops.toml").write_text('sample_rate = 0.1\nfoo = 1\n[langfuse]\nrelease = "r"\n')
    result = cli("--json", "config", "validate")
    assert result.exit_code == 3, result.both
    errors = {e["setting"]: e["message"] for e in json.loads(result.stdout)["errors"]}
    assert errors["sample_rate"].endswith("it belongs under [langfuse] (langfuse.sample_rate)")
    assert errors["foo"].startswith("a setting outside any table (known tables: [langfuse]")


def test_a_rate_in_a_file_is_a_number_and_minus_zero_is_zero(cli: Cli, workdir: Path) -> None:
    """`sample_rate = "0.5"` was taken for 0.5 where a rule's "0.5" is refused (the docs: a
    string is a configuration problem); `-0.0` showed as "-0" ("about -0 % kept")."""
    (workdir / "autoops.toml").write_text('[langfuse]\nsample_rate = "0.5"\n')
    result = cli("--json", "config", "validate")
    assert result.exit_code == 3, result.both
    (error,) = json.loads(result.stdout)["errors"]
    assert error["message"] == "must be a number, got '0.5' (a string)"
    (workdir / "autoops.toml").write_text("[langfuse]\nsample_rate = -0.0\n")
    shown = cli("sampling", "show")
    assert shown.exit_code == 0 and "-0" not in shown.stdout, shown.both


def test_show_masks_the_secret_and_gives_origins(cli: Cli) -> None:
    env = {"LANGFUSE_PUBLIC_KEY": KNOWN_PUBLIC, "LANGFUSE_SECRET_KEY": KNOWN_SECRET}
    result = cli("config", "show", "--show-origin", env=env)
    assert result.exit_code == 0
    assert KNOWN_SECRET not in result.both
    assert "sk-lf-****cdef" in result.stdout
    assert "environment variable" in result.stdout
    data = json.loads(cli("config", "show", "--json", "--show-origin", env=env).stdout)
    assert data["mode"] == "langfuse"
    by_name = {s["setting"]: s for s in data["settings"]}
    assert by_name["langfuse.secret_key"]["value"] == "sk-lf-****cdef"
    assert by_name["langfuse.secret_key"]["origin"] == "environment variable LANGFUSE_SECRET_KEY"
    assert by_name["langfuse.host"]["origin"] == "default"
    assert by_name["masking.retention_days"]["env"] == "AUTOOPS_RETENTION_DAYS"
    without = json.loads(cli("config", "show", "--json", env=env).stdout)
    assert "origin" not in without["settings"][0]


def test_show_golden_table(cli: Cli) -> None:
    env = {"LANGFUSE_RELEASE": "v1.2.3", "LANGFUSE_PUBLIC_KEY": KNOWN_PUBLIC}
    env["LANGFUSE_SECRET_KEY"] = KNOWN_SECRET
    result = cli("config", "show", "--show-origin", env=env)
    assert result.exit_code == 0
    assert result.stdout == (GOLDEN / "config_show.txt").read_text(encoding="utf-8")


def test_show_refuses_an_invalid_configuration(cli: Cli) -> None:
    result = cli("config", "show", env=BAD_ENV)
    assert result.exit_code == 3
    assert "invalid configuration (3 problems)" in result.stderr


def test_init_writes_template_and_refuses_to_overwrite(cli: Cli, workdir: Path) -> None:
    result = cli("config", "init")
    assert result.exit_code == 0
    path = workdir / "autoops.toml"
    text = path.read_text()
    assert text == render_template()
    assert "secret_key =" not in text and "sk-lf-" not in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert cli("config", "validate").exit_code == 0
    path.write_text("# mine\n")
    again = cli("config", "init")
    assert again.exit_code == 6
    assert "already exists" in again.stderr and "--force" in again.stderr
    assert path.read_text() == "# mine\n"
    assert cli("config", "init", "--force").exit_code == 0
    assert path.read_text() == render_template()


def test_template_uncommented_is_a_valid_config(cli: Cli, workdir: Path) -> None:
    """Every line of the template, uncommented, is accepted: it cannot drift from the models."""
    lines = []
    for line in render_template().splitlines():
        is_setting = line.startswith("# ") and " = " in line and "(" not in line
        lines.append(line[2:] if is_setting else line)
    (workdir / "autoops.toml").write_text("\n".join(lines) + "\n")
    result = cli("config", "validate", "--json")
    assert json.loads(result.stdout)["errors"] == []
    for model in (LangfuseConfig, DataMaskingConfig):
        for name in model.model_fields:
            if name not in ("public_key", "secret_key"):
                assert f"{name} = " in render_template()
                assert env_names(model, name)[0] in render_template()


def test_a_dotenv_file_that_cannot_be_read_is_listed_in_validate_json(
    cli: Cli, workdir: Path
) -> None:
    """A ``.env`` that is not UTF-8 stopped ``config validate --json`` with no JSON at all
    (a TOML file in the same state is one of the listed errors); a line that is not
    ``NAME=value`` was skipped with python-dotenv's own log line (no file, no ``warning:``,
    shown even with -q) while the configuration passed for valid. Both are listed now."""
    dotenv = workdir / ".env"
    dotenv.write_bytes(b"LANGFUSE_ENVIRONMENT=caf\xe9\n")
    result = cli("--json", "config", "validate")
    assert result.exit_code == 3
    (error,) = json.loads(result.stdout)["errors"]
    assert error["source"] == str(dotenv) and "not UTF-8" in error["message"]
    dotenv.write_text(f"LANGFUSE_SECRET_KEY {KNOWN_SECRET}\nLANGFUSE_ENVIRONMENT=prod\n")
    result = cli("--json", "-q", "config", "validate")
    assert result.exit_code == 0
    (warning,) = json.loads(result.stdout)["warnings"]
    assert warning == {
        "setting": "file",
        "source": f"{dotenv}:1",
        "message": "not a NAME=value line: ignored",
    }
    assert "python-dotenv" not in result.stderr and KNOWN_SECRET not in result.both


def test_a_folder_where_a_configuration_file_goes_is_a_warning(cli: Cli, workdir: Path) -> None:
    """A folder named autoops.toml, or the user file's path a folder: skipped in silence,
    'configuration valid'. Skipped still, and said."""
    (workdir / "autoops.toml").mkdir()
    user = workdir.parent / "home" / ".config" / "autoops" / "config.toml"
    user.mkdir(parents=True)
    result = cli("--json", "config", "validate")
    assert result.exit_code == 0, result.both
    warnings = {w["source"]: w["message"] for w in json.loads(result.stdout)["warnings"]}
    for path in (workdir / "autoops.toml", user):
        assert warnings[str(path)].startswith("not a regular file"), warnings
    # A link to nothing is said as such; a project file named by --config is the one read,
    # so ./autoops.toml is not looked at.
    user.rmdir()
    user.symlink_to(workdir / "nowhere.toml")
    (workdir / "named.toml").write_text("", encoding="utf-8")
    result = cli("--json", "--config", "named.toml", "config", "validate")
    assert result.exit_code == 0, result.both
    warnings = {w["source"]: w["message"] for w in json.loads(result.stdout)["warnings"]}
    assert warnings == {str(user): "a link to nothing (or in a loop): ignored"}


def test_init_in_a_subfolder_of_a_project_says_what_it_changes(
    cli: Cli, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """config init in a subfolder of a project (its .autoops/ store, no autoops.toml) made
    that subfolder a project with a store of its own, and said nothing: the project's
    store, and an outbox's waiting batches, were no longer seen from there."""
    monkeypatch.delenv("AUTOOPS_HOME")
    (workdir / ".autoops").mkdir()
    sub = workdir / "sub"
    sub.mkdir()
    monkeypatch.chdir(sub)
    written = cli("config", "init")
    assert written.exit_code == 0, written.both
    assert (sub / "autoops.toml").is_file()
    assert f"{workdir} is a project already" in written.stderr
    assert f"write {workdir / 'autoops.toml'} instead" in written.stderr
    alone = cli("config", "init", "--path", str(workdir / "autoops.toml"))
    assert alone.exit_code == 0 and f"{workdir} is a project already" not in alone.stderr
    # A home that once ran autoops (its .autoops/) is no project of every folder below it,
    # and with AUTOOPS_HOME the store stays where it is: nothing to say.
    home = workdir.parent / "home"
    (home / ".autoops").mkdir(parents=True)
    (home / "new").mkdir()
    monkeypatch.chdir(home / "new")
    assert "is a project already" not in cli("config", "init").stderr
    nested = sub / "nested"
    nested.mkdir()
    monkeypatch.chdir(nested)
    monkeypatch.setenv("AUTOOPS_HOME", str(workdir / "fixed"))
    assert "is a project already" not in cli("config", "init").stderr
