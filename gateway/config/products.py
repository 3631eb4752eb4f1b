"""Products and their characteristics in the config file: address, sampling, spec, chart, limits, rules.

A characteristic is checked against its source (the address block and sampling must fit the source's
protocol), so the sources are read first and passed in as name -> (type, transport).
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from yaml.nodes import MappingNode, Node, SequenceNode

from gateway.config.loader import BAD, Convert, Reader, key_node, kind, one_of, peek, show
from gateway.config.model import (
    ALL_TESTS,
    AlertPriority,
    CapabilitySettings,
    Characteristic,
    Limits,
    ModbusAddress,
    MqttAddress,
    OpcUaAddress,
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
    text,
    text_of,
)
from gateway.spc.charts.registry import CHARTS, default_chart
from gateway.spc.numeric import MAX_MAGNITUDE, SMALLEST_NORMAL

Known = dict[str, tuple[str, str]] | None  # source name -> (type, transport); None: sources unusable
INTEGER_TYPES = ("int16", "uint16", "int32", "uint32", "int64", "uint64")
DATA_TYPES = (*INTEGER_TYPES, "float32", "float64", "bool")
REGISTERS = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "int64": 4, "uint64": 4,
             "float32": 2, "float64": 4, "bool": 1}
BIT_TABLES = ("coil", "discrete")
NODE_ID = re.compile(r"^(?:(?:ns=\d+|nsu=[^;]+);)?(?:i=\d+|s=.+|g=[0-9A-Fa-f-]{36}|b=.+)$")


# -------------------------------------------------------------------- address blocks

def modbus_address(transport: str, *, counter: bool = False, default_unit: int = 1) -> Convert:
    """A Modbus register (or coil) address; a part counter must be a whole-number register."""
    def make(**values: Any) -> ModbusAddress:
        data_type = "bool" if values.get("table") in BIT_TABLES else "uint16"
        return ModbusAddress(**{"data_type": data_type, "unit": default_unit, **values})

    def check(r: Reader, values: dict[str, Any], path: str) -> bool:
        table, data_type = values.get("table", "holding"), values.get("data_type")
        problems = len(r.problems)
        if table in BIT_TABLES and data_type not in (None, "bool"):
            r.at(f"{path}.data_type", f"table {table} holds single bits, not {data_type}", "data_type: bool")
        elif table not in BIT_TABLES and data_type == "bool":
            r.at(f"{path}.data_type", f"bool is only for tables coil and discrete, not {table} registers",
                 one_of(DATA_TYPES[:-1]))
        if counter and (data_type or "uint16") not in INTEGER_TYPES:
            r.at(f"{path}.data_type" if data_type else path, "a part counter counts whole parts",
                 one_of(INTEGER_TYPES), report_as=f"{path}.data_type")
        count = REGISTERS.get(data_type or ("bool" if table in BIT_TABLES else "uint16"), 1)
        if "address" in values and values["address"] + count > 65536:
            r.at(f"{path}.address", f"{data_type} at {values['address']} needs {count} registers, past 65535",
                 f"at most {65536 - count}")
        if values.get("scale") == 0:
            r.at(f"{path}.scale", "scale 0 would turn every reading into the offset", "any number but 0")
        return len(r.problems) == problems

    unit = integer(1, 247) if transport == "rtu" else integer(0, 255)
    return section(make, {
        "unit": unit, "table": choice("holding", "input", "coil", "discrete"), "address": integer(0, 65535),
        "data_type": choice(*DATA_TYPES), "byte_order": choice("ABCD", "CDAB", "BADC", "DCBA"),
        "scale": number(), "offset": number(),
    }, required=("address",), check=check)


def node_id(r: Reader, node: Node, path: str) -> Any:
    value = text(r, node, path)
    if value is not BAD and not NODE_ID.match(value):
        return r.error(node, path, f"{show(value)} is not an OPC UA node id",
                       'in quotes, e.g. "ns=2;s=Line3.CMM.Shaft.OD" or "ns=3;i=1001"')
    return value


def topic_filter(r: Reader, node: Node, path: str) -> Any:
    value = text(r, node, path)
    if value is BAD:
        return BAD
    levels = value.split("/")
    bad_hash = any("#" in level for level in levels[:-1]) or ("#" in levels[-1] and levels[-1] != "#")
    if bad_hash or any("+" in level and level != "+" for level in levels):
        return r.error(node, path, f"{show(value)} is not an MQTT topic filter",
                       "'+' stands for one whole level, '#' only as the last level")
    return value


def json_path(r: Reader, node: Node, path: str) -> Any:
    value = text(r, node, path)
    if value is not BAD and (re.search(r"\s", value) or "" in value.split(".")):
        return r.error(node, path, f"{show(value)} is not a dotted path", "keys joined by '.', e.g. reading.value")
    return value


OPCUA_ADDRESS = section(OpcUaAddress, {"node_id": node_id}, required=("node_id",))
MQTT_ADDRESS = section(MqttAddress, {"topic": topic_filter, "value": json_path, "timestamp": json_path},
                       required=("topic",))


def sampling(source: str, source_type: str | None, transport: str, default_unit: int) -> Convert:
    """When a reading is a new part; what is allowed depends on the source's protocol."""
    allowed = {"mqtt": ("per_message", "on_change"), "modbus": ("on_change", "every_poll"),
               "opcua": ("on_change", "every_poll")}.get(source_type or "", ("per_message", "on_change", "every_poll"))
    counter_form = "{part_counter: {table: holding, address: 110, data_type: uint32}}"

    def convert(r: Reader, node: Node, path: str) -> Any:
        if isinstance(node, MappingNode):
            items = r.mapping(node, path, ("part_counter",))
            if items is None:
                return BAD
            if "part_counter" not in items:
                return r.error(node, f"{path}.part_counter", "is required", counter_form)
            if source_type == "mqtt":
                return r.error(items["part_counter"], f"{path}.part_counter",
                               f"part_counter is only for modbus and opcua sources; {source!r} is mqtt",
                               one_of(allowed))
            sub = f"{path}.part_counter"
            if source_type == "modbus":
                counter = modbus_address(transport, counter=True, default_unit=default_unit)(r, items["part_counter"], sub)
            elif source_type == "opcua":
                counter = OPCUA_ADDRESS(r, items["part_counter"], sub)
            else:
                return BAD  # the source is unknown (reported there); the counter cannot be checked
            return BAD if counter is BAD else Sampling("part_counter", counter)
        value = r.scalar(node, path)
        if value is BAD:
            return BAD
        if value == "part_counter":
            return r.error(node, path, "part_counter needs the counter's address", counter_form)
        if value not in allowed:
            every = ("per_message", "on_change", "every_poll")
            what = (f"{show(value)} is for {'MQTT' if value == 'per_message' else 'polled'} sources; "
                    f"{source!r} is {source_type}") if value in every else f"{show(value)} is not a sampling mode"
            extra = "" if source_type == "mqtt" else ", or " + counter_form
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
})
ALERT_PRIORITY = section(AlertPriority, {key: integer(1, 5) for key in AlertPriority.__dataclass_fields__})


