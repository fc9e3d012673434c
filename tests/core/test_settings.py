"""LangfuseConfig / DataMaskingConfig: validation rules, sources, precedence, origins."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from config.errors import LocalFileError
from config.redaction import mask_secret
from config.settings import DataMaskingConfig, LangfuseConfig
from config.settings_sources import load_settings
from tests.conftest import KNOWN_PUBLIC, KNOWN_SECRET


def problems_by_setting(loaded) -> dict[str, str]:
    return {p.setting: f"{p.source} :: {p.message}" for p in loaded.problems}


def test_no_configuration_is_valid_local_mode(workdir: Path) -> None:
    loaded = load_settings()
    assert loaded.valid
    assert loaded.mode == "local"
    config, masking = loaded.require()
    assert config.host == "https://cloud.langfuse.com"
    assert config.sample_rate == 1.0
    assert masking.mask_pii is True
    assert loaded.origin_of("langfuse.host").describe() == "default"


def test_keys_select_langfuse_mode(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", KNOWN_PUBLIC)
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", KNOWN_SECRET)
    loaded = load_settings()
    assert loaded.valid, loaded.problems
    assert loaded.mode == "langfuse"
    monkeypatch.setenv("LANGFUSE_TRACING_ENABLED", "false")
    loaded = load_settings()
    assert loaded.mode == "local"
    assert [w.setting for w in loaded.warnings] == ["langfuse.tracing_enabled"]


def test_all_problems_reported_at_once_with_env_var_names(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANGFUSE_SAMPLE_RATE", "1.5")
    monkeypatch.setenv("LANGFUSE_HOST", "ftp://x")
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", "abc")
    monkeypatch.setenv("LANGFUSE_MAX_RETRIES", "0")
    monkeypatch.setenv("AUTOOPS_RETENTION_DAYS", "many")
    found = problems_by_setting(load_settings())
    assert set(found) == {
        "langfuse.sample_rate",
        "langfuse.host",
        "langfuse.public_key",
        "langfuse.max_retries",
        "masking.retention_days",
    }
    assert "environment variable LANGFUSE_SAMPLE_RATE" in found["langfuse.sample_rate"]
    assert "between 0 and 1" in found["langfuse.sample_rate"]
    assert "environment variable LANGFUSE_HOST" in found["langfuse.host"]
    assert "http(s) URL" in found["langfuse.host"]
    assert "pk-lf-" in found["langfuse.public_key"]
    assert "positive" in found["langfuse.max_retries"]
    assert "'many'" in found["masking.retention_days"]


def test_the_guides_dataclass_fields_may_be_given_positionally(workdir: Path) -> None:
    """The guide declares LangfuseConfig and DataMaskingConfig as dataclasses: keys given in
    its field order select langfuse mode (pydantic alone took them for private parameters)."""
    config = LangfuseConfig(KNOWN_PUBLIC, KNOWN_SECRET, "http://127.0.0.1:3000", True, 0.5)
    assert config.mode == "langfuse" and config.public_key == KNOWN_PUBLIC
    assert config.secret_key is not None and config.secret_key.get_secret_value() == KNOWN_SECRET
    assert config.host == "http://127.0.0.1:3000" and config.sample_rate == 0.5
    masking = DataMaskingConfig(False, True, False, 7)
    assert (masking.mask_pii, masking.mask_financial_data, masking.retention_days) == (
        False, True, 7,
    )  # fmt: skip
    with pytest.raises(TypeError, match="at most 4 positional"):
        DataMaskingConfig(False, False, False, 7, "extra")
    with pytest.raises(TypeError, match="multiple values for argument 'public_key'"):
        LangfuseConfig(KNOWN_PUBLIC, public_key=KNOWN_PUBLIC)


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("LANGFUSE_SAMPLE_RATE", "-0.1", "between 0 and 1"),
        ("LANGFUSE_SAMPLE_RATE", "abc", "valid number"),
        ("LANGFUSE_FLUSH_INTERVAL", "0", "above 0"),
        ("LANGFUSE_FLUSH_INTERVAL", "1e12", "at most 86400"),
        ("LANGFUSE_TIMEOUT", "nan", "above 0"),
        ("AUTOOPS_RETENTION_DAYS", "1000000000", "from 1 to 36500"),
        ("LANGFUSE_MAX_LATENCY_MS", "-5", "positive"),
        ("LANGFUSE_BUFFER_SIZE", "0", "positive"),
        ("LANGFUSE_TIMEOUT", "inf", "at most 86400"),
        ("LANGFUSE_MAX_LATENCY_MS", "inf", "positive finite"),
        ("LANGFUSE_ENVIRONMENT", "Production", "lowercase"),
        ("LANGFUSE_ENVIRONMENT", "langfuse-prod", "must not start with 'langfuse'"),
        ("LANGFUSE_HOST", "https://", "http(s) URL"),
        ("LANGFUSE_HOST", "https://user:pw@example.com", "credentials"),
        ("LANGFUSE_HOST", "http://langfuse.example.com", "unencrypted"),
        # httpx cannot read these ports (an internal error in every command), and urllib
        # wraps one past 65535 round to another port, where the keys were sent.
        ("LANGFUSE_HOST", "http://127.0.0.1:abc", "port from 1 to 65535"),
        ("LANGFUSE_HOST", "http://127.0.0.1:99929", "port from 1 to 65535"),
        ("LANGFUSE_HOST", "http://127.0.0.1:0", "port from 1 to 65535"),
        ("LANGFUSE_HOST", "http://127.0.0.1:1/a\x1bb", "control characters"),
        ("LANGFUSE_ENABLED", "maybe", "valid boolean"),
    ],
)
def test_invalid_values_are_rejected(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(variable, value)
    loaded = load_settings()
    assert not loaded.valid
    (problem,) = loaded.problems
    assert fragment in problem.message
    assert variable in problem.source


def test_plain_http_allowed_on_loopback_without_a_warning(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", KNOWN_PUBLIC)
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", KNOWN_SECRET)
    for host in ("http://127.0.0.1:3000", "http://localhost:3000/", "http://[::1]:3000"):
        monkeypatch.setenv("LANGFUSE_HOST", host)
        loaded = load_settings()
        assert loaded.valid, (host, loaded.problems)
        assert loaded.warnings == []
    assert loaded.langfuse is not None and loaded.langfuse.host == "http://[::1]:3000"


def test_plain_http_elsewhere_needs_explicit_permission(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANGFUSE_HOST", "http://langfuse.internal:3000")
    assert not load_settings().valid
    monkeypatch.setenv("AUTOOPS_ALLOW_INSECURE_HTTP", "true")
    assert load_settings().valid


def test_one_key_without_the_other_is_an_error(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", KNOWN_PUBLIC)
    (problem,) = load_settings().problems
    assert problem.setting == "langfuse.secret_key"
    assert "both keys" in problem.message


def test_base_url_alias_and_host_preference(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANGFUSE_BASE_URL", "https://eu.example.com")
    loaded = load_settings()
    assert loaded.langfuse is not None and loaded.langfuse.host == "https://eu.example.com"
    assert loaded.origin_of("langfuse.host").name == "LANGFUSE_BASE_URL"
    monkeypatch.setenv("LANGFUSE_HOST", "https://us.example.com")
    loaded = load_settings()
    assert loaded.langfuse is not None and loaded.langfuse.host == "https://us.example.com"


@pytest.mark.parametrize(
    ("written", "kept"),
    [
        ("HTTPS://Cloud.Langfuse.com/", "https://cloud.langfuse.com"),
        ("https://cloud.langfuse.com:443", "https://cloud.langfuse.com"),
        ("http://LOCALHOST:80/", "http://localhost"),
        ("http://127.0.0.1:3000//", "http://127.0.0.1:3000"),
        ("http://[::1]:3000/Langfuse/", "http://[::1]:3000/Langfuse"),
        ("https://h.example.com:8443", "https://h.example.com:8443"),
        ("https://host.example:0443", "https://host.example"),
        ("https://h.example.com:08443/Path/", "https://h.example.com:8443/Path"),
        ("https://host.example.", "https://host.example"),
        ("https://B\u00dcCHER.example", "https://xn--bcher-kva.example"),
        ("https://xn--bcher-kva.example", "https://xn--bcher-kva.example"),
        ("https://[FE80::1%25ETH0]:443/", "https://[fe80::1%25ETH0]"),  # the zone as written
    ],
)
def test_the_host_has_one_spelling_per_server(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, written: str, kept: str
) -> None:
    """The outbox keeps batches by host: a host spelled in another case, or with its
    default port, was another backlog, which the next run neither sent nor mentioned."""
    monkeypatch.setenv("LANGFUSE_HOST", written)
    loaded = load_settings()
    assert loaded.langfuse is not None and loaded.langfuse.host == kept


@pytest.mark.parametrize(
    "host",
    [
        "https://[::1]x",
        "https://[::1]]",
        "https://[nope]:3000",
        "https://h..example.com",
        "https://-bad.example.com",
        "https://xn--zz.com",
        "https://\u2603.example",
        "https://" + "a" * 70 + ".com",
    ],
)
def test_a_host_the_http_client_cannot_reach_is_a_configuration_problem(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    """urlsplit let these through: `config validate` said valid, and every network command
    then failed with an internal error (InvalidURL, IDNAError, UnicodeError)."""
    monkeypatch.setenv("LANGFUSE_HOST", host)
    (problem,) = load_settings().problems
    assert problem.setting == "langfuse.host"


@pytest.mark.parametrize("key", ["public", "secret"])
@pytest.mark.parametrize("tail", ["\u00e4\u00f6\u00fc", "abc\nX-Evil: 1", "a b"])
def test_a_key_that_cannot_go_into_a_header_is_a_configuration_problem(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, key: str, tail: str
) -> None:
    """Accepted, it failed the first request with an internal error (UnicodeEncodeError)
    or an illegal header blamed on the network (exit 4)."""
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", "pk-lf-" + (tail if key == "public" else "abc"))
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-lf-" + (tail if key == "secret" else "abc1"))
    problems = load_settings().problems
    assert [p.setting for p in problems] == [f"langfuse.{key}_key"]
    assert "printable ASCII" in problems[0].message
    assert tail not in problems[0].line()


def test_model_copy_checks_what_it_changes() -> None:
    """The README's stand-in for dataclasses.replace took the values as given: a secret key
    stayed plain text (shown in full by repr, and no key for the client), a sample rate of
    5 passed."""
    config = LangfuseConfig(KNOWN_PUBLIC, "sk-lf-old-0123456789", "http://127.0.0.1:9")
    copied = config.model_copy(update={"secret_key": "sk-lf-new-0123456789"})
    assert copied.secret_key is not None
    assert copied.secret_key.get_secret_value() == "sk-lf-new-0123456789"
    assert "sk-lf-new" not in repr(copied)
    assert copied.host == config.host and copied.public_key == KNOWN_PUBLIC
    with pytest.raises(ValueError, match="must be between 0 and 1"):
        config.model_copy(update={"sample_rate": 5})
    assert config.model_copy().sample_rate == config.sample_rate


def test_precedence_flag_env_dotenv_project_user_default(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_file = Path(os.environ["XDG_CONFIG_HOME"]) / "autoops" / "config.toml"
    user_file.parent.mkdir(parents=True)
    user_file.write_text(
        "[langfuse]\nsample_rate = 0.1\nrelease = 'u'\nenvironment = 'user'\n"
        "debug = true\nflush_interval = 9\n"
    )
    (workdir / "autoops.toml").write_text(
        "[langfuse]\nsample_rate = 0.2\nrelease = 'p'\nenvironment = 'project'\ndebug = false\n"
    )
    (workdir / ".env").write_text("LANGFUSE_SAMPLE_RATE=0.3\nLANGFUSE_RELEASE=d\n")
    monkeypatch.setenv("LANGFUSE_SAMPLE_RATE", "0.4")
    loaded = load_settings(flags={"langfuse.sample_rate": (0.5, "--sample-rate")})
    config, _ = loaded.require()
    assert config.sample_rate == 0.5
    assert loaded.origin_of("langfuse.sample_rate").describe() == "flag --sample-rate"
    assert config.release == "d"
    assert loaded.origin_of("langfuse.release").kind == "dotenv"
    assert config.environment == "project"
    assert loaded.origin_of("langfuse.environment").describe() == (
        f"{workdir / 'autoops.toml'} (key langfuse.environment)"
    )
    assert config.debug is False
    assert config.flush_interval == 9
    assert loaded.origin_of("langfuse.flush_interval").path == user_file
    assert loaded.origin_of("langfuse.timeout").describe() == "default"
    # Without the flag, the environment wins over .env.
    assert load_settings().require()[0].sample_rate == 0.4


def test_project_file_found_walking_up(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (workdir / "autoops.toml").write_text("[langfuse]\nenvironment = 'staging'\n")
    nested = workdir / "a" / "b"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    loaded = load_settings()
    assert loaded.files.project == workdir / "autoops.toml"
    assert loaded.require()[0].environment == "staging"


def test_explicit_config_file_and_missing_one(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = workdir / "other.toml"
    other.write_text("[masking]\nmask_financial_data = true\n")
    (workdir / "autoops.toml").write_text("[masking]\nmask_financial_data = false\n")
    assert load_settings(config_file=other).require()[1].mask_financial_data is True
    monkeypatch.setenv("AUTOOPS_CONFIG", str(other))
    assert load_settings().require()[1].mask_financial_data is True
    with pytest.raises(LocalFileError, match="does not exist"):
        load_settings(config_file=workdir / "missing.toml")


def test_a_toml_boolean_is_not_taken_for_a_number(workdir: Path) -> None:
    """``sample_rate = false`` passed as 0 and dropped every trace; the variable is refused."""
    (workdir / "autoops.toml").write_text(
        "[langfuse]\nsample_rate = false\n[masking]\nmask_pii = false\n"
    )
    loaded = load_settings()
    found = problems_by_setting(loaded)
    assert list(found) == ["langfuse.sample_rate"]
    assert "must be a number, got false" in found["langfuse.sample_rate"]


def test_file_problems_name_file_and_key(workdir: Path) -> None:
    path = workdir / "autoops.toml"
    path.write_text(
        "[langfuse]\nsampel_rate = 0.5\nsample_rate = 2\n[masking]\nretention_days = 0\n[weird]\nx = 1\n"
    )
    loaded = load_settings()
    found = problems_by_setting(loaded)
    assert "unknown setting" in found["langfuse.sampel_rate"]
    assert f"{path} (key langfuse.sample_rate)" in found["langfuse.sample_rate"]
    assert "from 1 to 36500" in found["masking.retention_days"]
    assert [w.setting for w in loaded.warnings] == ["weird"]


def test_invalid_toml_names_file_and_line(workdir: Path) -> None:
    path = workdir / "autoops.toml"
    path.write_text("[langfuse]\nhost = \n")
    (problem,) = load_settings().problems
    assert problem.source == str(path)
    assert "line 2" in problem.message


def test_secret_in_readable_project_file_warns(workdir: Path) -> None:
    path = workdir / "autoops.toml"
    path.write_text(f"[langfuse]\npublic_key = '{KNOWN_PUBLIC}'\nsecret_key = '{KNOWN_SECRET}'\n")
    path.chmod(0o644)
    loaded = load_settings()
    assert loaded.valid
    (warning,) = loaded.warnings
    assert warning.setting == "langfuse.secret_key"
    assert "chmod 600" in warning.message
    assert KNOWN_SECRET not in warning.line()
    path.chmod(0o600)
    assert load_settings().warnings == []


def test_a_secret_left_in_an_open_file_warns_when_another_source_overrides_it(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the file the key was taken from was checked: a key in a world-readable
    autoops.toml, overridden by the environment or .env, leaked without a word."""
    project = workdir / "autoops.toml"
    project.write_text(
        f"[langfuse]\npublic_key = '{KNOWN_PUBLIC}'\nsecret_key = 'sk-lf-file-0123456789'\n"
    )
    project.chmod(0o644)
    dotenv = workdir / ".env"
    dotenv.write_text("LANGFUSE_SECRET_KEY=sk-lf-dotenv-0123456789\n")
    dotenv.chmod(0o620)
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", KNOWN_SECRET)
    warnings = {w.source.split(" (")[0]: w.message for w in load_settings().warnings}
    assert set(warnings) == {str(project), str(dotenv)}, warnings
    assert "readable by others (mode 644)" in warnings[str(project)]
    assert "or move the key to the environment or .env" in warnings[str(project)]
    # Group-writable only: said as such; and from .env, the environment is the way out.
    assert warnings[str(dotenv)].startswith("file holding the secret key is writable")
    assert warnings[str(dotenv)].endswith("or move the key to the environment")
    # Execute bits let no one read it: no warning (it said "writable" for mode 610).
    project.chmod(0o611)
    dotenv.chmod(0o600)
    assert load_settings().warnings == []


