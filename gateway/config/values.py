"""Converters for config values: (reader, node, key path) -> value, or BAD with the problem recorded.

Scalars (text, numbers, durations, sizes, HOST:PORT) and the composites every section is built from
(`section`, `list_of`).
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Callable
from typing import Any

from yaml.nodes import Node

from gateway.config.loader import BAD, Convert, Reader, kind, one_of, show
from gateway.config.model import Listen
from gateway.core.characters import unsafe_character

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb|kib|mib|gib|tib)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "tb": 1 << 40}
_LISTEN = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9_.-]+)):(?P<port>\d+)$")


# -------------------------------------------------------------------- converters: (reader, node, path)

# Upper bounds on the length of text the config accepts. Names end up in MQTT topics (at most 65,535
# bytes, and the broker and the plant's consumers cope badly with huge ones), in log lines and on the
# HMI; a few dozen characters is what a line, a part or a gauge is called in practice.
NAME_MAX = 64  # gateway, source, product code, characteristic and auth names
LABEL_MAX = 200  # product names: what an operator reads
UNIT_MAX = 32  # "mm", "µm", "N·m"
TEXT_MAX = 1024  # anything else: hosts, node ids, topics, user names
PATH_MAX = 4096  # file paths (Linux PATH_MAX)


def control_character(value: str) -> str | None:
    """The first control or bidi control character in `value` (NUL, ESC, newline, tab, DEL, U+202E...),
    None when there is none: the rule the protocol's texts follow too (gateway.core.characters). They
    are never part of a name a technician types."""
    return unsafe_character(value)


def bounded(r: Reader, node: Node, path: str, value: str, max_len: int) -> Any:
    """`value` when it is at most `max_len` characters and has no control character, else BAD."""
    if len(value) > max_len:
        return r.error(node, path, f"is {len(value):,} characters long", f"at most {max_len} characters")
    char = control_character(value)
    if char is not None:
        return r.error(node, path, f"contains the control character {char!r}",
                       "printable characters only: no tabs, line breaks, NUL or ESC")
    return value


def text(r: Reader, node: Node, path: str, max_len: int = TEXT_MAX) -> Any:
    value = r.scalar(node, path)
    if value is BAD:
        return BAD
    if not isinstance(value, str):
        return r.error(node, path, f"expected text, got {kind(node)} {show(value)}",
                       f'put it in quotes: "{node.value}"')
    if not value.strip():
        return r.error(node, path, "must not be empty")
    return bounded(r, node, path, value, max_len)


def text_of(max_len: int) -> Convert:
    """`text` with its own length limit."""
    def convert(r: Reader, node: Node, path: str) -> Any:
        return text(r, node, path, max_len)
    return convert


def name(r: Reader, node: Node, path: str) -> Any:
    """A name that ends up in MQTT topics and URLs: no spaces, slashes or wildcards."""
    value = text(r, node, path, NAME_MAX)
    if value is not BAD and re.search(r"[\s/+#]", value):
        return r.error(node, path, f"{show(value)} contains a space, '/', '+' or '#'",
                       "letters, digits, '-', '_' and '.'")
    return value


def file_path(r: Reader, node: Node, path: str) -> Any:
    """A file the gateway reads; relative to the config's folder. Missing files are warnings later."""
    value = text(r, node, path, PATH_MAX)
    if value is BAD:
        return BAD
    resolved = os.path.normpath(os.path.join(r.base_dir, os.path.expanduser(value)))
    r.files.append((path, resolved))
    return resolved


def storage_path(r: Reader, node: Node, path: str) -> Any:
    value = text(r, node, path, PATH_MAX)
    return value if value is BAD else os.path.normpath(os.path.join(r.base_dir, os.path.expanduser(value)))


def boolean(r: Reader, node: Node, path: str) -> Any:
    value = r.scalar(node, path)
    if value is not BAD and not isinstance(value, bool):
        return r.error(node, path, f"expected true or false, got {show(value)}", "true or false")
    return value


def integer(lo: int | None = None, hi: int | None = None) -> Convert:
    """A whole number within [lo, hi]."""
    def convert(r: Reader, node: Node, path: str) -> Any:
        value = r.scalar(node, path)
        if value is BAD:
            return BAD
        if isinstance(value, bool) or not isinstance(value, int):
            return r.error(node, path, f"expected a whole number, got {kind(node)} {show(value)}")
        return _in_range(r, node, path, value, lo, hi)
    return convert


def number(lo: float | None = None, hi: float | None = None, *, above: float | None = None) -> Convert:
    """A finite number within [lo, hi], or strictly above `above`."""
    def convert(r: Reader, node: Node, path: str) -> Any:
        value = r.scalar(node, path)
        if value is BAD:
            return BAD
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return r.error(node, path, f"expected a number, got {kind(node)} {show(value)}")
        if above is not None and not value > above:
            return r.error(node, path, f"{show(value)} is too small", f"more than {above:g}")
        return _in_range(r, node, path, float(value), lo, hi)
    return convert


def _in_range(r: Reader, node: Node, path: str, value: Any, lo: Any, hi: Any) -> Any:
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        if lo is not None and hi is not None:
            allowed = f"{lo} to {hi}"
        else:
            allowed = f"at least {lo}" if lo is not None else f"at most {hi}"
        return r.error(node, path, f"{show(value)} is out of range", allowed)
    return value


