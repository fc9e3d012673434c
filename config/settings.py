"""The integration's settings: ``LangfuseConfig`` and ``DataMaskingConfig``.

Both are pydantic-settings models. Used directly (``LangfuseConfig()``) they read the same
layered sources as the CLI, highest first: keyword arguments, the environment, ``.env`` in
the working directory, the project file ``autoops.toml``, the user file, the defaults
(see ``config.settings_layers``). The CLI goes through ``config.settings_sources.load_settings``,
which also records where each value came from and reports every problem at once.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any, ClassVar, Self
from urllib.parse import SplitResult, urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from config.limits import MAX_RETENTION_DAYS, MAX_SECONDS
from config.redaction import mask_secret, register_credentials
from config.settings_layers import LayeredSettingsSource

DEFAULT_HOST = "https://cloud.langfuse.com"
PUBLIC_KEY_PREFIX = "pk-lf-"
SECRET_KEY_PREFIX = "sk-lf-"
# Langfuse's rule for environment names (API-NOTES.md section 9).
ENVIRONMENT_PATTERN = re.compile(r"^[a-z0-9_-]+$")
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def _is_header_text(value: str) -> bool:
    """Visible ASCII only: what an HTTP header (and Basic credentials) can carry."""
    return all(0x21 <= ord(char) <= 0x7E for char in value)


# A host name's labels as DNS and the HTTP client take them (letters, digits, hyphens; the
# underscore of container names too), each 1 to 63 characters.
_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")


def _address_problem(netloc: str, hostname: str) -> str | None:
    """Why the URL's address cannot be connected to, or None. ``urlsplit`` lets through what
    the HTTP client then failed on with an internal error: text after an IPv6 address's
    ``]``, empty or over-long labels, names IDNA cannot encode."""
    if netloc.startswith("["):
        address, _, rest = netloc[1:].partition("]")
        try:
            ipaddress.IPv6Address(address.split("%", 1)[0])
        except ValueError:
            return f"has no valid IPv6 address in [{address}]"
        if rest and not re.fullmatch(r":\d+", rest):
            return "must have only a :port after the IPv6 address's ']'"
        return None
    name = hostname.removesuffix(".")  # a fully qualified name may end with a dot
    if not name.isascii():
        try:
            import idna

            name = idna.encode(name, uts46=True).decode("ascii")
        except (ImportError, UnicodeError, ValueError):
            return f"has a host name that cannot be encoded for DNS ({hostname})"
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        return f"has an invalid host name ({hostname}): labels of 1 to 63 letters, digits or '-'"
    if any(label.lower().startswith("xn--") for label in labels):
        try:
            import idna

            idna.decode(name)
        except (ImportError, UnicodeError, ValueError):
            return f"has an invalid IDNA host name ({hostname})"
    return None


def canonical_host(url: str) -> str:
    """``url`` spelled as LANGFUSE_HOST is kept (``_one_spelling``); as written (without a
    trailing slash) when it is no http(s) URL with a host."""
    written = url.strip()
    try:
        parts = urlsplit(written)
        if parts.scheme.lower() in ("http", "https") and parts.hostname:
            return _one_spelling(parts)
    except (ValueError, UnicodeError):  # a bad port, a name IDNA refuses
        pass
    return written.rstrip("/")


def _one_spelling(parts: SplitResult) -> str:
    """The URL as the outbox keys its batches: one spelling per server. HTTP://Host:80/
    kept batches that http://host never sent. The scheme and the name in lower case (an
    IPv6 zone, an interface name, kept as written), IDNA-encoded, without a trailing dot;
    the port as a number, left out when it is the scheme's; no trailing slash."""
    scheme = parts.scheme.lower()
    host = parts.netloc.rpartition("@")[2]
    if host.startswith("["):
        address, _, zone = host[1 : host.index("]")].partition("%")
        name = f"[{address.lower()}{'%' + zone if zone else ''}]"
    else:
        name = (parts.hostname or "").removesuffix(".")
        if not name.isascii():
            import idna

            name = idna.encode(name, uts46=True).decode("ascii")
    port = parts.port
    shown_port = "" if port is None or port == {"http": 80, "https": 443}[scheme] else f":{port}"
    return f"{scheme}://{name}{shown_port}{parts.path}".rstrip("/")