def test_a_bad_value_another_source_overrides_is_still_reported(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """config validate said valid: the committed file broke the first run without the
    environment variables that hid its values."""
    (workdir / ".env").write_text("LANGFUSE_SAMPLE_RATE=abc\n")
    (workdir / "autoops.toml").write_text("[langfuse]\nmax_retries = -4\n")
    monkeypatch.setenv("LANGFUSE_SAMPLE_RATE", "0.5")
    monkeypatch.setenv("LANGFUSE_MAX_RETRIES", "2")
    loaded = load_settings()
    assert loaded.valid and loaded.require()[0].max_retries == 2
    hidden = {w.setting: w for w in loaded.warnings}
    assert set(hidden) == {"langfuse.sample_rate", "langfuse.max_retries"}
    assert hidden["langfuse.max_retries"].source.startswith(str(workdir / "autoops.toml"))
    assert "must be a positive integer, got -4" in hidden["langfuse.max_retries"].message
    assert "overridden by environment variable LANGFUSE_MAX_RETRIES" in (
        hidden["langfuse.max_retries"].message
    )
    assert hidden["langfuse.sample_rate"].source.startswith(str(workdir / ".env"))


def test_plain_constructor_reads_the_same_layers(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workdir / "autoops.toml").write_text("[langfuse]\nsample_rate = 0.2\nrelease = 'r1'\n")
    monkeypatch.setenv("LANGFUSE_SAMPLE_RATE", "0.7")
    config = LangfuseConfig()
    assert (config.sample_rate, config.release) == (0.7, "r1")
    assert LangfuseConfig(sample_rate=0.1).sample_rate == 0.1
    assert DataMaskingConfig().retention_days == 30


def test_validation_error_never_shows_a_secret(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad_secret = "not-a-key-but-SECRET-VALUE"
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", bad_secret)
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", KNOWN_PUBLIC)
    with pytest.raises(ValidationError) as info:
        LangfuseConfig()
    assert bad_secret not in str(info.value)
    (problem,) = load_settings().problems
    assert bad_secret not in problem.line()
    assert problem.setting == "langfuse.secret_key"


def test_mask_secret_keeps_only_the_last_four() -> None:
    assert mask_secret(KNOWN_SECRET) == "sk-lf-****cdef"
    assert mask_secret("sk-lf-short") == "sk-lf-****"


def test_an_unpickled_configuration_masks_its_keys_in_every_form(tmp_path: Path) -> None:
    """A replay worker gets its parent's settings pickled: validation, where the keys are
    registered for masking, does not run again, and the workers wrote the secret key's hex
    and base64 forms whole (a fresh process, as a worker is)."""
    import pickle
    import subprocess
    import sys

    secret = "sk-lf-unpickled0123456789"
    config = LangfuseConfig(
        public_key="pk-lf-unpickled01", secret_key=secret, host="https://langfuse.example"
    )
    script = (
        "import pickle, sys\n"
        "from config.redaction import redact_secrets\n"
        "pickle.loads(sys.stdin.buffer.read())\n"
        f"print(redact_secrets({secret.encode().hex()!r}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], input=pickle.dumps(config), capture_output=True,
        timeout=60, check=True,
    )  # fmt: skip
    assert done.stdout.strip() == b"****"
