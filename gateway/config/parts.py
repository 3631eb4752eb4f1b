"""Short-run SPC in the config file: a characteristic's `parts:`, `short_run:` and `part_from:`.

    parts: {A-100: {target: 10.0, sigma: 0.02, lsl: 9.94, usl: 10.06}, A-200: {target: 12.5, ...}}
    short_run: dnom            # or z
    part_from: {source: plc, modbus: {address: 40100, data_type: uint16}, codes: {1: A-100, 2: A-200}}
    part_from: {field: part}   # the part number in the value's own message (MQTT JSON)

The part source's plugin parses the address block, as it does a characteristic's. The cross-checks
(`check`) run once the characteristic's own keys are read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode

from gateway.config.kinds import SourceKind, and_list
from gateway.config.loader import BAD, Convert, Reader, kind, one_of, peek, show
from gateway.config.model import Part, PartFrom
from gateway.config.values import NAME_MAX, TEXT_MAX, bounded, control_character, number, text, text_of
from gateway.spc.charts.registry import CHARTS
from gateway.spc.distributions import BOUNDED_AT_ZERO
from gateway.spc.numeric import MAX_MAGNITUDE
from gateway.spc.shortrun import PLOTS

PART_SPEC: dict[str, Convert] = {"target": number(-MAX_MAGNITUDE, MAX_MAGNITUDE),
                                 "sigma": number(hi=MAX_MAGNITUDE, above=0),
                                 "lsl": number(-MAX_MAGNITUDE, MAX_MAGNITUDE),
                                 "usl": number(-MAX_MAGNITUDE, MAX_MAGNITUDE)}
KEYS = ("parts", "short_run", "part_from")  # the characteristic keys this module reads


def _pairs(r: Reader, node: Node, path: str, what: str) -> list[tuple[Node, Node, str]] | None:
    """The (key, value, path) of a mapping whose keys are data (part numbers, codes), not names."""
    r.mark(node, path)
    if not isinstance(node, MappingNode):
        r.error(node, path, f"expected a mapping of {what}, got {kind(node)}")
        return None
    pairs: list[tuple[Node, Node, str]] = []
    for key_node, value_node in node.value:
        if not isinstance(key_node, ScalarNode):
            r.error(key_node, path, f"a key must be a single value, got {kind(key_node)}")
            continue
        sub = f"{path}.{key_node.value}"
        r.mark(value_node, sub)
        pairs.append((key_node, value_node, sub))
    if not node.value:
        r.error(node, path, f"no {what}", "at least one")
        return None
    return pairs


def parts(r: Reader, node: Node, path: str) -> Any:
    """`parts:` part number -> {target, sigma, lsl, usl}; the part numbers as written."""
    pairs = _pairs(r, node, path, "part numbers")
    if pairs is None:
        return BAD
    found: list[Any] = []
    seen: dict[str, str] = {}
    for key_node, value_node, sub in pairs:
        name = str(key_node.value)
        bad = control_character(name)
        if bad is not None or not name.strip():
            found.append(r.error(key_node, sub, f"part number {show(name)} " + (bad or "is empty"),
                                 "printable text such as A-100"))
            continue
        if bounded(r, key_node, sub, name, NAME_MAX) is BAD:
            found.append(BAD)
            continue
        if name in seen:
            found.append(r.error(key_node, sub, f"part number {show(name)} is listed twice", "each part once"))
            continue
        seen[name] = sub
        values = r.fields(value_node, sub, PART_SPEC, required=("target",))
        if values is None or not r.ok(values):
            found.append(BAD)
            continue
        found.append(_part(r, name, values, sub))
    return BAD if any(p is BAD for p in found) or not found else tuple(found)


def _part(r: Reader, name: str, values: dict[str, Any], path: str) -> Any:
    lsl, target, usl = values.get("lsl"), values["target"], values.get("usl")
    if lsl is not None and usl is not None and not lsl < usl:
        return _at(r, f"{path}.lsl", f"lsl {lsl:g} is not below usl {usl:g}", "lsl < usl")
    if (lsl is not None and not lsl < target) or (usl is not None and not target < usl):
        return _at(r, f"{path}.target", f"target {target:g} is not inside the part's spec",
                   "lsl < target < usl")
    return Part(name, **values)


def _at(r: Reader, path: str, message: str, allowed: str) -> Any:
    r.at(path, message, allowed)
    return BAD


def codes(r: Reader, node: Node, path: str) -> Any:
    """`codes:` the PLC's whole-number code -> part number."""
    pairs = _pairs(r, node, path, "codes")
    if pairs is None:
        return BAD
    found: list[Any] = []
    seen: set[int] = set()
    for key_node, value_node, sub in pairs:
        code = r.scalar(key_node, sub)
        if code is BAD:
            found.append(BAD)
            continue
        if isinstance(code, bool) or not isinstance(code, int) or not -2**63 <= code < 2**63:
            found.append(r.error(key_node, sub, f"code {show(code)} is not a whole number",
                                 "the number the PLC writes for the part, e.g. 1: A-100"))
            continue
        if code in seen:
            found.append(r.error(key_node, sub, f"code {code} is listed twice", "each code once"))
            continue
        seen.add(code)
        part = r.scalar(value_node, sub)
        if part is BAD:
            found.append(BAD)
            continue
        found.append((code, str(part)))
    return BAD if any(c is BAD for c in found) or not found else tuple(found)


