"""Products and their characteristics in the config file: address, sampling, spec, chart, limits, rules.

A characteristic is checked against its source (the address block and sampling must fit the source's
protocol), so the sources are read first and passed in as name -> (kind, context): the source's
plugin (gateway.config.kinds.SourceKind) parses the address block and the part counter.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from yaml.nodes import MappingNode, Node, SequenceNode

from gateway.config import parts
from gateway.config.chart_parameters import CONVERTERS as PARAMETER_CONVERTERS
from gateway.config.chart_parameters import KEYS as PARAMETER_KEYS
from gateway.config.chart_parameters import chart_parameters
from gateway.config.counts import counts_fit
from gateway.config.kinds import SourceKind, and_list
from gateway.config.loader import BAD, Convert, Reader, key_node, kind, one_of, peek, show
from gateway.config.model import (
    ALL_TESTS,
    AlertPriority,
    CapabilitySettings,
    Characteristic,
    Limits,
    Product,
    Rules,
    Sampling,
    Spec,
)
from gateway.config.values import (
    LABEL_MAX,
    NAME_MAX,
    UNIT_MAX,
    bounded,
    choice,
    duration,
    integer,
    list_of,
    name,
    number,
    section,
    text_of,
)
from gateway.spc.charts.registry import CHARTS, default_chart
from gateway.spc.distributions import BOUNDED_AT_ZERO
from gateway.spc.distributions import CHOICES as DISTRIBUTIONS
from gateway.spc.numeric import MAX_MAGNITUDE, SMALLEST_NORMAL
from gateway.spc.shortrun import PLOTS

Known = dict[str, tuple[SourceKind, object]] | None  # source name -> (kind, context); None: sources unusable
SAMPLING_MODES = ("per_message", "on_change", "every_poll")  # besides part_counter (gateway.sources.sampling)

# -------------------------------------------------------------------- sampling

def sampling(source: str, source_kind: SourceKind | None, context: object, block: Node | None,
             kinds: Mapping[str, SourceKind]) -> Convert:
    """When a reading is a new part; what is allowed depends on the source's protocol (its kind)."""
    allowed = source_kind.sampling_modes if source_kind else SAMPLING_MODES
    with_counter = [k for k in kinds.values() if k.counter is not None]
    # one example for every source, as before the plugins: the first kind's that has a part counter
    counter_form = f"{{part_counter: {with_counter[0].counter_example}}}" if with_counter else "part_counter"

    def convert(r: Reader, node: Node, path: str) -> Any:
        if isinstance(node, MappingNode):
            items = r.mapping(node, path, ("part_counter",))
            if items is None:
                return BAD
            if "part_counter" not in items:
                return r.error(node, f"{path}.part_counter", "is required", counter_form)
            if source_kind is None:
                return BAD  # the source is unknown (reported there); the counter cannot be checked
            if source_kind.counter is None:
                return r.error(items["part_counter"], f"{path}.part_counter",
                               f"part_counter is only for {and_list(k.type for k in with_counter)} sources; "
                               f"{source!r} is {source_kind.type}", one_of(allowed))
            sub = f"{path}.part_counter"
            counter = source_kind.counter(context, block)(r, items["part_counter"], sub)
            return BAD if counter is BAD else Sampling("part_counter", counter)
        value = r.scalar(node, path)
        if value is BAD:
            return BAD
        if value == "part_counter":
            return r.error(node, path, "part_counter needs the counter's address", counter_form)
        if value not in allowed:
            what = f"{show(value)} is not a sampling mode"
            if value in SAMPLING_MODES and source_kind is not None:
                fitting = [k for k in kinds.values() if value in k.sampling_modes]
                sources = "polled" if all(k.polled for k in fitting) else and_list(k.label for k in fitting)
                what = f"{show(value)} is for {sources} sources; {source!r} is {source_kind.type}"
            extra = "" if source_kind is not None and source_kind.counter is None else ", or " + counter_form
            return r.error(node, path, what, one_of(allowed) + extra)
        return Sampling(value)
    return convert


# -------------------------------------------------------------------- spec, limits, rules

