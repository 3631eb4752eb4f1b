"""Numbers out of a CSV file a person made: the column separator and the decimal mark.

Spreadsheets in locales with a decimal comma (Korean Excel set to a German or French region, most of
Europe) save CSV with `;` between columns and `1,5` for one and a half. Read with `,` as the separator,
such a row is two numbers, and `1,500` is one and a half or fifteen hundred depending on who wrote it.
So: a file whose header is separated by `;` (or tabs) is read with that separator and a comma in a
number is its decimal mark; a file separated by `,` has `.` as its decimal mark, and a number with a
comma in it (quoted, `"1,5"`) is refused, because it cannot be told from a thousands separator.
"""

from __future__ import annotations

import csv
import itertools
import re
from array import array
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple, TextIO, overload

from gateway.spc.numeric import bad_reading

SEPARATORS = (",", ";", "\t")
MAX_SUBGROUP_SIZE = 100  # the engine's bound on one subgroup
# digits with at most one decimal mark, optional exponent: what a person or a spreadsheet writes
# ASCII digits only, as the MQTT intake: Python's \d and float() also take Arabic-Indic and full-width ones
_NUMBER = re.compile(r"[+-]?([0-9]+[.,]?[0-9]*|[.,][0-9]+)([eE][+-]?[0-9]+)?")
_WORDS = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}


def separator_of(header_line: str) -> str:
    """The column separator of a file, judged by its header line (`,` when nothing else shows)."""
    counts = {sep: header_line.count(sep) for sep in SEPARATORS}
    best = max(SEPARATORS, key=lambda sep: counts[sep])
    return best if counts[best] > 0 else ","


class Table(NamedTuple):
    """A CSV file read up to and with its header."""

    reader: Any  # csv.reader on the rows below the header; line_num counts from the header's line
    columns: list[str]  # the header's names, stripped
    separator: str  # the header's: `,`, or `;`/tab
    blank: int  # blank lines above the header (a spreadsheet's empty first row): skipped, still counted


def open_table(stream: TextIO) -> Table | None:
    """The file's header and a reader on the rows below it; None when it holds nothing but blank lines."""
    first_line = stream.readline()
    blank = 0
    while first_line and not first_line.strip():
        blank += 1
        first_line = stream.readline()
    if not first_line.strip():
        return None
    separator = separator_of(first_line)
    reader = csv.reader(itertools.chain([first_line], stream), delimiter=separator)
    return Table(reader, [h.strip() for h in next(reader)], separator, blank)


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


class InputError(Exception):
    """The CSV cannot be analyzed: the message names the row (exit 1)."""


Subgroup = tuple[str, list[float]]  # (label, values)


