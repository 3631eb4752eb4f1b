"""The Sparkplug B edge node as a state machine without I/O (Eclipse Sparkplug 3.0; contract
plant-integration §1): what to publish on a connect, a STATE message, an NCMD and each outbox row.

No socket, no clock of its own: the MQTT output (gateway/outputs/sparkplug.py) feeds it and publishes the (topic, payload, qos, retain) it returns, so every rule of the specification below is
tested without a broker.

- bdSeq (0..255) grows by one per connection attempt; `connect()` gives the will (NDEATH, QoS 1)
  carrying it, and the NBIRTH of that connection carries the same value. The output stores it before
  connecting and hands the last one to the next process (`bd_seq=`), so a host that compares an NDEATH
  with the last NBIRTH sees a new number after a restart too.
- seq (0..255) is 0 on the NBIRTH and then counts every DBIRTH, NDATA and DDATA of the connection.
- One device per product (device_id = product code); aliases are fixed by the configuration's order,
  node metrics first, so a rebirth gives every metric the alias it had.
- With a primary host, nothing is born until its STATE says online (and a STATE older than the last one
  seen is ignored); an offline STATE ends the births until the next online one.
- Rows produced before the births go as DDATA with is_historical = true.
- DDATA carries only what changed: a live one against what the host has (the births and the live
  DDATA since), a historical one against the previous historical one since the births (the host files
  those as history, they do not change its current values). A new `value` or `mean` always goes: it is
  a new sample, even when its number repeats.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

# protoc's module builds its classes at import time: mypy cannot see them
from gateway.outputs.sparkplug_b_pb2 import Payload  # type: ignore[attr-defined]

NAMESPACE = "spBv1.0"
REBIRTH = "Node Control/Rebirth"

# Sparkplug B datatypes (sparkplug_b.proto, DataType)
INT32, INT64, DOUBLE, BOOLEAN, STRING = 3, 4, 10, 11, 12

# Device metrics per characteristic: suffix -> datatype (contract §1)
CHARACTERISTIC_METRICS = (("value", DOUBLE), ("mean", DOUBLE), ("center", DOUBLE), ("ucl", DOUBLE),
                          ("lcl", DOUBLE), ("in_control", BOOLEAN), ("in_spec", BOOLEAN), ("cpk", DOUBLE),
                          ("limits_version", INT32))
DEVICE_METRICS = (("alerts/open", INT32), ("alerts/last", STRING))

Message = tuple[str, bytes, int, bool]  # topic, payload, qos, retain


@dataclass
class Device:
    """One product: its metrics in alias order and their current values."""

    device_id: str
    product_id: int
    characteristics: list[str] = field(default_factory=list)
    metrics: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (alias, datatype)
    values: dict[str, Any] = field(default_factory=dict)  # name -> the value now (for the births)
    open_alerts: dict[int, str] = field(default_factory=dict)  # alert id -> status (OPEN / ACKNOWLEDGED)
    sent: dict[str, Any] = field(default_factory=dict)  # what the host has now: the births and live DDATA
    history: dict[str, Any] = field(default_factory=dict)  # the last historical value sent since the births


def metric_updates(event: dict[str, Any]) -> tuple[int | None, dict[str, Any], str | None]:
    """(product id, {metric name: value}, ISO time) an event's JSON body sets; the alert's open count is
    the device's business (see EdgeNode.apply)."""
    kind = event.get("type")
    if kind == "measurement":
        m = event["measurement"]
        c = m["characteristic"]
        return m["product_id"], {f"{c}/value": m["measurement_value"], f"{c}/in_spec": m["is_within_spec"],
                                 f"{c}/in_control": m["is_within_control"]}, m.get("measured_at")
    if kind == "subgroup":
        s = event["subgroup"]
        c = s["characteristic"]
        values = {f"{c}/mean": s.get("mean"), f"{c}/center": s.get("center"), f"{c}/ucl": s.get("ucl"),
                  f"{c}/lcl": s.get("lcl")}
        if s.get("limits_version") is not None:
            values[f"{c}/limits_version"] = s["limits_version"]
        return s["product_id"], values, s.get("measured_at")
    if kind == "capability":
        cap = event["capability"]
        return cap["product_id"], {f"{cap['characteristic']}/cpk": cap.get("cpk")}, cap.get("analyzed_at")
    if kind == "alert":
        alert = event["alert"]
        return alert.get("product_id"), {"alerts/last": json.dumps(alert, ensure_ascii=False)}, None
    return None, {}, None


