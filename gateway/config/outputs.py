"""The `outputs:` section: andon lights and interlocks driven by the alert lifecycle (contract §3).

An entry names a source to write through; that source's plugin parses the rest of the `write:` block
(a coil or register, a node), so this module names no protocol. The alert types an entry may name are
handed in by the caller (config sits below the alert table, gateway.alerts.types).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from yaml.nodes import Node

from gateway.config.kinds import SourceKind
from gateway.config.loader import BAD, Reader, key_node, one_of, peek, show
from gateway.config.model import OutputRule, OutputWhen, OutputWrite
from gateway.config.values import choice, integer, list_of, name, section, text_of

Known = dict[str, tuple[SourceKind, object]] | None  # source name -> (kind, context), as products take it


def _known(names: tuple[str, ...] | None, what: str) -> Any:
    """A text among `names` (`what` it is, in the error); None: any text (the caller does not know them)."""
    def convert(r: Reader, node: Node, path: str) -> Any:
        value = text_of(64)(r, node, path)
        if value is BAD or names is None or value in names:
            return value
        close = difflib.get_close_matches(str(value), names, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return r.error(node, path, f"{show(value)} is not {what}{hint}", one_of(names))
    return convert


def _when(types: tuple[str, ...] | None, codes: tuple[str, ...] | None) -> Any:
    return section(OutputWhen, {
        "alert_types": list_of(_known(types, "an alert type"), unique=True, non_empty=True),
        "priority_at_least": integer(1, 5), "products": list_of(_known(codes, "the code of a product"), unique=True),
        "state": choice("unacknowledged", "open"),
    }, required=("alert_types",))


def _write(known: Known, kinds: Mapping[str, SourceKind]) -> Any:
    writable = [k.type for k in kinds.values() if k.write is not None]

    def convert(r: Reader, node: Node, path: str) -> Any:
        source = peek(node, "source")
        where = key_node(node, "source")
        if where is None:
            r.mapping(node, path, ("source",))  # reports a non-mapping
            return r.error(node, f"{path}.source", "is required", "the name of a source to write through")
        if known is None:
            return BAD  # the sources themselves are wrong (reported there)
        if source not in known:
            close = difflib.get_close_matches(str(source), list(known), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            return r.error(where, f"{path}.source", f"{show(source)} is not a source{hint}",
                           one_of(known) if known else "a name from sources:")
        source_kind, context = known[str(source)]
        if source_kind.write is None:
            return r.error(where, f"{path}.source", f"{show(source)} is of type {source_kind.type}, which "
                           "cannot be written", f"a source of type {one_of(writable)}" if writable else None)
        target = source_kind.write(context)(r, node, path)
        return BAD if target is BAD else OutputWrite(str(source), target)
    return convert


def outputs_list(r: Reader, node: Node, path: str, known: Known, kinds: Mapping[str, SourceKind],
                 alert_types: Iterable[str] | None, products: Any) -> Any:
    """The `outputs:` entries; names unique (they key /healthz, /metrics and `outputs test NAME`).

    `alert_types`: the names an entry may list (None: not checked); `products`: the products read, or
    BAD when they were wrong (then product codes are not checked)."""
    types = tuple(alert_types) if alert_types is not None else None
    codes = tuple(p.code for p in products) if isinstance(products, tuple) else None
    entry = section(OutputRule, {"name": name, "when": _when(types, codes), "write": _write(known, kinds)},
                    required=("name", "when", "write"))
    items = r.sequence(node, path)
    if items is None:
        return BAD
    rules: list[Any] = []
    first: dict[str, str] = {}
    for item, item_path in items:
        output_name = peek(item, "name")
        if isinstance(output_name, str) and output_name in first:
            r.problem(key_node(item, "name"), f"{item_path}.name",  # type: ignore[arg-type]
                      f"duplicate output name {show(output_name)} (also {first[output_name]})",
                      "each output its own name")
            rules.append(BAD)
            continue
        if isinstance(output_name, str):
            first[output_name] = item_path
        rules.append(entry(r, item, item_path))
    return BAD if any(rule is BAD for rule in rules) else tuple(rules)