def choice(*options: str) -> Convert:
    """One of a few words (compared as text, so `qos: 1` and `protocol: 5` work too)."""
    def convert(r: Reader, node: Node, path: str) -> Any:
        value = r.scalar(node, path)
        if value is BAD:
            return BAD
        word = str(value).lower() if isinstance(value, bool) else str(value)
        if isinstance(value, float) and value.is_integer():
            word = str(int(value))
        if word not in options:
            close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            return r.error(node, path, f"{show(value)} is not allowed{hint}", one_of(options))
        return word
    return convert


def duration(*, above: float | None = 0.0, lo: float | None = None) -> Convert:
    """250ms, 2s, 5m, 1h, 90d; float seconds. The unit is required: `retention: 180` read as seconds
    once deleted history after three minutes. A bare 0 is the same in every unit and is accepted."""
    def convert(r: Reader, node: Node, path: str) -> Any:
        value = r.scalar(node, path)
        if value is BAD:
            return BAD
        seconds = None
        bare = None  # the number as written, when it came without a unit
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            bare = node.value.strip()
        elif isinstance(value, str) and (m := _DURATION.match(value)):
            if m.group(2) is None:
                bare = m.group(1)
            else:
                seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        if bare is not None:
            if float(value) <= 0:  # 0 needs no unit; a negative one is "too short" below
                seconds = float(value)
            else:
                return r.error(node, path, f"{bare} has no unit",
                               f"write {bare}ms, {bare}s, {bare}m, {bare}h or {bare}d")
        if seconds is None:
            return r.error(node, path, f"{show(value)} is not a duration",
                           "a number with ms, s, m, h or d, e.g. 250ms, 2s, 5m, 1h, 90d")
        if seconds < 0 or (above is not None and not seconds > above) or (lo is not None and seconds < lo):
            least = f"more than {above:g} s" if above is not None else f"at least {lo or 0:g} s"
            return r.error(node, path, f"{show(value)} is too short", least)
        return seconds
    return convert


def size(*, lo: int = 1) -> Convert:
    """512KB, 200MB, 2GB (KB = 1024 bytes) or a plain number of bytes; int bytes."""
    def convert(r: Reader, node: Node, path: str) -> Any:
        value = r.scalar(node, path)
        if value is BAD:
            return BAD
        size_bytes = None
        if isinstance(value, int) and not isinstance(value, bool):
            size_bytes = value
        elif isinstance(value, str) and (m := _SIZE.match(value)):
            unit = (m.group(2) or "b").lower().replace("i", "")
            size_bytes = int(float(m.group(1)) * _SIZE_UNITS[unit])
        if size_bytes is None:
            return r.error(node, path, f"{show(value)} is not a size",
                           "a number with KB, MB or GB, e.g. 512KB, 200MB, 2GB; KB = 1024 bytes")
        if size_bytes < lo:
            return r.error(node, path, f"{show(value)} is too small", f"at least {human_size(lo)}")
        return size_bytes
    return convert


def human_size(n: int) -> str:
    for unit, factor in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= factor and n % factor == 0:
            return f"{n // factor}{unit}"
    return f"{n} bytes"


def listen(r: Reader, node: Node, path: str) -> Any:
    """HOST:PORT, or [IPv6]:PORT."""
    value = r.scalar(node, path)
    if value is BAD:
        return BAD
    m = _LISTEN.match(value) if isinstance(value, str) else None
    if m is None:
        return r.error(node, path, f"{show(value)} is not HOST:PORT",
                       "e.g. 0.0.0.0:8000, 127.0.0.1:8000 or [::1]:8000")
    port = int(m.group("port"))
    if not 1 <= port <= 65535:
        return r.error(node, path, f"port {port} is out of range", "1 to 65535")
    return Listen(m.group("v6") or m.group("host"), port)


# -------------------------------------------------------------------- composite converters

def section(cls: Callable[..., Any], spec: dict[str, Convert], required: tuple[str, ...] = (),
            check: Callable[[Reader, dict[str, Any], str], bool] | None = None) -> Convert:
    """A mapping that becomes `cls(**values)`; `check` cross-checks the good values, False if one failed."""
    def convert(r: Reader, node: Node, path: str) -> Any:
        values = r.fields(node, path, spec, required)
        if values is None:
            return BAD
        passed = check(r, r.good(values), path) if check is not None else True
        return cls(**values) if r.ok(values) and passed else BAD
    return convert


def list_of(item: Convert, *, unique: bool = False, non_empty: bool = False) -> Convert:
    """A list whose items all convert; a tuple."""
    def convert(r: Reader, node: Node, path: str) -> Any:
        items = r.sequence(node, path)
        if items is None:
            return BAD
        if non_empty and not items:
            return r.error(node, path, "the list is empty", "at least one entry")
        values = [item(r, n, p) for n, p in items]
        if unique:  # a set, not `in values[:i]`: 40,000 origins took 15 s that way
            seen: set[Any] = set()
            for i, (n, p) in enumerate(items):
                if values[i] is BAD:
                    continue
                if values[i] in seen:
                    r.error(n, p, f"{show(values[i])} is listed twice", "each value once")
                    values[i] = BAD
                else:
                    seen.add(values[i])
        return BAD if any(v is BAD for v in values) else tuple(values)
    return convert


def both_or_neither(r: Reader, values: dict[str, Any], path: str, a: str, b: str) -> bool:
    """Two keys that only make sense together (certificate and private_key)."""
    if (a in values) != (b in values):
        present, absent = (a, b) if a in values else (b, a)
        r.at(f"{path}.{present}", f"{present} is given without {absent}", f"both {a} and {b}, or neither")
        return False
    return True