def is_loopback_host(hostname: str | None) -> bool:
    """True for ``localhost`` and addresses in 127.0.0.0/8 or ``::1``."""
    if not hostname:
        return False
    name = hostname.strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class LayeredSettings(BaseSettings):
    """Base of the settings models: keyword arguments first, then the layered sources.

    ``toml_section`` names the table of ``autoops.toml`` the model reads.
    """

    toml_section: ClassVar[str] = ""
    # The guide declares the models as dataclasses: their fields may be given positionally,
    # in the guide's order (pydantic would take them for its own private parameters).
    positional_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *args: Any, **values: Any) -> None:
        name = type(self).__name__
        if len(args) > len(self.positional_fields):
            raise TypeError(
                f"{name}() takes at most {len(self.positional_fields)} positional arguments "
                f"({len(args)} given)"
            )
        for field_name, value in zip(self.positional_fields, args, strict=False):
            if field_name in values:
                raise TypeError(f"{name}() got multiple values for argument {field_name!r}")
            values[field_name] = value
        super().__init__(**values)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy, with ``update``'s values checked as the constructor checks them (the
        README's stand-in for ``dataclasses.replace``): pydantic's copy took them as given,
        a secret key as plain text (shown in full, and no key for the client) or a
        sample rate of 5. Nothing is read from the environment or the files."""
        if not update:
            return super().model_copy(deep=deep)
        values = {name: getattr(self, name) for name in type(self).model_fields}
        return self.model_validate({**values, **update})

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Every model, so the files are checked as a whole; defined below, read at call time.
        return (init_settings, LayeredSettingsSource(settings_cls, SETTINGS_MODELS))


class LangfuseConfig(LayeredSettings):
    """Connection, tracing and performance settings of the Langfuse integration.

    No keys at all is valid: it means local mode (traces go to the embedded store).
    """

    model_config = SettingsConfigDict(
        env_prefix="LANGFUSE_",
        populate_by_name=True,
        extra="forbid",
        validate_default=True,
        hide_input_in_errors=True,  # a rejected secret key must not reach a traceback
    )
    toml_section: ClassVar[str] = "langfuse"
    positional_fields: ClassVar[tuple[str, ...]] = (
        "public_key", "secret_key", "host", "enabled", "sample_rate", "debug", "flush_interval",
        "max_retries", "max_latency_ms", "enable_sampling", "buffer_size", "environment",
        "release",
    )  # fmt: skip

    public_key: str | None = Field(
        default=None,
        description="Project public key (pk-lf-...). With the secret key, selects langfuse mode.",
    )
    secret_key: SecretStr | None = Field(
        default=None, description="Project secret key (sk-lf-...). Never printed."
    )
    host: str = Field(
        default=DEFAULT_HOST,
        validation_alias=AliasChoices("host", "LANGFUSE_HOST", "LANGFUSE_BASE_URL"),
        description="Langfuse base URL; LANGFUSE_BASE_URL (the SDK's newer name) is accepted too.",
    )
    enabled: bool = Field(default=True, description="Master switch of the integration.")
    tracing_enabled: bool = Field(
        default=True, description="Send traces; off keeps the integration up without tracing."
    )
    sample_rate: float = Field(default=1.0, description="Fraction of traces kept, 0 to 1.")
    enable_sampling: bool = Field(
        default=True, description="Apply sampling; false keeps every trace."
    )
    debug: bool = Field(default=False, description="Debug logging of the integration.")
    flush_interval: float = Field(
        default=5.0, description="Seconds between background flushes of buffered spans."
    )
    environment: str = Field(
        default="development",
        validation_alias=AliasChoices(
            "environment", "LANGFUSE_ENVIRONMENT", "LANGFUSE_TRACING_ENVIRONMENT"
        ),
        description="Langfuse environment: lowercase a-z, 0-9, _ and -, not starting with 'langfuse'.",
    )
    release: str | None = Field(default="1.0.0", description="Release tag recorded on every trace.")
    max_latency_ms: float = Field(
        default=100.0, description="Latency budget tracing may add to an agent operation (ms)."
    )
    buffer_size: int = Field(
        default=1000,
        description="Spans and scores that may wait in memory, and in the outbox while "
        "Langfuse takes batches; beyond that the agents wait.",
    )
    max_retries: int = Field(default=3, description="Delivery retries of one batch.")
    timeout: float = Field(default=5.0, description="HTTP timeout of one request (seconds).")
    flush_deadline: float = Field(
        default=2.0,
        validation_alias=AliasChoices("flush_deadline", "AUTOOPS_FLUSH_DEADLINE"),
        description="Seconds without progress after which delivery at exit gives up; "
        "the rest stays in the outbox.",
    )
    allow_insecure_http: bool = Field(
        default=False,
        validation_alias=AliasChoices("allow_insecure_http", "AUTOOPS_ALLOW_INSECURE_HTTP"),
        description="Allow plain http to a host that is not loopback.",
    )

    @field_validator("public_key")
    @classmethod
    def _check_public_key(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(PUBLIC_KEY_PREFIX) or len(value) <= len(PUBLIC_KEY_PREFIX):
            raise ValueError(f"must look like {PUBLIC_KEY_PREFIX}...")
        if not _is_header_text(value):
            raise ValueError("must be printable ASCII without spaces (it goes into HTTP headers)")
        return value

    @field_validator("secret_key")
    @classmethod
    def _check_secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or value.get_secret_value() == "":
            return None
        secret = value.get_secret_value()
        if not secret.startswith(SECRET_KEY_PREFIX) or len(secret) <= len(SECRET_KEY_PREFIX):
            # The value itself is never echoed: it is a secret.
            raise ValueError(f"must look like {SECRET_KEY_PREFIX}...")
        if not _is_header_text(secret):
            raise ValueError("must be printable ASCII without spaces (it goes into HTTP headers)")
        return value

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        value = value.strip()
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as https://cloud.langfuse.com")
        if parts.username or parts.password:
            raise ValueError("must not carry credentials; use the key settings")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query or fragment")
        # The port as httpx reads it: one it cannot (":abc"), or past 65535 (which urllib
        # wraps round to another port), failed every command with an internal error.
        try:
            port = parts.port
        except ValueError:
            port = 0
        if port == 0:
            raise ValueError("must have a port from 1 to 65535 (or none)")
        if any(ord(char) < 0x20 or ord(char) == 0x7F or char.isspace() for char in value):
            raise ValueError("must not contain spaces or control characters")
        problem = _address_problem(parts.netloc.rpartition("@")[2], parts.hostname)
        if problem is not None:
            raise ValueError(problem)
        return _one_spelling(parts)

    @field_validator("sample_rate")
    @classmethod
    def _check_sample_rate(cls, value: float) -> float:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"must be between 0 and 1, got {value:g}")
        return value + 0.0  # -0.0 is 0 (it was shown as "-0", "about -0 % kept")

    @field_validator("max_latency_ms")
    @classmethod
    def _check_positive_float(cls, value: float) -> float:
        if not value > 0 or value == float("inf"):
            raise ValueError(f"must be a positive finite number, got {value:g}")
        return value

    @field_validator("flush_interval", "timeout", "flush_deadline")
    @classmethod
    def _check_seconds(cls, value: float) -> float:
        if not 0 < value <= MAX_SECONDS:
            raise ValueError(
                f"must be a number of seconds above 0 and at most {MAX_SECONDS} (a day), "
                f"got {value:g}"
            )
        return value

    @field_validator("buffer_size", "max_retries")
    @classmethod
    def _check_positive_int(cls, value: int) -> int:
        if value <= 0:
            raise ValueError(f"must be a positive integer, got {value}")
        return value

    @field_validator("environment")
    @classmethod
    def _check_environment(cls, value: str) -> str:
        if not ENVIRONMENT_PATTERN.match(value) or len(value) > 40:
            raise ValueError("must be lowercase letters, digits, '_' or '-' (at most 40)")
        if value.startswith("langfuse"):
            raise ValueError("must not start with 'langfuse' (reserved by Langfuse)")
        return value

    @model_validator(mode="after")
    def _check_combination(self) -> LangfuseConfig:
        if (
            self.uses_plain_http
            and not is_loopback_host(self.hostname)
            and not self.allow_insecure_http
        ):
            raise ValueError(
                f"host: plain http to {self.hostname} would send the keys unencrypted; "
                "use https, or set AUTOOPS_ALLOW_INSECURE_HTTP=true"
            )
        if (self.public_key is None) != (self.secret_key is None):
            missing = "secret_key" if self.secret_key is None else "public_key"
            raise ValueError(
                f"{missing}: both keys are needed for langfuse mode, or neither for local mode"
            )
        if self.public_key is not None and self.secret_key is not None:
            # Masked wherever they may show up again, in any form: a server may echo them.
            register_credentials(self.public_key, self.secret_key.get_secret_value())
        return self

    def __setstate__(self, state: dict[Any, Any]) -> None:
        """Unpickled (a replay worker's settings, sent by its parent): validation does not run
        again, and it is where the keys are registered for masking; a worker wrote the key's
        hex and base64 forms whole."""
        super().__setstate__(state)
        if self.public_key is not None and self.secret_key is not None:
            register_credentials(self.public_key, self.secret_key.get_secret_value())

    @property
    def hostname(self) -> str | None:
        """The host part of ``host``."""
        return urlsplit(self.host).hostname

    @property
    def uses_plain_http(self) -> bool:
        """True when ``host`` is ``http://``."""
        return self.host.startswith("http://")

    @property
    def has_keys(self) -> bool:
        """True when both keys are configured."""
        return self.public_key is not None and self.secret_key is not None

    @property
    def mode(self) -> str:
        """``langfuse`` with keys and tracing on; else ``local`` (the embedded store)."""
        if self.has_keys and self.enabled and self.tracing_enabled:
            return "langfuse"
        return "local"

    @property
    def effective_sample_rate(self) -> float:
        """The rate the core applies: 1.0 when sampling is off."""
        return self.sample_rate if self.enable_sampling else 1.0

    def masked_secret_key(self) -> str | None:
        """The secret key as ``sk-lf-****<last 4>``, or None."""
        return mask_secret(self.secret_key.get_secret_value()) if self.secret_key else None


class DataMaskingConfig(LayeredSettings):
    """What is masked before any data leaves the process, and how long the store keeps it."""

    model_config = SettingsConfigDict(
        env_prefix="AUTOOPS_",
        populate_by_name=True,
        extra="forbid",
        validate_default=True,
        hide_input_in_errors=True,
    )
    toml_section: ClassVar[str] = "masking"
    positional_fields: ClassVar[tuple[str, ...]] = (
        "mask_pii", "mask_financial_data", "mask_customer_data", "retention_days",
    )  # fmt: skip

    mask_pii: bool = Field(
        default=True, description="Mask e-mail addresses, phone and card numbers."
    )
    mask_financial_data: bool = Field(
        default=True, description="Mask money fields (cost, margin, revenue; prices stay)."
    )
    mask_customer_data: bool = Field(default=True, description="Mask customer identifiers.")
    retention_days: int = Field(default=30, description="Days the local store keeps traces.")

    @field_validator("retention_days")
    @classmethod
    def _check_retention(cls, value: int) -> int:
        if not 0 < value <= MAX_RETENTION_DAYS:
            raise ValueError(
                f"must be a whole number of days from 1 to {MAX_RETENTION_DAYS}, got {value}"
            )
        return value


SETTINGS_MODELS: tuple[type[LayeredSettings], ...] = (LangfuseConfig, DataMaskingConfig)


def field_type_name(model: type[BaseSettings], field: str) -> str:
    """A short human name of a field's type, for documentation."""
    annotation: Any = model.model_fields[field].annotation
    text = getattr(annotation, "__name__", None) or str(annotation)
    return text.replace("typing.", "").replace("pydantic.types.", "")
