"""The `type: opcua` source in the config file: its settings, its address block, its sampling.

Read by gateway.config with the generic machinery (gateway.config.kinds.SourceKind); the running source
is gateway.sources.opcua.source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from yaml.nodes import Node

from gateway.config.connections import BACKOFF, USERNAME, check_credentials
from gateway.config.kinds import SourceKind
from gateway.config.loader import BAD, Convert, Reader, show
from gateway.config.model import Backoff
from gateway.config.values import choice, duration, file_path, section, text
from gateway.sources.counter_pair import either, pair_block, pair_counts

NODE_ID = re.compile(r"^(?:(?:ns=\d+|nsu=[^;]+);)?(?:i=\d+|s=.+|g=[0-9A-Fa-f-]{36}|b=.+)$")


@dataclass(frozen=True)
class OpcUaSecurity:
    policy: Literal["None", "Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss"] = "None"
    mode: Literal["None", "Sign", "SignAndEncrypt"] = "None"
    certificate: str | None = None
    private_key: str | None = None
    server_certificate: str | None = None


@dataclass(frozen=True)
class OpcUaSettings:
    """One `type: opcua` entry of `sources:`."""

    name: str
    endpoint: str
    type: Literal["opcua"] = "opcua"
    mode: Literal["subscribe", "poll"] = "subscribe"
    sampling_interval: float = 0.5
    poll_interval: float = 1.0
    timeout: float = 4.0
    security: OpcUaSecurity = OpcUaSecurity()
    username: str | None = None
    password_file: str | None = None
    backoff: Backoff = Backoff()


@dataclass(frozen=True)
class OpcUaAddress:
    """A characteristic's `opcua:` block (or its part counter)."""

    node_id: str


def endpoint(r: Reader, node: Node, path: str) -> Any:
    value = text(r, node, path)
    if value is BAD:
        return BAD
    parts = urlsplit(value)
    try:
        port_ok = parts.port is None or 1 <= parts.port <= 65535
    except ValueError:
        port_ok = False
    if parts.scheme != "opc.tcp" or not parts.hostname or not port_ok:
        return r.error(node, path, f"{show(value)} is not an OPC UA endpoint",
                       "opc.tcp://HOST:PORT[/path], e.g. opc.tcp://192.168.10.30:4840")
    return value


def check_security(r: Reader, values: dict[str, Any], path: str) -> bool:
    policy, mode = values.get("policy", "None"), values.get("mode", "None")
    if f"{path}.policy" in r.marks and "policy" not in values or f"{path}.mode" in r.marks and "mode" not in values:
        return True  # one of them was wrong already
    if policy == "None" and mode != "None":
        r.at(f"{path}.mode", f"mode {mode} needs a security policy", "set policy, e.g. Basic256Sha256, or mode None")
        return False
    passed = True
    if policy != "None":
        if mode == "None":
            r.at(f"{path}.mode" if "mode" in values else f"{path}.policy",
                 f"policy {policy} needs mode Sign or SignAndEncrypt", "Sign or SignAndEncrypt")
            passed = False
        for key in ("certificate", "private_key"):
            if key not in values and f"{path}.{key}" not in r.marks:
                r.at(f"{path}.policy", f"policy {policy} needs a client {key.replace('_', ' ')}",
                     f"set {key} to the client's file", report_as=f"{path}.{key}")
                passed = False
    return passed


SECURITY = section(OpcUaSecurity, {
    "policy": choice("None", "Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss"),
    "mode": choice("None", "Sign", "SignAndEncrypt"), "certificate": file_path, "private_key": file_path,
    "server_certificate": file_path,
}, check=check_security)


def check_opcua(r: Reader, values: dict[str, Any], path: str) -> bool:
    passed = check_credentials(r, values, path)
    if "username" in values and "password_file" not in values and f"{path}.password_file" not in r.marks:
        r.at(f"{path}.username", "username is given without password_file", "both, or neither")
        passed = False
    return passed


SPEC = {
    "endpoint": endpoint, "mode": choice("subscribe", "poll"),
    "sampling_interval": duration(above=None, lo=0), "poll_interval": duration(), "timeout": duration(),
    "security": SECURITY, "username": USERNAME, "password_file": file_path, "backoff": BACKOFF,
}


def node_id(r: Reader, node: Node, path: str) -> Any:
    value = text(r, node, path)
    if value is not BAD and not NODE_ID.match(value):
        return r.error(node, path, f"{show(value)} is not an OPC UA node id",
                       'in quotes, e.g. "ns=2;s=Line3.CMM.Shaft.OD" or "ns=3;i=1001"')
    return value


ADDRESS = section(OpcUaAddress, {"node_id": node_id}, required=("node_id",))


PAIR = pair_block(ADDRESS)


def address(context: object) -> Convert:
    """A node that holds a measured value, or a counter pair (good and bad) for an attribute chart."""
    return either(PAIR, ADDRESS, "node_id")


def counter_address(context: object, block: Node | None) -> Convert:
    return ADDRESS


@dataclass(frozen=True)
class OpcUaWrite:
    """Where an `outputs:` entry writes on an OPC UA source: one variable, with its on and off values."""

    node_id: str
    value_on: bool | int | float | str = True
    value_off: bool | int | float | str = False


def write_value(r: Reader, node: Node, path: str) -> Any:
    """true/false, a number or text: written in the variable's own data type."""
    value = r.scalar(node, path)
    if value is BAD or isinstance(value, bool | int | float | str):
        return value
    return r.error(node, path, f"{show(value)} cannot be written", "true, false, a number or text")


WRITE = section(lambda source, node, **values: OpcUaWrite(node, **values),
                {"source": text, "node": node_id, "value_on": write_value, "value_off": write_value},
                required=("source", "node"))


def write_target(context: object) -> Convert:
    """An output's `write:` block on an OPC UA source: `node` and optional value_on/value_off."""
    def convert(r: Reader, node: Node, path: str) -> Any:
        return WRITE(r, node, path)
    return convert


KIND = SourceKind(
    type="opcua", label="OPC UA", settings=OpcUaSettings, spec=SPEC, required=("name", "endpoint"),
    check=check_opcua, address=address, sampling_modes=("on_change", "every_poll"), default_sampling="on_change",
    polled=True, counter=counter_address, counter_example='{node_id: "ns=2;s=Line3.CMM.PartCount"}',
    write=write_target,
    counts=pair_counts, counts_example='{good: {node_id: "ns=2;s=Leak.Good"}, bad: {node_id: "ns=2;s=Leak.Bad"}, '
    "every: 1h}",
)