def check_spec(r: Reader, values: dict[str, Any], path: str) -> bool:
    lsl, target, usl = values.get("lsl"), values.get("target"), values.get("usl")
    if lsl is None and usl is None:
        if f"{path}.lsl" not in r.marks and f"{path}.usl" not in r.marks:
            r.at(path, "needs a spec limit" + (" (a target alone is not one)" if target is not None else ""),
                 "lsl, usl or both")
        return False
    problems = len(r.problems)
    if lsl is not None and usl is not None and not lsl < usl:
        r.at(f"{path}.lsl", f"lsl {lsl:g} is not below usl {usl:g}", "lsl < usl")
    elif target is not None and lsl is not None and not lsl < target:
        r.at(f"{path}.target", f"target {target:g} is not above lsl {lsl:g}", "lsl < target < usl")
    elif target is not None and usl is not None and not target < usl:
        r.at(f"{path}.target", f"target {target:g} is not below usl {usl:g}", "lsl < target < usl")
    return len(r.problems) == problems


def make_limits(center: float | None = None, sigma: float | None = None,
                baseline_subgroups: int | None = None) -> Limits:
    if center is not None:
        return Limits(center=center, sigma=sigma)
    return Limits(baseline_subgroups=25 if baseline_subgroups is None else baseline_subgroups)


def check_limits(r: Reader, values: dict[str, Any], path: str) -> bool:
    given = {k for k in ("center", "sigma", "baseline_subgroups") if f"{path}.{k}" in r.marks}
    problems = len(r.problems)
    if len(given & {"center", "sigma"}) == 1:
        present = next(iter(given & {"center", "sigma"}))
        r.at(f"{path}.{present}", "fixed limits need both center and sigma",
             "center and sigma, or baseline_subgroups")
    elif {"center", "sigma"} <= given and "baseline_subgroups" in given:
        r.at(f"{path}.baseline_subgroups", "cannot be combined with fixed limits (center, sigma)",
             "either center and sigma, or baseline_subgroups")
    if "sigma" in values and values["sigma"] <= 0:
        r.at(f"{path}.sigma", f"sigma {values['sigma']:g} must be more than 0: it is the process standard "
             "deviation of single values", "a positive number")
    for key in ("center", "sigma"):  # limits from such numbers overflow to infinity (gateway/spc/numeric.py)
        if key in values and abs(values[key]) > MAX_MAGNITUDE:
            r.at(f"{path}.{key}", f"{values[key]:g} is beyond +-{MAX_MAGNITUDE:g}: control limits from it "
                 "would overflow", "a number in the unit of the measurements")
    if "sigma" in values and 0 < values["sigma"] < SMALLEST_NORMAL:
        r.at(f"{path}.sigma", f"sigma {values['sigma']:g} is too small to divide by", "a positive number "
             "from 2.2e-308; better, give the values in a smaller unit")
    if "baseline_subgroups" in values and values["baseline_subgroups"] < 2:
        r.at(f"{path}.baseline_subgroups", f"{values['baseline_subgroups']} is too few: control limits need "
             "at least 2 subgroups to estimate the process spread", "2 or more; 20 to 25 is usual")
    return len(r.problems) == problems


SPEC = section(Spec, {"lsl": number(), "target": number(), "usl": number()}, check=check_spec)
LIMITS = section(make_limits, {"center": number(), "sigma": number(), "baseline_subgroups": integer()},
                 check=check_limits)
RULE_TESTS = list_of(integer(1, 8), unique=True, non_empty=True)