def unit_text(r: Reader, node: Node, path: str) -> Any:
    value = r.scalar(node, path)
    if value is not BAD and not isinstance(value, str):
        return r.error(node, path, f"expected text, got {kind(node)}", f'put it in quotes: "{node.value}"')
    return value if value is BAD else bounded(r, node, path, value, UNIT_MAX)


# -------------------------------------------------------------------- characteristic and product

BLOCKS = ("modbus", "opcua", "mqtt")


def characteristic(r: Reader, node: Node, path: str, known: Known) -> Any:
    spec_keys = ("name", "unit", "source", *BLOCKS, "sampling", "spec", "chart", "subgroup_size", "limits",
                 "rules", "capability", "alert_priority", "stale_after")
    items = r.mapping(node, path, spec_keys)
    if items is None:
        return BAD
    source = peek(node, "source")
    source_type, transport = (known or {}).get(source, (None, "tcp")) if isinstance(source, str) else (None, "tcp")
    unit = peek(key_node(node, "modbus"), "unit")
    converters: dict[str, Convert] = {
        "name": name, "unit": unit_text, "source": text_of(NAME_MAX), "modbus": modbus_address(transport), "opcua": OPCUA_ADDRESS,
        "mqtt": MQTT_ADDRESS, "sampling": sampling(str(source), source_type, transport,
                                                   unit if isinstance(unit, int) else 1),
        "spec": SPEC, "chart": choice(*CHARTS), "subgroup_size": integer(1, 1000), "limits": LIMITS,
        "rules": rules, "capability": CAPABILITY, "alert_priority": ALERT_PRIORITY, "stale_after": duration(),
    }
    values = r.convert(node, path, items, converters, required=("name", "source", "spec"))
    problems = len(r.problems)
    good = r.good(values)
    if "source" in good and known is not None and good["source"] not in known:
        close = difflib.get_close_matches(good["source"], list(known), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        r.at(f"{path}.source", f"no source named {show(good['source'])}{hint}",
             "a name under sources: " + ", ".join(known) if known else "define it under sources")
    blocks = [b for b in BLOCKS if b in items]
    wanted = f"a '{source_type}' block for source {source!r}" if source_type else "modbus, opcua or mqtt"
    if not blocks:
        r.at(path, "needs an address block: where the value is read", wanted, report_as=f"{path}.{source_type or 'modbus'}")
    elif len(blocks) > 1:
        r.at(f"{path}.{blocks[1]}", f"has both {blocks[0]} and {blocks[1]}: only one address block", wanted)
    elif source_type and blocks[0] != source_type:
        r.at(f"{path}.{blocks[0]}", f"source {source!r} is a {source_type} source; the {blocks[0]} block "
             "does not fit it", f"a '{source_type}' block")
    chart, size = _chart_and_size(r, items, good, path)
    if not r.ok(values) or len(r.problems) != problems or chart is BAD:
        return BAD
    if "sampling" not in good:
        good["sampling"] = Sampling("per_message" if source_type == "mqtt" else "on_change")
    return Characteristic(**{**good, "chart": chart, "subgroup_size": size})


def _chart_and_size(r: Reader, items: dict[str, Node], good: dict[str, Any], path: str) -> tuple[Any, int]:
    """The chart and subgroup size; a missing chart follows the size (spc.charts.registry.default_chart)."""
    if "chart" in items and "chart" not in good or "subgroup_size" in items and "subgroup_size" not in good:
        return BAD, 1  # already reported
    size = good.get("subgroup_size", 1)
    chart = good.get("chart") or default_chart(size).name
    low, high = CHARTS[chart].sizes
    if low <= size <= high:
        return chart, size
    allowed = f"{chart}: {_sizes(low, high)}" + _other_charts(size, low, high)
    if "subgroup_size" in items:
        r.at(f"{path}.subgroup_size", f"subgroup_size {size} does not fit chart {chart}", allowed)
    else:
        r.at(f"{path}.chart", f"chart {chart} needs a subgroup_size", f"{chart}: {_sizes(low, high)}",
             report_as=f"{path}.subgroup_size")
    return BAD, size


def _sizes(low: int, high: int) -> str:
    return f"{low}" if low == high else f"{low} to {high}"


def _other_charts(size: int, low: int, high: int) -> str:
    """'; use CHART for SIZES, ...': the charts that take this size, each with the sizes it takes beyond
    the chosen chart's (low..high), on the side of the size asked for."""
    hints = []
    for other in CHARTS.values():
        first, last = other.sizes
        if first <= size <= last:
            first, last = (max(first, high + 1), last) if size > high else (first, min(last, low - 1))
            hints.append(f"{other.name} for {_sizes(first, last)}")
    if hints:
        return "; use " + ", ".join(hints)
    return "; larger subgroups are not charted" if size > high else ""


def product(r: Reader, node: Node, path: str, known: Known) -> Any:
    def characteristics(r: Reader, node: Node, path: str) -> Any:
        items = r.sequence(node, path)
        if items is None:
            return BAD
        if not items:
            return r.error(node, path, "no characteristics", "at least one characteristic")
        found = [characteristic(r, n, p, known) for n, p in items]
        if _duplicates(r, items, "name", "characteristic name", " in this product",
                       "each characteristic of a product its own name", kinds=(str,)):
            return BAD
        return BAD if any(c is BAD for c in found) else tuple(found)

    return section(Product, {"id": integer(1, 2**31 - 1), "code": name, "name": text_of(LABEL_MAX),
                             "characteristics": characteristics},
                   required=("id", "code", "name", "characteristics"))(r, node, path)


def products_list(r: Reader, node: Node, path: str, known: Known) -> Any:
    """The products; ids and codes are unique across the file."""
    items = r.sequence(node, path)
    if items is None:
        return BAD
    if not items:
        return r.error(node, path, "no products", "at least one product with its characteristics")
    found = [product(r, n, p, known) for n, p in items]
    repeated = [_duplicates(r, items, key, f"product {key}", "", f"each product its own {key}") for key in ("id", "code")]
    return BAD if any(repeated) or any(p is BAD for p in found) else tuple(found)


def _duplicates(r: Reader, items: list[tuple[Node, str]], key: str, what: str, where: str, allowed: str,
                kinds: tuple[type, ...] = (str, int)) -> bool:
    """Report every item whose `key` repeats an earlier item's, naming the first; True when any did.
    A value of another kind is left to the item's own check (it is reported there)."""
    first: dict[Any, str] = {}
    repeated = False
    for item, item_path in items:
        value = peek(item, key)
        if not isinstance(value, kinds):
            continue
        if value in first:
            r.at(f"{item_path}.{key}", f"duplicate {what} {show(value)}{where} (also {first[value]})", allowed)
            repeated = True
        first.setdefault(value, item_path)
    return repeated
