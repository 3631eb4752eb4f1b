"""Reading a config file: YAML node tree -> checked values, every problem with file:line:column.

The node tree (yaml.compose) is walked instead of the loaded dict so that every value keeps its
position, and so that a duplicate key or an unknown key is seen instead of silently overwritten.
The sections themselves are described in `gateway.config.sections`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from gateway.config.files import SECRET_KEYS, regular_file_problem
from gateway.config.model import Config, Problem
from gateway.core.secrets import SecretError, read_secret


class _Bad:
    """The marker of a value that was wrong (its problem is already recorded)."""

    def __repr__(self) -> str:
        return "BAD"


BAD: Any = _Bad()
Convert = Callable[["Reader", Node, str], Any]

NULL_TAG = "tag:yaml.org,2002:null"
_TYPE_NAMES = {
    "tag:yaml.org,2002:str": "text", "tag:yaml.org,2002:int": "a whole number",
    "tag:yaml.org,2002:float": "a number", "tag:yaml.org,2002:bool": "true/false",
    NULL_TAG: "nothing", "tag:yaml.org,2002:timestamp": "a date",
}
# libyaml: fast, and a nesting limit instead of Python's RecursionError on `[[[[...`
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# A line's config is a few kB (the contract file is 4 kB); 1 MB is hundreds of products. Past it the
# file is refused before it is parsed, so a wrong file (a log, a database) cannot stall a reload.
MAX_CONFIG_BYTES = 1 << 20
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def kind(node: Node) -> str:
    """What a technician would call the node's type, for messages."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return _TYPE_NAMES.get(node.tag, f"a value tagged {node.tag}")


def is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == NULL_TAG


def key_node(node: Node | None, key: str) -> Node | None:
    """The value node of `key` in a mapping node, before anything is checked."""
    if isinstance(node, MappingNode):
        v: Node  # PyYAML's stubs leave a node's value untyped
        for k, v in node.value:
            if isinstance(k, ScalarNode) and k.value == key:
                return v
    return None


def peek(node: Node | None, key: str) -> Any:
    """The plain text or whole number of `key` in a mapping node (to pick a schema), else None."""
    value = key_node(node, key)
    if isinstance(value, ScalarNode) and value.tag.rsplit(":", 1)[-1] in ("str", "int"):
        return value.value if value.tag.endswith(":str") else int(value.value) if value.value.isdigit() else None
    return None


