"""Which characters a name or a text may not hold, one rule for the configuration and the protocol.

Control characters go raw into log lines and terminals (ESC sequences recolour or rewrite them), bidi
controls make a screen show text in another order than it is stored (U+202E turns "ABC-123" around),
lone surrogates cannot be written as UTF-8, and the line/paragraph separators break log lines.
"""

from __future__ import annotations

import unicodedata

BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
LINE_BREAKS = frozenset("\n\r\t")  # allowed in long texts (messages, comments), which may span lines


def unsafe_character(value: str, *, multiline: bool = False) -> str | None:
    """The first character of `value` that no name or text may hold, or None when there is none."""
    for char in value:
        if multiline and char in LINE_BREAKS:
            continue
        if char in BIDI_CONTROLS or unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp"):
            return char
    return None