def rules(r: Reader, node: Node, path: str) -> Any:
    """nelson | western_electric | a list of Nelson test numbers."""
    if isinstance(node, SequenceNode):
        tests = RULE_TESTS(r, node, path)
        return BAD if tests is BAD else Rules("nelson", tuple(sorted(tests)))
    value = r.scalar(node, path)
    if value is BAD:
        return BAD
    if value not in ALL_TESTS:
        close = difflib.get_close_matches(str(value), list(ALL_TESTS), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return r.error(node, path, f"{show(value)} is not a rule set{hint}",
                       "nelson, western_electric, or a list of Nelson tests 1 to 8 such as [1, 2, 5, 6]")
    return Rules(value, ALL_TESTS[value])


CAPABILITY = section(CapabilitySettings, {
    "every_subgroups": integer(1), "window_subgroups": integer(2), "min_cpk": number(above=0),
    "distribution": choice(*DISTRIBUTIONS),
})
ALERT_PRIORITY = section(AlertPriority, {key: integer(1, 5) for key in AlertPriority.__dataclass_fields__})


def unit_text(r: Reader, node: Node, path: str) -> Any:
    value = r.scalar(node, path)
    if value is not BAD and not isinstance(value, str):
        return r.error(node, path, f"expected text, got {kind(node)}", f'put it in quotes: "{node.value}"')
    return value if value is BAD else bounded(r, node, path, value, UNIT_MAX)


# -------------------------------------------------------------------- characteristic and product

def characteristic(r: Reader, node: Node, path: str, known: Known, kinds: Mapping[str, SourceKind]) -> Any:
    blocks = tuple(kinds)  # the address block is named after its source's type
    spec_keys = ("name", "unit", "source", *blocks, "sampling", "spec", "chart", "subgroup_size", "limits",
                 "rules", "capability", "alert_priority", "stale_after", *PARAMETER_KEYS, *parts.KEYS)
    items = r.mapping(node, path, spec_keys)
    if items is None:
        return BAD
    source = peek(node, "source")
    source_kind, context = (known or {}).get(source, (None, None)) if isinstance(source, str) else (None, None)
    source_type = source_kind.type if source_kind else None
    converters: dict[str, Convert] = {
        "name": name, "unit": unit_text, "source": text_of(NAME_MAX),
        **{k.type: k.address(context if k is source_kind else None) for k in kinds.values()},
        "sampling": sampling(str(source), source_kind, context, key_node(node, source_type or ""), kinds),
        "spec": SPEC, "chart": choice(*CHARTS), "subgroup_size": integer(1, 1000), "limits": LIMITS,
        "rules": rules, "capability": CAPABILITY, "alert_priority": ALERT_PRIORITY, "stale_after": duration(),
        **PARAMETER_CONVERTERS,
        "parts": parts.parts, "short_run": choice(*PLOTS), "part_from": parts.part_from(known, kinds, source),
    }
    spec = () if "parts" in items else ("spec",)  # with parts the spec is per part (gateway.config.parts)
    values = r.convert(node, path, items, converters, required=("name", "source", *spec))
    problems = len(r.problems)
    good = r.good(values)
    if "source" in good and known is not None and good["source"] not in known:
        close = difflib.get_close_matches(good["source"], list(known), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        r.at(f"{path}.source", f"no source named {show(good['source'])}{hint}",
             "a name under sources: " + ", ".join(known) if known else "define it under sources")
    given = [b for b in blocks if b in items]
    wanted = f"a '{source_type}' block for source {source!r}" if source_type else one_of(blocks)
    if not given:
        r.at(path, "needs an address block: where the value is read", wanted,
             report_as=f"{path}.{source_type or blocks[0]}")
    elif len(given) > 1:
        r.at(f"{path}.{given[1]}", f"has both {given[0]} and {given[1]}: only one address block", wanted)
    elif source_type and given[0] != source_type:
        r.at(f"{path}.{given[0]}", f"source {source!r} is a {source_type} source; the {given[0]} block "
             "does not fit it", f"a '{source_type}' block")
    _distribution_fits_spec(r, good, path)
    chart, size = _chart_and_size(r, items, good, path)
    parts.check(r, items, good, chart, path)
    parameters = BAD if chart is BAD else chart_parameters(r, items, good, chart, path)
    if not r.ok(values) or len(r.problems) != problems or chart is BAD or parameters is BAD:
        return BAD
    if "sampling" not in good:
        good["sampling"] = Sampling(source_kind.default_sampling if source_kind else "on_change")
    address = next((good.pop(b) for b in blocks if b in good), None)
    if not counts_fit(r, source_kind, address, chart, path, items):
        return BAD
    return Characteristic(**{**good, "address": address, "chart": chart, "subgroup_size": size,
                             "parameters": parameters})


def _chart_and_size(r: Reader, items: dict[str, Node], good: dict[str, Any], path: str) -> tuple[Any, int]:
    """The chart and subgroup size; a missing chart follows the size (spc.charts.registry.default_chart)."""
    if "chart" in items and "chart" not in good or "subgroup_size" in items and "subgroup_size" not in good:
        return BAD, 1  # already reported
    size = good.get("subgroup_size", 1)
    chart = good.get("chart") or default_chart(size).name
    low, high = CHARTS[chart].sizes
    if low <= size <= high:
        return chart, size
    allowed = f"{chart}: {_sizes(low, high)}" + _other_charts(size, low, high, CHARTS[chart].kind)
    if "subgroup_size" in items:
        r.at(f"{path}.subgroup_size", f"subgroup_size {size} does not fit chart {chart}", allowed)
    else:
        r.at(f"{path}.chart", f"chart {chart} needs a subgroup_size", f"{chart}: {_sizes(low, high)}",
             report_as=f"{path}.subgroup_size")
    return BAD, size


def _distribution_fits_spec(r: Reader, good: dict[str, Any], path: str) -> None:
    """A distribution with no values below 0 cannot fall below a negative LSL: the LSL is a mistake."""
    distribution = good["capability"].distribution if "capability" in good else "normal"
    lsl = good["spec"].lsl if "spec" in good else None
    if distribution in BOUNDED_AT_ZERO and lsl is not None and lsl < 0:
        r.at(f"{path}.capability.distribution", f"a {distribution} distribution has no values below 0, so "
             f"spec.lsl {lsl:g} can never be crossed", "remove spec.lsl (or set it to 0 or above), or use "
             "normal or auto")


def _sizes(low: int, high: int) -> str:
    return f"{low}" if low == high else f"{low} to {high}"


def _other_charts(size: int, low: int, high: int, kind: str) -> str:
    """'; use CHART for SIZES, ...': the charts of the same kind (Shewhart, time-weighted, attribute: a
    variable is not offered a chart of counts) that take this size, each with the sizes it takes beyond
    the chosen chart's (low..high), on the side of the size asked for."""
    hints = []
    for other in CHARTS.values():
        if other.kind != kind:
            continue
        first, last = other.sizes
        if first <= size <= last:
            first, last = (max(first, high + 1), last) if size > high else (first, min(last, low - 1))
            hints.append(f"{other.name} for {_sizes(first, last)}")
    if hints:
        return "; use " + ", ".join(hints)
    return "; larger subgroups are not charted" if size > high else ""


def product(r: Reader, node: Node, path: str, known: Known, kinds: Mapping[str, SourceKind]) -> Any:
    def characteristics(r: Reader, node: Node, path: str) -> Any:
        items = r.sequence(node, path)
        if items is None:
            return BAD
        if not items:
            return r.error(node, path, "no characteristics", "at least one characteristic")
        found = [characteristic(r, n, p, known, kinds) for n, p in items]
        if _duplicates(r, items, "name", "characteristic name", " in this product",
                       "each characteristic of a product its own name", types=(str,)):
            return BAD
        return BAD if any(c is BAD for c in found) else tuple(found)

    return section(Product, {"id": integer(1, 2**31 - 1), "code": name, "name": text_of(LABEL_MAX),
                             "characteristics": characteristics},
                   required=("id", "code", "name", "characteristics"))(r, node, path)


def products_list(r: Reader, node: Node, path: str, known: Known, kinds: Mapping[str, SourceKind]) -> Any:
    """The products; ids and codes are unique across the file."""
    items = r.sequence(node, path)
    if items is None:
        return BAD
    if not items:
        return r.error(node, path, "no products", "at least one product with its characteristics")
    found = [product(r, n, p, known, kinds) for n, p in items]
    repeated = [_duplicates(r, items, key, f"product {key}", "", f"each product its own {key}") for key in ("id", "code")]
    return BAD if any(repeated) or any(p is BAD for p in found) else tuple(found)


def _duplicates(r: Reader, items: list[tuple[Node, str]], key: str, what: str, where: str, allowed: str,
                types: tuple[type, ...] = (str, int)) -> bool:
    """Report every item whose `key` repeats an earlier item's, naming the first; True when any did.
    A value of another kind is left to the item's own check (it is reported there)."""
    first: dict[Any, str] = {}
    repeated = False
    for item, item_path in items:
        value = peek(item, key)
        if not isinstance(value, types):
            continue
        if value in first:
            r.at(f"{item_path}.{key}", f"duplicate {what} {show(value)}{where} (also {first[value]})", allowed)
            repeated = True
        first.setdefault(value, item_path)
    return repeated