def part_from(known: Mapping[str, tuple[SourceKind, object]] | None, kinds: Mapping[str, SourceKind],
              own_source: object) -> Convert:
    """`part_from:` a channel of its own (`source` and its type's address block) or a `field`."""
    def convert(r: Reader, node: Node, path: str) -> Any:
        items = r.mapping(node, path, ("source", "field", "codes", *kinds))
        if items is None:
            return BAD
        named = peek(node, "source")
        source = named if isinstance(named, str) else own_source
        source_kind, context = (known or {}).get(source, (None, None)) if isinstance(source, str) else (None, None)
        converters: dict[str, Convert] = {
            "source": text_of(NAME_MAX), "field": _field, "codes": codes,
            **{k.type: k.address(context if k is source_kind else None) for k in kinds.values()}}
        values = r.convert(node, path, items, converters)
        if not r.ok(values):
            return BAD
        if "source" in values and known is not None and values["source"] not in known:
            return _at(r, f"{path}.source", f"no source named {show(values['source'])}",
                       "a name under sources: " + ", ".join(known))
        blocks = [k for k in kinds if k in values]
        with_field = [k.label for k in kinds.values() if k.part_field]
        wanted = (f"field: PATH (the value's own message, {and_list(with_field)}), or " if with_field else "") + \
            "a source's address block: " + one_of(kinds)
        if "field" in values:
            if blocks:
                return _at(r, f"{path}.{blocks[0]}", "has both field and an address block", wanted)
            if "source" in values:
                return _at(r, f"{path}.source", "field is read from the value's own message: no source", wanted)
            if source_kind is not None and not source_kind.part_field:
                return _at(r, f"{path}.field", f"source {source!r} is {source_kind.type}: its readings carry "
                           "no other field", "an address block of its own: " + one_of(kinds))
        elif not blocks:
            return _at(r, path, "needs where the part is read", wanted)
        elif len(blocks) > 1:
            return _at(r, f"{path}.{blocks[1]}", f"has both {blocks[0]} and {blocks[1]}", "one address block")
        elif source_kind is not None and blocks[0] != source_kind.type:
            return _at(r, f"{path}.{blocks[0]}", f"source {source!r} is a {source_kind.type} source; the "
                       f"{blocks[0]} block does not fit it", f"a '{source_kind.type}' block")
        address = values[blocks[0]] if blocks else None
        return PartFrom(source=str(source), address=address, field=values.get("field"),
                        codes=values.get("codes", ()))
    return convert


def _field(r: Reader, node: Node, path: str) -> Any:
    value = text(r, node, path, TEXT_MAX)
    if value is not BAD and (any(c.isspace() for c in value) or "" in value.split(".")):
        return r.error(node, path, f"{show(value)} is not a dotted path", "keys joined by '.', e.g. part.number")
    return value


def check(r: Reader, items: Mapping[str, Node], good: dict[str, Any], chart: Any, path: str) -> bool:
    """The cross-checks of a characteristic's short-run keys; False when one failed (reported)."""
    problems = len(r.problems)
    given = [k for k in KEYS if k in items]
    if not given:
        return True
    if "parts" in items and "short_run" not in items:
        r.at(f"{path}.parts", "parts need short_run: how the parts share one chart", one_of(PLOTS))
    if "short_run" in items and "parts" not in items:
        r.at(f"{path}.short_run", "short_run needs parts: each part number with its target",
             "parts: {A-100: {target: 10.0, sigma: 0.02}, ...}")
    if "parts" in items and "part_from" not in items:
        r.at(f"{path}.parts", "parts need part_from: where the part now running is read",
             "part_from: {field: PATH} or part_from: {source: NAME, <type>: {...}, codes: {...}}")
    if "part_from" in items and "parts" not in items:
        r.at(f"{path}.part_from", "part_from without parts", "parts: {A-100: {target: 10.0}, ...}")
    if "spec" in items and "parts" in items:
        r.at(f"{path}.spec", "with parts the spec is per part", "lsl and usl under each part in parts")
    individuals = [c.name for c in CHARTS.values() if c.individuals and c.kind == "shewhart"]
    if "short_run" in items and chart is not BAD and chart not in individuals:
        r.at(f"{path}.chart" if "chart" in items else f"{path}.subgroup_size",
             f"short_run plots single values (DNOM and Z-MR are individuals charts), not chart {chart}",
             "chart: " + " or ".join(individuals) + ", subgroup_size 1")
    plot, found, source = good.get("short_run"), good.get("parts"), good.get("part_from")
    if plot == "z" and found:
        for part in found:
            if part.sigma is None:
                r.at(f"{path}.parts.{part.name}", f"part {part.name} has no sigma: short_run z divides by it",
                     "sigma: the part's process standard deviation")
        if "limits" in items:
            r.at(f"{path}.limits", "a Z chart's limits are always 0 +- 3", "no limits with short_run: z")
    limits = good.get("limits")
    if plot == "dnom" and limits is not None and limits.center is not None and limits.center != 0:
        r.at(f"{path}.limits.center", f"a DNOM chart is centered at 0 (each part on its target), not "
             f"{limits.center:g}", "center: 0 with sigma, or baseline_subgroups")
    capability = good.get("capability")
    distribution = capability.distribution if capability is not None else "normal"
    if found and distribution in BOUNDED_AT_ZERO:
        # each part's window is fitted on its own (gateway.spc.shortrun): a part's LSL below 0 can never be
        # crossed by a distribution with no values below 0, as for a characteristic's spec.lsl
        for part in found:
            if part.lsl is not None and part.lsl < 0:
                r.at(f"{path}.parts.{part.name}.lsl", f"a {distribution} distribution has no values below 0, "
                     f"so part {part.name}'s lsl {part.lsl:g} can never be crossed",
                     "remove the part's lsl (or set it to 0 or above), or use normal or auto")
    if found and source is not None:
        names = [p.name for p in found]
        for code, part in source.codes:
            if part not in names:
                r.at(f"{path}.part_from.codes.{code}", f"code {code}: no part {show(part)} in parts",
                     "one of " + ", ".join(names))
    return len(r.problems) == problems
