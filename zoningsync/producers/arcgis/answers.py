"""What counts as a usable ArcGIS answer.

ArcGIS servers answer errors as JSON with HTTP 200 (`{"error": {"code": 500}}`),
token problems as codes 498/499, and a refused `where` clause as code 400. These
checks run on every parsed answer: transient errors are retried by the fetcher,
a refused query or a rejected token is not. The error object is the server's
own words: any member may be missing or of any type, and its text is cut short
(the fetcher redacts it, since servers echo tokens in it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zoningsync.errors import TokenRejected
from zoningsync.http import BadAnswer

REFUSED_HINTS = ("where", "invalid query", "parameter", "sql", "syntax")
ERROR_TEXT_CHARS = 300
# What the expected member must hold (`objectIds` is null when nothing matches).
SHAPES: dict[str, type | tuple[type, ...]] = {
    "features": list, "objectIds": (list, type(None)), "count": int, "fields": list,
}


def _describe(error: dict[str, Any]) -> str:
    details = error.get("details") or []
    if not isinstance(details, list):
        details = [details]
    text = _short(error.get("message") or "error")
    if details:
        text += " (" + "; ".join(_short(d) for d in details[:5]) + ")"
    return f"ArcGIS error {_short(error.get('code', '?'))}: {text}"


def _short(value: Any) -> str:
    """A member of the server's error as short text; a nested value shows only its type."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, int | float) or value is None:
        text = str(value)
    else:
        text = type(value).__name__
    return text[:ERROR_TEXT_CHARS]


def answer_check(expect: str, token_env: str | None) -> Callable[[Any], None]:
    """A `check` for the fetcher: the answer must be an object holding `expect`.

    An empty `expect` accepts any object that is not an error.
    """

    def check(answer: Any) -> None:
        if not isinstance(answer, dict):
            raise BadAnswer(f"expected a JSON object, got {type(answer).__name__}")
        error = answer.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            if code in (498, 499):
                where = (f"check the token in the environment variable {token_env}"
                         if token_env else "the layer needs a token: set token_env in the "
                         "feed's source file")
                raise TokenRejected(f"{_describe(error)}; {where}")
            described = _describe(error).lower()
            if code == 400 and any(hint in described for hint in REFUSED_HINTS):
                raise BadAnswer(_describe(error), retryable=False)
            raise BadAnswer(_describe(error))
        if expect and expect not in answer:
            raise BadAnswer(f"the answer has no '{expect}'")
        value = answer.get(expect)
        if expect in SHAPES and (not isinstance(value, SHAPES[expect]) or type(value) is bool):
            raise BadAnswer(f"the answer's '{expect}' is {type(value).__name__}")

    return check
