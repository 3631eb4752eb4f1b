"""The address space of contract plant-integration §2, and what each committed event writes into it.

Objects/SPC/{product code}/{characteristic}/{Value, Mean, Center, UCL, LCL, USL, LSL, InControl,
InSpec, Cpk, LimitsVersion, LastViolation}, Objects/SPC/{product code}/OpenAlerts and
Objects/SPC/Gateway/{Name, Version, SourcesConnected}. Node ids are strings in the namespace
urn:spc-gateway that spell the browse path (`ns=2;s=SPC/BOLT-M10/diameter/Value`), so a PLC
programmer can type one without browsing. Every variable is read-only (AccessLevel CurrentRead).

`updates(event)` is pure: it returns the (node id, DataValue) pairs an event's body sets, with the
measurement's own time as the source timestamp; the server writes them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from asyncua import Node, Server, ua

from gateway.config import Config, Product
from gateway.outputs.opcua_server.asyncua_private import SharedDataValue

NAMESPACE = "urn:spc-gateway"
DOUBLES = ("Value", "Mean", "Center", "UCL", "LCL", "USL", "LSL", "Cpk")
WITH_UNIT = ("Value", "Mean", "Center", "UCL", "LCL", "USL", "LSL")
UNECE = "http://www.opcfoundation.org/UA/units/un/cefact"
# UNECE Recommendation 20 codes of the units a gauge usually reports; any other unit still gets its
# EUInformation, with UnitId -1 (unknown code) and the unit as written for its display name
UNIT_CODES = {"mm": "MMT", "cm": "CMT", "m": "MTR", "um": "4H", "µm": "4H", "μm": "4H", "in": "INH",
              "g": "GRM", "kg": "KGM", "N": "NEW", "Nm": "NU", "N·m": "NU", "°C": "CEL", "degC": "CEL",
              "bar": "BAR", "kPa": "KPA", "MPa": "MPA", "Pa": "PAL", "s": "SEC", "ms": "C26", "°": "DD",
              "deg": "DD", "%": "P1", "V": "VLT", "A": "AMP", "rpm": "RPM", "Hz": "HTZ"}


def status(code: int) -> ua.StatusCode:
    return ua.StatusCode(code)  # type: ignore[arg-type]  # asyncua's UInt32 is a plain int


def string_id(path: str, namespace: int) -> ua.NodeId:
    return ua.NodeId(path, namespace)  # type: ignore[arg-type]  # asyncua's String and Int16 are str and int


WAITING = status(ua.StatusCodes.BadWaitingForInitialData)


def unit_id(code: str) -> int:
    """OPC UA Part 8's UnitId of a UNECE code: its characters packed into one integer."""
    value = 0
    for char in code.upper():
        value = value << 8 | ord(char)
    return value


def eu_information(unit: str) -> ua.EUInformation:
    code = UNIT_CODES.get(unit)
    return ua.EUInformation(NamespaceUri=UNECE, UnitId=unit_id(code) if code else -1,
                            DisplayName=ua.LocalizedText(unit), Description=ua.LocalizedText(unit))


def parse_time(text: str | float | None) -> datetime | None:
    """An event's ISO 8601 time (with its offset), or a stored row's POSIX seconds, as the UTC datetime
    OPC UA carries."""
    if isinstance(text, int | float):
        return datetime.fromtimestamp(text, UTC)
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        return None


def data_value(value: Any, variant: ua.VariantType, at: Any) -> ua.DataValue:
    """A Good value with its source time; None (not known yet) is BadWaitingForInitialData."""
    now: Any = datetime.now(UTC)  # asyncua's DateTime is a datetime
    if value is None:
        return SharedDataValue(ua.Variant(None, ua.VariantType.Null), StatusCode=WAITING,
                               SourceTimestamp=at or now, ServerTimestamp=now)
    return SharedDataValue(ua.Variant(value, variant), SourceTimestamp=at or now, ServerTimestamp=now)


def violation_text(rules: Iterable[int], dispersion: Iterable[int], at: str | None) -> str:
    """LastViolation: the rule numbers a point broke and when ("1, 5; dispersion 1 at 2026-...")."""
    parts = [", ".join(map(str, rules))] if rules else []
    if dispersion:
        parts.append("dispersion " + ", ".join(map(str, dispersion)))
    return "; ".join(parts) + (f" at {at}" if at else "")


@dataclass
class Characteristic:
    """One characteristic's variables: name -> node id, and the limits last written (to notice a new version)."""

    nodes: dict[str, ua.NodeId]
    limits: tuple[Any, Any, Any] = (None, None, None)
    versioned: tuple[Any, Any, Any] = (None, None, None)  # the limits whose LimitsVersion was read
    verdicts: dict[str, bool] = field(default_factory=dict)  # InSpec, InControl as last written


