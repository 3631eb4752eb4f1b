"""The shapes of outside input the server accepts: whole numbers, texts, request heads.

Every number a client sends ends up in SQLite (an id, a seq, a limit), whose integers are signed
64-bit: a larger one raises OverflowError deep in the store. Every text is shown on a line-side
screen and stored: control characters (NUL, ESC) and bidi controls (a right-to-left override makes
"OK 12.5" read as something else) have no business there, and a lone surrogate cannot even be
encoded to UTF-8. These checks run where input enters (protocol.py, http.py, ws.py), so what is
refused is refused with a clear message and nothing further down ever sees it.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from gateway.core.characters import unsafe_character
from gateway.core.model import INT64_MAX

_DIGITS = re.compile(r"[0-9]{1,19}")  # ASCII only: str.isdigit() also accepts '²' and '١'
# Bidi controls (embedding, override, isolate, marks): they reorder what a screen shows.
# Request headers the server reads as one value; a request carrying two of one is ambiguous
# (which Host does the Origin check compare with?) and is refused with 400.
SINGLE_HEADERS = ("Host", "Origin", "Authorization", "Content-Type", "If-None-Match", "User-Agent",
                  "X-Forwarded-For")
MAX_QUERY_FIELDS = 20  # the API's queries have a handful of parameters


def whole_number(raw: str, lo: int = 0, hi: int = INT64_MAX) -> int | None:
    """`raw` as an int when it is ASCII digits only and within [lo, hi]; else None."""
    if not _DIGITS.fullmatch(raw):
        return None
    value = int(raw)
    return value if lo <= value <= hi else None


def bad_character(value: str, *, multiline: bool = False) -> str | None:
    """The first character of `value` a screen must not show, as 'U+XXXX', or None when all are fine.

    Refused: control characters (Unicode Cc; newline, carriage return and tab only where `multiline`),
    bidi controls, lone surrogates (JSON allows "\\ud800"; UTF-8 does not) and the line/paragraph
    separators U+2028/U+2029."""
    char = unsafe_character(value, multiline=multiline)
    return None if char is None else f"U+{ord(char):04X}"


def repeated_header(headers: Any) -> str | None:
    """The name of a single-valued header that appears more than once, or None."""
    for name in SINGLE_HEADERS:
        if len(headers.get_all(name)) > 1:
            return name
    return None


def request_problem(target: str, headers: Any) -> str | None:
    """Why a request head cannot be served (the answer is 400 with this sentence), or None.

    Checked once before any route reads the head, so that no route meets a target urlsplit refuses
    ('//[x' is an "invalid IPv6 URL"), a query with too many fields, or a doubled header."""
    try:
        query = urlsplit(target).query
    except ValueError as exc:
        return f"the request target cannot be read: {exc}"
    try:
        parse_qs(query, max_num_fields=MAX_QUERY_FIELDS)
    except ValueError:
        return f"too many query parameters (at most {MAX_QUERY_FIELDS})"
    name = repeated_header(headers)
    if name is not None:
        return f"the {name} header appears more than once"
    return None
