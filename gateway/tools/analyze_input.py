"""Numbers out of a CSV file a person made: the column separator and the decimal mark.

Spreadsheets in locales with a decimal comma (Korean Excel set to a German or French region, most of
Europe) save CSV with `;` between columns and `1,5` for one and a half. Read with `,` as the separator,
such a row is two numbers, and `1,500` is one and a half or fifteen hundred depending on who wrote it.
So: a file whose header is separated by `;` (or tabs) is read with that separator and a comma in a
number is its decimal mark; a file separated by `,` has `.` as its decimal mark, and a number with a
comma in it (quoted, `"1,5"`) is refused, because it cannot be told from a thousands separator.
"""

from __future__ import annotations

import re

SEPARATORS = (",", ";", "\t")
# digits with at most one decimal mark, optional exponent: what a person or a spreadsheet writes
# ASCII digits only, as the MQTT intake: Python's \d and float() also take Arabic-Indic and full-width ones
_NUMBER = re.compile(r"[+-]?([0-9]+[.,]?[0-9]*|[.,][0-9]+)([eE][+-]?[0-9]+)?")
_WORDS = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}


def separator_of(header_line: str) -> str:
    """The column separator of a file, judged by its header line (`,` when nothing else shows)."""
    counts = {sep: header_line.count(sep) for sep in SEPARATORS}
    best = max(SEPARATORS, key=lambda sep: counts[sep])
    return best if counts[best] > 0 else ","


class NumberError(ValueError):
    """A cell that is not a number in this file's convention; the message says why."""


class DecimalMarks:
    """Reads number cells of one file and remembers which decimal mark it used, to refuse a mix."""

    def __init__(self, separator: str):
        self.comma_decimal = separator != ","
        self.first: dict[str, int] = {}  # "," or "." -> the first row that used it as a decimal mark

    def number(self, text: str, row: int) -> float:
        """The cell's value; NumberError when it is not a number (or its decimal mark is ambiguous)."""
        if text.lower() in _WORDS:
            return float(text)  # NaN and infinity are refused by the caller with their own reason
        if _NUMBER.fullmatch(text) is None:
            if "," in text and "." in text:
                raise NumberError(f"value {text!r} has both '.' and ',': write numbers without "
                                  "thousands separators, like 1234.5")
            raise NumberError(f"value {text!r} is not a number")
        mark = "," if "," in text else "." if "." in text else None
        if mark == "," and not self.comma_decimal:
            raise NumberError(f"value {text!r} has a comma: analyze reads '.' as the decimal point "
                              "(write 1.5), and reads a decimal comma only in a file whose columns "
                              "are separated by ';'")
        if mark is not None and self.comma_decimal:
            other = "." if mark == "," else ","
            if other in self.first:
                raise NumberError(f"value {text!r} uses {mark!r} as its decimal mark but row "
                                  f"{self.first[other]} uses {other!r}: one file, one decimal mark "
                                  "(in a ';'-separated file '1.500' may mean fifteen hundred)")
            self.first.setdefault(mark, row)
        return float(text.replace(",", "."))
