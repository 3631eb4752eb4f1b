"""The `type: mqtt` source in the config file: its settings, its address block, its sampling.

Read by gateway.config with the generic machinery (gateway.config.kinds.SourceKind); the running source
is gateway.sources.mqtt.source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from yaml.nodes import Node

from gateway.config.connections import (
    BACKOFF,
    CLIENT_ID,
    HOST,
    PORT,
    PROTOCOL,
    QOS,
    TLS,
    USERNAME,
    check_credentials,
)
from gateway.config.kinds import SourceKind
from gateway.config.loader import BAD, Convert, Reader, show
from gateway.config.model import MQTTTLS, Backoff
from gateway.config.values import duration, file_path, section, text


@dataclass(frozen=True)
class MqttSettings:
    """One `type: mqtt` entry of `sources:` (a line broker the gauges publish to)."""

    name: str
    host: str
    type: Literal["mqtt"] = "mqtt"
    port: int = 1883
    client_id: str = "spc-gateway-in"
    qos: Literal[0, 1, 2] = 1
    username: str | None = None
    password_file: str | None = None
    tls: MQTTTLS | None = None
    protocol: Literal["3.1.1", "5"] = "5"
    keepalive: float = 30.0
    backoff: Backoff = Backoff()


@dataclass(frozen=True)
class MqttAddress:
    """A characteristic's `mqtt:` block."""

    topic: str
    value: str | None = None  # dotted path into a JSON payload; None: the payload is a plain number
    timestamp: str | None = None  # dotted path to an ISO 8601 or epoch timestamp
    # attribute charts (p, np, c, u): dotted paths to the count and the sample size in a JSON payload
    count: str | None = None
    n: str | None = None
    # dotted path to the part number (short-run SPC): not a key of the block, the characteristic's
    # `part_from: {field: ...}` put here by the source
    part: str | None = None
    is_part: bool = False  # the part channel itself: the value (or the whole payload) is the part number


SPEC = {
    "host": HOST, "port": PORT, "client_id": CLIENT_ID, "qos": QOS,
    "username": USERNAME, "password_file": file_path, "tls": TLS, "protocol": PROTOCOL,
    "keepalive": duration(), "backoff": BACKOFF,
}


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
    if value is not BAD and value.split(".")[0] == "$":  # JSONPath's root: our paths start at the root
        return r.error(node, path, f"{show(value)} starts with JSONPath's '$'",
                       f"the keys alone, from the top of the payload: {value[2:] or 'reading.value'}")
    return value


def check_counts(r: Reader, values: dict[str, Any], path: str) -> bool:
    """count and n are read from a JSON payload, instead of a value."""
    if "value" in values and "count" in values:
        r.at(f"{path}.value", "a count characteristic reads count and n, not a value",
             "either value (a measured value), or count and n (an attribute chart)")
        return False
    if "n" in values and "count" not in values and f"{path}.count" not in r.marks:
        r.at(f"{path}.n", "n is the sample size of a count: it needs count too", "count and n, or neither")
        return False
    return True


ADDRESS = section(MqttAddress, {"topic": topic_filter, "value": json_path, "timestamp": json_path,
                                "count": json_path, "n": json_path}, required=("topic",), check=check_counts)


def address(context: object) -> Convert:
    return ADDRESS


def counts(address: object) -> dict[str, str]:
    """What a count address gives an attribute chart (SourceKind.counts)."""
    if not isinstance(address, MqttAddress) or address.count is None:
        return {}
    return {"count": "count", **({"n": "n"} if address.n is not None else {})}


def broker_login(settings: MqttSettings) -> tuple[str, int, str]:
    return settings.host, settings.port, settings.client_id


KIND = SourceKind(
    type="mqtt", label="MQTT", settings=MqttSettings, spec=SPEC, required=("name", "host"),
    check=check_credentials, address=address, sampling_modes=("per_message", "on_change"),
    default_sampling="per_message", polled=False, broker_login=broker_login, part_field=True,
    counts=counts, counts_example="{topic: line3/visual/result, count: defects, n: inspected}",
)
