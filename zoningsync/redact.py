"""The one redactor every path out of zoningsync goes through.

Secrets reach zoningsync as access tokens (from `token_env`), as passwords in
URLs, and echoed back by servers in their error pages. Every text a human or a
log collector will read (log lines, exception messages, `runs.error`,
`runs.warnings`, the CLI's answers) passes `redact()` first, so no single path
can forget one form: a token named anywhere once is hidden everywhere after.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

MASK = "***"
# Shorter values would mask ordinary words; real tokens are far longer.
MIN_SECRET_CHARS = 6
# Request parameters whose values are secrets wherever else they may be echoed.
SECRET_PARAMS = frozenset({"token", "access_token", "api_key", "apikey", "password", "passwd",
                           "secret", "sig", "signature"})

_PARAM = re.compile(
    r"(?i)\b((?:token|access_token|api_key|apikey|key|password|passwd|secret|sig|signature)"
    r"=)[^&\s#'\"<>]+"
)
_JSON_PARAM = re.compile(
    r"(?i)(\"(?:token|access_token|api_key|apikey|password|secret)\"\s*:\s*\")[^\"]*"
)
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/@\s:]*):([^/@\s]*)@")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+")

_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Hide `value` wherever it appears from now on (tokens read from the environment)."""
    if value and len(value) >= MIN_SECRET_CHARS:
        with _lock:
            _secrets.add(value)


def register_secret_params(pairs: Iterable[tuple[str, str]]) -> None:
    """Register the values of the secret-named parameters among `pairs` (a query, a form)."""
    for name, value in pairs:
        if name.lower() in SECRET_PARAMS:
            register_secret(value)


def redact(text: str) -> str:
    """`text` with every known secret and every secret-shaped parameter masked."""
    if not text:
        return text
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    text = _URL_CREDENTIALS.sub(lambda m: f"{m[1]}{m[2]}:{MASK}@", text)
    text = _PARAM.sub(lambda m: f"{m[1]}{MASK}", text)
    text = _JSON_PARAM.sub(lambda m: f"{m[1]}{MASK}", text)
    return _BEARER.sub(lambda m: f"{m[1]}{MASK}", text)
