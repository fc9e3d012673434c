"""Scrubbing secret keys out of any text before it is shown or logged; debug logging that does."""

from __future__ import annotations

import logging
import re

SECRET_KEY_PREFIX = "sk-lf-"


def mask_secret(value: str) -> str:
    """Mask a secret key for display: ``sk-lf-****<last 4>``."""
    tail = value[-4:] if len(value) >= 12 else ""
    prefix = SECRET_KEY_PREFIX if value.startswith(SECRET_KEY_PREFIX) else ""
    return f"{prefix}****{tail}"


# Langfuse secret keys; also catches one embedded in a URL, header or exception message,
# and one a peer echoes in upper case. Its hyphens may be percent-encoded or JSON-escaped
# (``\u002d``); what follows runs on through base64's and URLs' characters and their escapes
# (JSON's ``\/`` too), so a key of another alphabet (``sk-lf-my.project/key+1``) is masked
# whole, not up to its first ``/`` or ``.``; ``sk-lf-...`` (a placeholder in hints and
# help) is no key.
SECRET_KEY_PATTERN = re.compile(
    r"(?i)sk(?:-|%2d|\\u002d)lf(?:-|%2d|\\u002d)(?!\.\.\.)"
    r"(?:[a-z0-9_+/=.-]|%[0-9a-f]{2}|\\u00[0-9a-f]{2}|\\/)+"
)
# HTTP Basic credentials carry the secret base64-encoded.
BASIC_AUTH_PATTERN = re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?basic\s+)[A-Za-z0-9+/=]+")


# Basic credentials on their own, as a server may echo its Authorization header: base64 of
# 16 characters or more with a digit or a +/ in it (so that "Basic troubleshooting" stays).
BASIC_CREDENTIALS_PATTERN = re.compile(
    r"(?i)\b(basic\s+)(?=[A-Za-z]*[0-9+/])[A-Za-z0-9+/]{16,}={0,2}"
)
# The credentials this process was configured with, in every form they travel in: a secret
# that is not shaped like sk-lf-..., ``public:secret``, and its base64 (the Basic header).
# Each form maps to what replaces it (the secret alone to its usual mask).
_KNOWN_SECRETS: dict[str, str] = {}


def register_credentials(public_key: str, secret_key: str) -> None:
    """Mask these credentials in everything ``redact_secrets`` sees from now on."""
    import base64
    from urllib.parse import quote

    if len(secret_key) < 8:  # a shorter "secret" would mask ordinary words
        return
    pair = f"{public_key}:{secret_key}"
    forms = {
        pair: "****",
        base64.b64encode(pair.encode()).decode(): "****",
        base64.b64encode(secret_key.encode()).decode(): "****",
        secret_key.encode().hex(): "****",  # hex-encoded (a digest's neighbour, a dump)
        secret_key: mask_secret(secret_key),
    }
    # As a peer may echo them: in upper or lower case, percent-encoded (every character
    # that is not a letter or digit, as some encoders do, or every character), JSON-escaped.
    for form, mask in list(forms.items()):
        forms.setdefault(form.upper(), mask)
        forms.setdefault(form.lower(), mask)
        for hex_form in ("{:02X}", "{:02x}"):
            forms.setdefault(
                "".join(c if c.isalnum() else "%" + hex_form.format(ord(c)) for c in form), mask
            )
            forms.setdefault("".join("%" + hex_form.format(ord(c)) for c in form), mask)
        forms.setdefault(quote(form, safe=""), mask)  # as URLs encode it (".", "_", "~" kept)
        forms.setdefault("".join(c if c.isalnum() else f"\\u{ord(c):04x}" for c in form), mask)
    for form, mask in list(forms.items()):  # JSON's optional escape of /, in every case
        forms.setdefault(form.replace("/", "\\/"), mask)
    _KNOWN_SECRETS.update(forms)


def contains_secret(text: str) -> bool:
    """Whether ``redact_secrets`` could change ``text`` by a key (a quick test)."""
    # Any case (a peer may echo a key in upper or mixed case), or percent-encoded.
    lowered = text.lower()
    return (
        SECRET_KEY_PREFIX in lowered
        or "%2" in text
        or "\\u002d" in lowered
        or any(secret in text for secret in _KNOWN_SECRETS)
    )


def redact_secrets(text: str) -> str:
    """Replace every secret key (and Basic auth header value) in ``text`` with its mask."""
    for secret in sorted(_KNOWN_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, _KNOWN_SECRETS[secret])
    text = SECRET_KEY_PATTERN.sub(lambda m: mask_secret(m.group(0)), text)
    text = BASIC_AUTH_PATTERN.sub(r"\1****", text)
    return BASIC_CREDENTIALS_PATTERN.sub(r"\1****", text)


class RedactingFilter(logging.Filter):
    """A logging filter that scrubs secrets from every record it passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Render the message once, redacted, so later formatting cannot reintroduce it."""
        try:
            message = record.getMessage()
        except Exception:  # a broken format string in a third-party log call
            message = str(record.msg)
        record.msg = redact_secrets(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            # Rendered now (formatters reuse exc_text), so the traceback is redacted too.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_secrets(record.exc_text)
        return True


def core_logger(name: str) -> logging.Logger:
    """The core's logger ``name``, secrets redacted from every record it logs: whatever
    handlers the application routes it to, or none (Python's last-resort handler prints to
    stderr what it is given, a key quoted by an application's exception too)."""
    logger = logging.getLogger(name)
    if not any(isinstance(existing, RedactingFilter) for existing in logger.filters):
        logger.addFilter(RedactingFilter())
    return logger


def enable_debug_logging() -> None:
    """``LANGFUSE_DEBUG``: the core's loggers at debug level on stderr, secrets redacted.

    Only the level, when the application has routed the ``autoops`` loggers (or the root
    logger) itself.
    """
    import sys

    root = logging.getLogger("autoops")
    if root.handlers or logging.getLogger().handlers:
        root.setLevel(logging.DEBUG)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