@dataclass
class ProductNodes:
    product: Product
    node: Node
    open_alerts: ua.NodeId
    characteristics: dict[str, Characteristic] = field(default_factory=dict)
    alerts: dict[int, str] = field(default_factory=dict)  # unresolved alert id -> status


class AddressSpace:
    """Builds the nodes once at start; then maps events to the values they set."""

    def __init__(self, server: Server, config: Config):
        self.server = server
        self.config = config
        self.idx = 0
        self.products: dict[int, ProductNodes] = {}
        self.gateway: Node | None = None
        self.sources_connected: ua.NodeId | None = None

    def _id(self, path: str) -> ua.NodeId:
        return string_id(path, self.idx)

    async def build(self, version: str) -> None:
        self.idx = await self.server.register_namespace(NAMESPACE)
        objects = self.server.get_objects_node()
        spc = await objects.add_folder(self._id("SPC"), ua.QualifiedName("SPC", self.idx))
        for product in self.config.products:
            node = await spc.add_object(self._id(f"SPC/{product.code}"), ua.QualifiedName(product.code, self.idx))
            open_alerts = await self._variable(node, f"SPC/{product.code}/OpenAlerts", "OpenAlerts", 0,
                                               ua.VariantType.Int32)
            nodes = ProductNodes(product, node, open_alerts)
            for c in product.characteristics:
                nodes.characteristics[c.name] = await self._characteristic(node, product, c)
            self.products[product.id] = nodes
        self.gateway = await spc.add_object(self._id("SPC/Gateway"), ua.QualifiedName("Gateway", self.idx))
        await self._variable(self.gateway, "SPC/Gateway/Name", "Name", self.config.gateway.name,
                             ua.VariantType.String)
        await self._variable(self.gateway, "SPC/Gateway/Version", "Version", version, ua.VariantType.String)
        self.sources_connected = await self._variable(self.gateway, "SPC/Gateway/SourcesConnected",
                                                      "SourcesConnected", 0, ua.VariantType.Int32)

    async def _characteristic(self, parent: Node, product: Product, c: Any) -> Characteristic:
        base = f"SPC/{product.code}/{c.name}"
        folder = await parent.add_object(self._id(base), ua.QualifiedName(c.name, self.idx))
        nodes: dict[str, ua.NodeId] = {}
        spec = {"USL": c.spec.usl, "LSL": c.spec.lsl}
        for name in DOUBLES:
            nodes[name] = await self._variable(folder, f"{base}/{name}", name, spec.get(name), ua.VariantType.Double,
                                               unit=c.unit if name in WITH_UNIT and c.unit else None)
        for name in ("InControl", "InSpec"):
            nodes[name] = await self._variable(folder, f"{base}/{name}", name, None, ua.VariantType.Boolean)
        nodes["LimitsVersion"] = await self._variable(folder, f"{base}/LimitsVersion", "LimitsVersion", None,
                                                      ua.VariantType.Int32)
        nodes["LastViolation"] = await self._variable(folder, f"{base}/LastViolation", "LastViolation", None,
                                                      ua.VariantType.String)
        return Characteristic(nodes)

    async def _variable(self, parent: Node, node_id: str, name: str, value: Any, variant: ua.VariantType,
                        unit: str | None = None) -> ua.NodeId:
        # created with a typed placeholder, so DataType says Double/Boolean/...; then the real start value
        placeholder = {ua.VariantType.Double: 0.0, ua.VariantType.Boolean: False, ua.VariantType.Int32: 0,
                       ua.VariantType.String: ""}[variant]
        node = await parent.add_variable(self._id(node_id), ua.QualifiedName(name, self.idx),
                                         ua.Variant(placeholder, variant), varianttype=variant)
        if unit is not None:
            await node.add_property(self._id(f"{node_id}/EngineeringUnits"),
                                    ua.QualifiedName("EngineeringUnits", 0), eu_information(unit))
        await self.server.write_attribute_value(node.nodeid, data_value(value, variant, None))
        return node.nodeid

    # ------------------------------------------------------------------ events -> values

    def updates(self, event: dict[str, Any]) -> list[tuple[ua.NodeId, ua.DataValue]]:
        """The values an event's body sets (alerts: OpenAlerts; their events are the alarm bridge's)."""
        kind = event.get("type")
        body = event.get(kind) if isinstance(kind, str) else None
        if not isinstance(body, dict):
            return []
        if kind == "alert":
            return self._alert(body)
        product = self.products.get(body.get("product_id"))  # type: ignore[arg-type]
        c = product.characteristics.get(body.get("characteristic", "")) if product else None
        if c is None:
            return []
        n = c.nodes
        if kind == "measurement":
            at = parse_time(body.get("measured_at"))
            out = [(n["Value"], data_value(body.get("measurement_value"), ua.VariantType.Double, at))]
            # null: not decided (no spec limits; a subgroup not complete yet): the last verdict stands.
            # A verdict that did not change is not written again: no client sees a change there
            for key, name in (("is_within_spec", "InSpec"), ("is_within_control", "InControl")):
                verdict = body.get(key)
                if verdict is not None and c.verdicts.get(name) is not verdict:
                    c.verdicts[name] = bool(verdict)
                    out.append((n[name], data_value(bool(verdict), ua.VariantType.Boolean, at)))
            return out
        if kind == "subgroup":
            at = parse_time(body.get("measured_at"))
            out = [(n["Mean"], data_value(body.get("value"), ua.VariantType.Double, at))]
            limits = (body.get("center"), body.get("ucl"), body.get("lcl"))
            if limits != c.limits:
                c.limits = limits
                out += [(n[name], data_value(v, ua.VariantType.Double, at))
                        for name, v in zip(("Center", "UCL", "LCL"), limits, strict=True)]
            rules, dispersion = body.get("violations") or [], body.get("dispersion_violations") or []
            if rules or dispersion:
                out.append((n["LastViolation"], data_value(violation_text(rules, dispersion, body.get("measured_at")),
                                                           ua.VariantType.String, at)))
            return out
        if kind == "capability":
            cpk = body.get("cpk")
            return [] if cpk is None else [(n["Cpk"], data_value(float(cpk), ua.VariantType.Double,
                                                                 parse_time(body.get("analyzed_at"))))]
        return []

    def limits_changed(self, event: dict[str, Any]) -> tuple[int, str] | None:
        """The (product id, characteristic) whose limits version to read after a subgroup with new limits."""
        if event.get("type") != "subgroup":
            return None
        body = event["subgroup"]
        return body.get("product_id"), body.get("characteristic")

    def _alert(self, alert: dict[str, Any]) -> list[tuple[ua.NodeId, ua.DataValue]]:
        product = self.products.get(alert.get("product_id"))  # type: ignore[arg-type]
        if product is None:
            return []
        before = self.open_count(product)
        if alert.get("status") in ("OPEN", "ACKNOWLEDGED", "SHELVED"):
            product.alerts[alert["id"]] = alert["status"]
        else:
            product.alerts.pop(alert.get("id"), None)  # type: ignore[arg-type]
        count = self.open_count(product)
        return [] if count == before else [(product.open_alerts, data_value(count, ua.VariantType.Int32, None))]

    @staticmethod
    def open_count(product: ProductNodes) -> int:
        return sum(status in ("OPEN", "ACKNOWLEDGED") for status in product.alerts.values())

    # ------------------------------------------------------------------ seeding at start

    async def seed(self, store: Any, unresolved: list[dict[str, Any]]) -> list[tuple[ua.NodeId, ua.DataValue]]:
        """The values the store holds now: the last measurement, point, limits version and Cpk."""
        out: list[tuple[ua.NodeId, ua.DataValue]] = []
        for alert in unresolved:
            out += self._alert(alert)
        for product_id, product in self.products.items():
            # a short-run characteristic has one row per part: the newest is the last one sent live
            capability = {row["characteristic"]: row
                          for row in sorted(await store.latest_capability(product_id), key=lambda row: row["id"])}
            for name in product.characteristics:
                for m in await store.measurements(product_id, name, limit=1):
                    out += self.updates({"type": "measurement", "measurement": m})
                for s in await store.subgroups(product_id, name, limit=1):
                    out += self.updates({"type": "subgroup", "subgroup": {
                        **s, "value": s["mean"], "product_id": product_id, "characteristic": name}})
                out += await self.limits_version(store, product_id, name)
                if name in capability:
                    out += self.updates({"type": "capability", "capability": capability[name]})
        return out

    async def limits_version(self, store: Any, product_id: int, name: str) -> list[tuple[ua.NodeId, ua.DataValue]]:
        limits = await store.latest_limits(product_id, name)
        product = self.products.get(product_id)
        if limits is None or product is None or name not in product.characteristics:
            return []
        c = product.characteristics[name]
        c.limits = c.versioned = (limits["center"], limits["ucl"], limits["lcl"])
        at = parse_time(limits.get("effective_from"))
        return [(c.nodes["LimitsVersion"], data_value(int(limits["id"]), ua.VariantType.Int32, at)),
                *((c.nodes[k], data_value(v, ua.VariantType.Double, at))
                  for k, v in zip(("Center", "UCL", "LCL"), c.limits, strict=True))]