class EdgeNode:
    """One edge node's Sparkplug session state; every method returns the messages to publish, in order."""

    def __init__(self, group_id: str, edge_node_id: str, products: Sequence[tuple[int, str, Sequence[str]]],
                 *, primary_host_id: str | None = None, bd_seq: int = -1):
        """products: (product id, product code, characteristic names), in the configuration's order;
        bd_seq: the last one used (stored by an earlier process), -1 for none."""
        self.group_id = group_id
        self.edge_node_id = edge_node_id
        self.primary_host_id = primary_host_id
        self.bd_seq = bd_seq  # connect() makes it one more
        self.seq = 0
        self.metrics_sent = 0  # DDATA metrics, for the stats
        self.born = False
        self.host_online = primary_host_id is None
        self._state_timestamp = -1
        self.node_metrics = {"bdSeq": (1, INT64), REBIRTH: (2, BOOLEAN)}
        alias = 3
        self.devices: dict[int, Device] = {}
        for product_id, code, characteristics in products:
            device = Device(code, product_id, list(characteristics))
            for c in characteristics:
                for suffix, datatype in CHARACTERISTIC_METRICS:
                    device.metrics[f"{c}/{suffix}"] = (alias, datatype)
                    alias += 1
            for name, datatype in DEVICE_METRICS:
                device.metrics[name] = (alias, datatype)
                alias += 1
            device.values["alerts/open"] = 0
            self.devices[product_id] = device

    # ------------------------------------------------------------------ topics

    def topic(self, kind: str, device_id: str | None = None) -> str:
        base = f"{NAMESPACE}/{self.group_id}/{kind}/{self.edge_node_id}"
        return base if device_id is None else f"{base}/{device_id}"

    def subscriptions(self) -> list[str]:
        """What to subscribe to before the NBIRTH: our NCMD and DCMDs, the primary host's STATE."""
        topics = [self.topic("NCMD"), self.topic("DCMD") + "/+"]
        if self.primary_host_id is not None:
            topics.append(f"{NAMESPACE}/STATE/{self.primary_host_id}")
        return topics

    # ------------------------------------------------------------------ session

    def connect(self) -> Message:
        """A new connection: the next bdSeq, and the NDEATH to register as the MQTT will."""
        self.bd_seq = (self.bd_seq + 1) % 256
        self.born = False
        self.host_online = self.primary_host_id is None
        return self.death()

    def death(self) -> Message:
        """The NDEATH of this connection (the will, or published before a clean disconnect)."""
        payload = Payload()
        metric = payload.metrics.add(name="bdSeq", datatype=INT64)
        metric.long_value = self.bd_seq
        return self.topic("NDEATH"), payload.SerializeToString(), 1, False

    def may_publish(self) -> bool:
        return self.born

    def births(self, now_ms: int) -> list[Message]:
        """NBIRTH (seq 0) and every DBIRTH with every metric, its alias, datatype and current value."""
        if not self.host_online:
            return []
        self.seq = 0
        node = Payload(timestamp=now_ms, seq=self._next_seq())
        for name, (alias, datatype) in self.node_metrics.items():
            metric = node.metrics.add(name=name, alias=alias, datatype=datatype, timestamp=now_ms)
            _set(metric, datatype, self.bd_seq if name == "bdSeq" else False)
        messages: list[Message] = [(self.topic("NBIRTH"), node.SerializeToString(), 0, False)]
        for device in self.devices.values():
            payload = Payload(timestamp=now_ms, seq=self._next_seq())
            for name, (alias, datatype) in device.metrics.items():
                metric = payload.metrics.add(name=name, alias=alias, datatype=datatype, timestamp=now_ms)
                _set(metric, datatype, device.values.get(name))
            messages.append((self.topic("DBIRTH", device.device_id), payload.SerializeToString(), 0, False))
            device.sent = dict(device.values)
            device.history = {}
        self.born = True
        return messages

    def on_state(self, payload: bytes, now_ms: int) -> list[Message]:
        """A STATE message of the primary host (Sparkplug 3.0 JSON {"online": .., "timestamp": ..})."""
        try:
            state = json.loads(payload)
            online, timestamp = state["online"], state["timestamp"]
        except (ValueError, KeyError, TypeError, IndexError):
            return []
        # the specification's types only: "false" is a true value to bool(), and a host that sends it is
        # not one to hold or release the data for
        if not isinstance(online, bool) or not isinstance(timestamp, int) or isinstance(timestamp, bool):
            return []
        if timestamp < self._state_timestamp:  # an older STATE than the last one: stale, ignored
            return []
        self._state_timestamp = timestamp
        was = self.host_online
        self.host_online = online
        if online and not was:
            return self.births(now_ms)
        if not online:
            self.born = False  # hold DATA until the host is back; then births and the held rows
        return []

    def on_ncmd(self, payload: bytes, now_ms: int) -> list[Message]:
        """An NCMD: `Node Control/Rebirth` = true publishes NBIRTH and every DBIRTH again."""
        return self.births(now_ms) if self.asks_rebirth(payload) else []

    def asks_rebirth(self, payload: bytes) -> bool:
        """Whether an NCMD's payload sets `Node Control/Rebirth` (by name, or by its alias) to true."""
        try:
            message = Payload.FromString(payload)
        except Exception:  # protobuf's DecodeError: a malformed command is ignored
            return False
        for metric in message.metrics:
            named = metric.name == REBIRTH or (not metric.name and metric.alias == self.node_metrics[REBIRTH][0])
            if named and metric.boolean_value:
                return True
        return False

    # ------------------------------------------------------------------ data

    def apply(self, event: dict[str, Any]) -> tuple[Device | None, dict[str, Any]]:
        """Take a committed event into the current values (what births show); returns its device and
        the metrics it set."""
        product_id, values, _ = metric_updates(event)
        device = self.devices.get(product_id) if product_id is not None else None
        if device is None:
            return None, {}
        if event.get("type") == "alert":
            alert = event["alert"]
            if alert.get("status") in ("OPEN", "ACKNOWLEDGED"):
                device.open_alerts[alert["id"]] = alert["status"]
            else:
                device.open_alerts.pop(alert["id"], None)
            values["alerts/open"] = len(device.open_alerts)
        device.values.update(values)
        return device, values

    def data(self, event: dict[str, Any], timestamp_ms: int, *, historical: bool) -> Message | None:
        """The DDATA of one event: aliases only, the event's own timestamp, only the metrics that changed
        (see the module's docstring); None when not born or nothing changed."""
        device, values = self.apply(event)
        if device is None or not self.born:
            return None
        previous = device.history if historical else device.sent
        payload = Payload(timestamp=timestamp_ms)
        for name, value in values.items():
            if name in previous and previous[name] == value and not name.endswith(("/value", "/mean")):
                continue
            previous[name] = value
            alias, datatype = device.metrics[name]
            metric = payload.metrics.add(alias=alias, datatype=datatype, timestamp=timestamp_ms)
            if historical:
                metric.is_historical = True
            _set(metric, datatype, value)
        if not payload.metrics:
            return None
        self.metrics_sent += len(payload.metrics)
        payload.seq = self._next_seq()
        return self.topic("DDATA", device.device_id), payload.SerializeToString(), 0, False

    def _next_seq(self) -> int:
        seq = self.seq
        self.seq = (seq + 1) % 256
        return seq


def _set(metric: Any, datatype: int, value: Any) -> None:
    """A metric's value by its datatype; None (not known yet, or not finite) is Sparkplug's is_null."""
    if value is None:
        metric.is_null = True
    elif datatype == DOUBLE:
        metric.double_value = float(value)
    elif datatype == BOOLEAN:
        metric.boolean_value = bool(value)
    elif datatype in (INT32,):
        metric.int_value = int(value) & 0xFFFFFFFF
    elif datatype == INT64:
        metric.long_value = int(value) & 0xFFFFFFFFFFFFFFFF
    else:
        metric.string_value = str(value)


def rebirth_command(now_ms: int) -> bytes:
    """The NCMD a host sends to ask for a rebirth (for tests and `probe`-like tools)."""
    payload = Payload(timestamp=now_ms)
    metric = payload.metrics.add(name=REBIRTH, datatype=BOOLEAN, timestamp=now_ms)
    metric.boolean_value = True
    return payload.SerializeToString()


def device_metric_names(characteristics: Iterable[str]) -> list[str]:
    """Every device metric name of a product with these characteristics, in alias order."""
    return [f"{c}/{s}" for c in characteristics for s, _ in CHARACTERISTIC_METRICS] + \
        [name for name, _ in DEVICE_METRICS]