def printable(text: str, limit: int = 200) -> str:
    """`text` safe for a log line or terminal: control characters escaped, cut at `limit` characters."""
    text = _UNPRINTABLE.sub(lambda m: repr(m.group())[1:-1], text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def show(value: object) -> str:
    """A value as it is quoted in a message (short)."""
    text = repr(value) if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def one_of(options: Iterable[object]) -> str:
    """'a, b or c' for the allowed part of a message."""
    names = [str(o) for o in options]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


class Reader:
    """Walks the node tree of one file, converting values and collecting every problem."""

    def __init__(self, file: str, base_dir: str):
        self.file = file
        self.base_dir = base_dir  # relative paths in the config are relative to the config's folder
        self.problems: list[Problem] = []
        self.marks: dict[str, tuple[int, int]] = {}
        self.files: list[tuple[str, str]] = []  # (key path, absolute path) of every file named
        self._scalar = yaml.constructor.SafeConstructor()

    # ---------------------------------------------------------------- problems

    def problem(self, where: Node | str | tuple[int, int], path: str, message: str,
                allowed: str | None = None, severity: str = "error") -> None:
        """Record one problem at a node, at the recorded place of a key path, or at (line, column)."""
        if isinstance(where, Node):
            line, column = where.start_mark.line + 1, where.start_mark.column + 1
        elif isinstance(where, str):
            line, column = self.marks.get(where, (1, 1))
        else:
            line, column = where
        # paths and messages quote the file's own text: an unknown key or a name may be huge or hold ESC
        self.problems.append(Problem(self.file, line, column, printable(path), printable(message, 1000),
                                     allowed and printable(allowed, 1000), severity))  # type: ignore[arg-type]  # type: ignore[arg-type]

    def error(self, node: Node, path: str, message: str, allowed: str | None = None) -> Any:
        """Record an error and return BAD, so converters can `return r.error(...)`."""
        self.problem(node, path, message, allowed)
        return BAD

    def at(self, path: str, message: str, allowed: str | None = None, severity: str = "error", *,
           report_as: str | None = None) -> None:
        """Record a problem at the place a key path was read (cross-checks after conversion)."""
        self.problem(path, report_as or path, message, allowed, severity)

    def mark(self, node: Node, path: str) -> None:
        self.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)

    # ---------------------------------------------------------------- structure

    def mapping(self, node: Node, path: str, known: Iterable[str]) -> dict[str, Node] | None:
        """The key -> value nodes of a mapping; reports non-mappings, duplicate and unknown keys."""
        self.mark(node, path)
        if not isinstance(node, MappingNode):
            self.error(node, path, f"expected a mapping of keys, got {kind(node)}")
            return None
        known = list(known)
        result: dict[str, Node] = {}
        own: set[str] = set()
        merged: list[tuple[Node, Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` merges another mapping
                merged.append((key_node, value_node))
                continue
            if not isinstance(key_node, ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
                self.error(key_node, path, f"a key must be text, got {kind(key_node)}")
                continue
            key = key_node.value
            sub = f"{path}.{key}" if path else key
            if key in own:
                self.error(key_node, sub, "duplicate key (the later one would silently win)",
                           "each key once per mapping")
                continue
            own.add(key)
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                self.error(key_node, sub, f"unknown key{hint}", "allowed here: " + ", ".join(known))
                continue
            result[key] = value_node
            self.mark(value_node, sub)
        for _key, value_node in merged:
            sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
            for source in sources:
                if not isinstance(source, MappingNode):
                    self.error(source, path, f"'<<' merges a mapping, got {kind(source)}")
                    continue
                for k, v in source.value:
                    if isinstance(k, ScalarNode) and k.value in known and k.value not in result:
                        result[k.value] = v
                        self.mark(v, f"{path}.{k.value}" if path else k.value)
        return result

    def sequence(self, node: Node, path: str) -> list[tuple[Node, str]] | None:
        """The items of a list with their key paths (`path[i]`); a missing/empty value is no items."""
        self.mark(node, path)
        if is_null(node):
            return []
        if not isinstance(node, SequenceNode):
            self.error(node, path, f"expected a list, got {kind(node)}")
            return None
        items = []
        for i, item in enumerate(node.value):
            self.mark(item, f"{path}[{i}]")
            items.append((item, f"{path}[{i}]"))
        return items

    def fields(self, node: Node, path: str, spec: dict[str, Convert],
               required: Iterable[str] = ()) -> dict[str, Any] | None:
        """Convert a mapping by a key -> converter table; None when the mapping itself is unusable.

        Values that were wrong are left out of the result (their problems are recorded), so the
        caller can still cross-check the rest; `self.ok(result)` says whether all were good.
        An empty value (`key:` with nothing) means the key's default.
        """
        items = self.mapping(node, path, spec)
        return None if items is None else self.convert(node, path, items, spec, required)

    def convert(self, node: Node, path: str, items: dict[str, Node], spec: dict[str, Convert],
                required: Iterable[str] = ()) -> dict[str, Any]:
        """The converted values of a mapping already read by `mapping` (see `fields`)."""
        result: dict[str, Any] = {}
        for key in required:
            if key not in items or is_null(items[key]):
                self.problem(items.get(key, node), f"{path}.{key}" if path else key,
                             "is required" if key not in items else "needs a value")
                result[key] = BAD
        for key, value_node in items.items():
            if is_null(value_node):
                continue
            value = spec[key](self, value_node, f"{path}.{key}" if path else key)
            result[key] = value
        return result

    @staticmethod
    def ok(values: dict[str, Any] | None) -> bool:
        return values is not None and all(v is not BAD for v in values.values())

    @staticmethod
    def good(values: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in values.items() if v is not BAD}

    # ---------------------------------------------------------------- scalars

    def scalar(self, node: Node, path: str) -> Any:
        """The Python value of a scalar node (YAML 1.1 typing), or BAD."""
        if not isinstance(node, ScalarNode):
            return self.error(node, path, f"expected a single value, got {kind(node)}")
        try:
            return self._scalar.construct_object(node)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
            return self.error(node, path, f"cannot read this value: {str(exc).splitlines()[0]}")


# -------------------------------------------------------------------- the file

def _compose(reader: Reader, data: bytes) -> Node | None:
    """The node tree of the file, or None with the problem recorded (syntax, empty, too deep)."""
    try:
        root = yaml.compose(data, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = " ".join(p for p in (exc.context, exc.problem) if p)
        allowed = "check indentation, colons and quotes at this place"
        lines = data.split(b"\n")
        if mark and mark.line < len(lines) and lines[mark.line][mark.column:mark.column + 1] == b"\t":
            what, allowed = "a tab character", "indent with spaces only"
        reader.problem(where, "(yaml)", f"the file is not valid YAML: {what}", allowed)
        return None
    except yaml.reader.ReaderError as exc:
        line = data[: exc.position].count(b"\n") + 1 if isinstance(exc.position, int) else 1
        reader.problem((line, 1), "(yaml)", f"the file is not readable text: {exc.reason}",
                       "a UTF-8 text file")
        return None
    except (yaml.YAMLError, RecursionError, MemoryError) as exc:
        reader.problem((1, 1), "(yaml)", f"the file cannot be read as YAML: {type(exc).__name__}")
        return None
    if root is None or is_null(root):
        reader.problem((1, 1), "(file)", "the file is empty",
                       "a mapping with the sections gateway, storage, sources and products")
        return None
    unique, expanded = node_counts(root) if b"*" in data else (0, 0)  # no '*': no alias to count
    if expanded > max(MIN_EXPANSION, EXPANSION * unique):
        reader.problem((1, 1), "(yaml)", f"aliases (*name) expand {unique:,} values into {expanded:,}",
                       "use anchors and aliases for shared settings, not to multiply lists")
        return None
    return root


# An alias repeats a node where it stands, so a few lines of `[*a, *a, *a]` can stand for millions of
# characteristics: the 1 MB limit would not bound the time a check takes. Shared settings (`<<: *defaults`
# in every characteristic) expand a file a few times at most.
EXPANSION = 4
MIN_EXPANSION = 100_000


def node_counts(root: Node) -> tuple[int, int]:
    """(distinct nodes, nodes with every alias expanded) of a node graph; linear, cycles counted once."""
    expanded: dict[int, int] = {}
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            expanded[key] = min(1 + sum(expanded.get(id(c), 1) for c in _children(node)), 1 << 62)
        elif key not in expanded:
            expanded[key] = 1  # placeholder: a cycle back to this node counts once
            stack.append((node, True))
            stack.extend((c, False) for c in _children(node) if id(c) not in expanded)
    return len(expanded), expanded[id(root)]


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        items: list[Node] = node.value  # PyYAML's stubs leave a node's value untyped
        return items
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


# -------------------------------------------------------------------- files and secrets

def check_files(file: str, named: Iterable[tuple[str, str]],
                marks: Mapping[str, tuple[int, int]]) -> list[Problem]:
    """A problem for every named file that cannot be used right now: a warning when it is missing or
    unreadable, an error when it is a device, FIFO or socket, or a secret `read_secret` refuses."""
    problems = []
    for key_path, path in named:
        what = regular_file_problem(path)
        if what is None and key_path.rsplit(".", 1)[-1] in SECRET_KEYS:
            try:
                read_secret(path)
            except SecretError as exc:
                what = f"{exc.message}: {path}"
        if what is None:
            continue
        line, column = marks.get(key_path, (1, 1))
        # missing or unreadable may be right on another machine or for the service's user: warnings;
        # a device, a FIFO or a broken secret is wrong wherever the file is checked
        later = what.startswith(("file not found", "file not readable"))
        fix = "exists" if what.startswith("file not found") else "is fixed"
        problems.append(Problem(file, line, column, key_path, what,
                                f"the gateway refuses to start until it {fix}", "warning" if later else "error"))
    return problems


def missing_files(config: Config) -> list[Problem]:
    """Warnings for the files the config names (secrets, certificates) that are missing now."""
    return check_files(config.path, config.named_files, config.marks)


def require_files(config: Config, warnings: list[Problem] | None = None) -> list[Problem]:
    """The named files missing right now, as errors; `run` refuses to start when this is not empty.

    `warnings` (what load_config returned) is accepted for the caller's convenience but the disk is
    checked again, since a file may have appeared or vanished since the config was loaded.
    """
    return [Problem(p.file, p.line, p.column, p.path, p.message, p.allowed, "error")
            for p in missing_files(config)]