class Subgroups(Sequence[Subgroup]):
    """The file's subgroups as (label, values), kept compactly: all values in one array of doubles
    (8 bytes each) and each subgroup's start, with labels only when the file names them. A list of
    (str, [float]) costs about 230 bytes a row: 2.4 GB for a 100 MB file of one value per row."""

    def __init__(self, labelled: bool) -> None:
        self.values = array("d")
        self.starts = array("q")
        self.labels: list[str] | None = [] if labelled else None

    def start(self, label: str) -> None:
        self.starts.append(len(self.values))
        if self.labels is not None:
            self.labels.append(label)

    def add(self, value: float) -> None:
        self.values.append(value)

    def size_of_last(self) -> int:
        return len(self.values) - self.starts[-1]

    def __len__(self) -> int:
        return len(self.starts)

    def _one(self, i: int) -> tuple[str, list[float]]:
        end = self.starts[i + 1] if i + 1 < len(self.starts) else len(self.values)
        return (self.labels[i] if self.labels is not None else str(i + 1)), self.values[self.starts[i]:end].tolist()

    @overload
    def __getitem__(self, i: int) -> Subgroup: ...

    @overload
    def __getitem__(self, i: slice) -> list[Subgroup]: ...

    def __getitem__(self, i: int | slice) -> Subgroup | list[Subgroup]:
        if isinstance(i, slice):
            return [self._one(j) for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self._one(i)

    def __iter__(self) -> Iterator[tuple[str, list[float]]]:
        return (self._one(i) for i in range(len(self)))

    def __eq__(self, other: object) -> bool:  # equal to the list of (label, values) it stands for
        if isinstance(other, list | Subgroups):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


def read_subgroups(stream: TextIO, name: str, subgroup_size: int) -> Subgroups:
    """Rows -> [(label, values)], in order of first appearance; InputError names the offending line.

    The separator is `,`, or `;`/tab when the header uses it (then `1,5` is one and a half: see
    gateway.tools.analyze_input). Subgroups come from a `subgroup` column, else from `subgroup_number` (as
    `spc-gateway export` writes it), else from cutting consecutive rows into `subgroup_size`. A
    `characteristic` column (also from export) must name one characteristic only.
    """
    table = open_table(stream)
    if table is None:
        raise InputError(f"{name}: the file is empty (a header with a `value` column is needed)")
    reader, columns, separator, blank = table
    if "value" not in columns:
        raise InputError(f"{name}:{blank + 1}: no `value` column in the header (found: {', '.join(columns) or 'nothing'})")
    for column in ("value", "subgroup", "subgroup_number", "characteristic"):
        if columns.count(column) > 1:  # which one is meant? taking the first would chart the wrong data
            at = ", ".join(str(i + 1) for i, c in enumerate(columns) if c == column)
            raise InputError(f"{name}:{blank + 1}: the header has the column `{column}` more than once (columns {at}); "
                             "keep one")
    value_at = columns.index("value")
    label_column = "subgroup" if "subgroup" in columns else "subgroup_number" if "subgroup_number" in columns \
        else None
    label_at = columns.index(label_column) if label_column is not None else None
    characteristic_at = columns.index("characteristic") if "characteristic" in columns else None
    characteristics: dict[str, int] = {}  # name -> line of its first row
    marks = DecimalMarks(separator)
    groups = Subgroups(labelled=label_at is not None)
    first_line_of: dict[str, int] = {}  # label -> line of its first row (labelled files only)
    current: str | None = None
    rows = 0
    for row in reader:
        line = reader.line_num + blank
        if not any(cell.strip() for cell in row):
            continue  # blank lines carry nothing
        rows += 1
        if len(row) > len(columns) and any(cell.strip() for cell in row[len(columns):]):
            hint = ""
            if separator == "," and len(row) > value_at + 1 and row[value_at].strip().lstrip("+-").isdigit() \
                    and row[value_at + 1].strip()[:1].isdigit():
                hint = (f"; is {row[value_at].strip()},{row[value_at + 1].strip()} a number with a decimal "
                        "comma? write it with '.', or separate the columns with ';'")
            raise InputError(f"{name}:{line}: row {rows} has {len(row)} cells but the header has "
                             f"{len(columns)} column{'s' if len(columns) > 1 else ''}{hint}")
        if value_at >= len(row) or not row[value_at].strip():
            raise InputError(f"{name}:{line}: row {rows} has no value")
        text = row[value_at].strip()
        try:
            value = marks.number(text, rows)
        except NumberError as e:
            raise InputError(f"{name}:{line}: row {rows}: {e}") from None
        bad = bad_reading(value)
        if bad is not None:
            raise InputError(f"{name}:{line}: row {rows}: value {text!r} is {bad.what}: SPC statistics "
                             "cannot be computed from it")
        if characteristic_at is not None and characteristic_at < len(row) and row[characteristic_at].strip():
            characteristics.setdefault(row[characteristic_at].strip(), line)
            if len(characteristics) > 1:
                named = ", ".join(f"{c!r} (from line {at})" for c, at in characteristics.items())
                raise InputError(f"{name}:{line}: the rows mix characteristics: {named}. Their values "
                                 "cannot share one chart: analyze one characteristic at a time (spc-gateway "
                                 "export --characteristic NAME writes one)")
        if label_at is None:
            label = str((rows - 1) // subgroup_size + 1)
        else:
            label = row[label_at].strip() if label_at < len(row) else ""
            if not label:
                raise InputError(f"{name}:{line}: row {rows} has an empty {label_column} label")
            if label != current and label in first_line_of:
                raise InputError(f"{name}:{line}: row {rows}: subgroup {label!r} appears again after "
                                 f"subgroup {current!r} (it started on line {first_line_of[label]}); "
                                 "the rows of a subgroup must be consecutive")
        if label != current:
            groups.start(label)
            if label_at is not None:
                first_line_of[label] = line
        elif groups.size_of_last() >= MAX_SUBGROUP_SIZE:
            raise InputError(f"{name}:{line}: subgroup {label!r} has more than {MAX_SUBGROUP_SIZE} values")
        groups.add(value)
        current = label
    if not len(groups):
        raise InputError(f"{name}: no data rows after the header")
    return groups
