"""The sections of the config file: which keys each one has, their types, defaults and cross-checks.

Each section is a key -> converter table (see `gateway.config.loader`); checks that involve several
keys follow the table. A wrong value is reported once and left out, so the checks that do not depend
on it still run and the technician sees every problem in one pass.
"""

from __future__ import annotations

import difflib
import re
import zoneinfo
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from yaml.nodes import MappingNode, Node

from gateway.config.connections import (
    CLIENT_ID,
    HOST,
    PORT,
    PROTOCOL,
    QOS,
    SOURCE_NAME,
    TLS,
    USERNAME,
    check_credentials,
)
from gateway.config.kinds import SourceKind
from gateway.config.loader import BAD, Reader, is_null, key_node, kind, one_of, peek, show
from gateway.config.model import (
    AuthEntry,
    GatewaySection,
    NorthboundMQTT,
    NorthboundSection,
    NorthboundSparkplug,
    ServerSection,
    ServerTLS,
    StorageSection,
)
from gateway.config.opcua_server import OPCUA_SERVER
from gateway.config.outputs import outputs_list
from gateway.config.products import Known, products_list
from gateway.config.values import (
    choice,
    duration,
    file_path,
    integer,
    list_of,
    listen,
    name,
    number,
    section,
    size,
    storage_path,
    text,
)

# -------------------------------------------------------------------- gateway, storage, server

def timezone(r: Reader, node: Node, path: str) -> Any:
    value = text(r, node, path)
    if value is BAD:
        return BAD
    try:
        zoneinfo.ZoneInfo(value)
        return value
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        close = difflib.get_close_matches(value, sorted(zoneinfo.available_timezones()), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return r.error(node, path, f"unknown time zone {show(value)}{hint}",
                       "a tz database name such as Asia/Seoul, Europe/Berlin or UTC")


def log_level(r: Reader, node: Node, path: str) -> Any:
    value = r.scalar(node, path)
    if isinstance(value, str):
        value = value.upper()
    if value not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        return BAD if value is BAD else r.error(node, path, f"{show(value)} is not a log level",
                                                "DEBUG, INFO, WARNING or ERROR")
    return value


GATEWAY = section(GatewaySection, {
    "name": name, "language": choice("ko", "en"), "timezone": timezone, "log_level": log_level,
}, required=("name",))

STORAGE = section(StorageSection, {
    "path": storage_path, "retention": duration(), "max_size": size(lo=1 << 20),
    "batch_max": integer(1, 100_000), "flush_interval": duration(above=None, lo=0),
}, required=("path",))


def origin(r: Reader, node: Node, path: str) -> Any:
    value = text(r, node, path)
    if value is BAD:
        return BAD
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("",) or parts.query:
        return r.error(node, path, f"{show(value)} is not an origin",
                       "scheme://host[:port] as the browser shows it, e.g. http://line3-hmi.local:8000")
    return value


AUTH_ENTRY = section(AuthEntry, {"name": name, "role": choice("viewer", "operator"), "token_file": file_path},
                      required=("name", "role", "token_file"))


def check_server(r: Reader, values: dict[str, Any], path: str) -> bool:
    seen: dict[str, int] = {}
    passed = True
    for i, entry in enumerate(values.get("auth", ())):
        if entry.name in seen:
            r.at(f"{path}.auth[{i}].name", f"duplicate auth name {show(entry.name)} (also auth[{seen[entry.name]}])",
                 "each client its own name")
            passed = False
        seen.setdefault(entry.name, i)
    return passed


SERVER = section(ServerSection, {
    "listen": listen, "allowed_origins": list_of(origin, unique=True), "auth": list_of(AUTH_ENTRY),
    "tls": section(ServerTLS, {"certificate": file_path, "private_key": file_path},
                    required=("certificate", "private_key")),
    "max_connections": integer(1, 100_000), "client_queue": integer(1, 1_000_000),
    "max_frame": size(lo=1024), "commands_per_second": number(above=0), "ping_interval": duration(),
    "replay_limit": integer(0),
}, check=check_server)

# -------------------------------------------------------------------- northbound

def topic_prefix(r: Reader, node: Node, path: str) -> Any:
    value = text(r, node, path, 200)  # the whole topic adds a type, a product code and a name
    if value is not BAD and (re.search(r"[+#\s]", value) or value.startswith("/") or value.endswith("/")):
        return r.error(node, path, f"{show(value)} is not a topic prefix",
                       "topic levels separated by '/', no wildcards, spaces or leading/trailing '/'")
    return value


def check_northbound_mqtt(r: Reader, values: dict[str, Any], path: str) -> bool:
    passed = check_credentials(r, values, path)
    low, high = values.get("reconnect_min", 1.0), values.get("reconnect_max", 30.0)
    if low > high:
        r.at(f"{path}.reconnect_min", f"reconnect_min {low:g} s is more than reconnect_max {high:g} s",
             "reconnect_min <= reconnect_max")
        passed = False
    return passed


def sparkplug_id(r: Reader, node: Node, path: str) -> Any:
    """A Sparkplug group, edge node or host id: one topic level (Sparkplug 3.0 forbids '+', '/', '#')."""
    value = text(r, node, path, 100)
    if value is not BAD and (not value or re.search(r"[+/#\s]", value)):
        return r.error(node, path, f"{show(value)} is not a Sparkplug id",
                       "one topic level: letters, digits, '-', '_', '.', no '+', '/', '#' or spaces")
    return value


SPARKPLUG = section(NorthboundSparkplug, {"group_id": sparkplug_id, "edge_node_id": sparkplug_id,
                                          "primary_host_id": sparkplug_id},
                    required=("group_id", "edge_node_id"))
PUBLISH = choice("alert", "capability", "violation", "measurement", "subgroup")
NORTHBOUND = section(NorthboundSection, {"mqtt": section(NorthboundMQTT, {
    "host": HOST, "port": PORT, "client_id": CLIENT_ID, "username": USERNAME, "password_file": file_path,
    "tls": TLS, "topic_prefix": topic_prefix, "qos": QOS, "publish": list_of(PUBLISH, unique=True),
    "buffer_limit": size(lo=1 << 20), "protocol": PROTOCOL, "keepalive": duration(),
    "max_inflight": integer(1, 65535), "reconnect_min": duration(), "reconnect_max": duration(),
}, required=("host",), check=check_northbound_mqtt), "sparkplug": SPARKPLUG}, required=("mqtt",))

# -------------------------------------------------------------------- sources

def sources_list(r: Reader, node: Node, path: str, kinds: Mapping[str, SourceKind]) -> tuple[Any, Known]:
    """The sources, and name -> (kind, context) of every source whose name and type could be read.

    The names are None when the list itself is unusable (then characteristics skip the source check).
    """
    items = r.sequence(node, path)
    known: dict[str, tuple[SourceKind, object]] = {}
    if items is None:
        return BAD, None
    if not items:
        return r.error(node, path, "no sources", f"at least one source: {one_of(kinds)}"), known
    sources: list[Any] = []
    first: dict[str, str] = {}
    for item, item_path in items:
        source_type, source_name = peek(item, "type"), peek(item, "name")
        duplicate = isinstance(source_name, str) and source_name in first
        if duplicate:
            r.problem(key_node(item, "name"), f"{item_path}.name",  # type: ignore[arg-type]
                      f"duplicate source name {show(source_name)} (also {first[source_name]})",
                      "each source its own name")
        elif isinstance(source_name, str):
            first[source_name] = item_path
        if source_type not in kinds:
            where = key_node(item, "type")
            if not isinstance(item, MappingNode):
                r.error(item, item_path, f"expected a mapping of keys, got {kind(item)}")
            elif where is None:
                r.error(item, f"{item_path}.type", "is required", one_of(kinds))
            else:
                close = difflib.get_close_matches(str(source_type), list(kinds), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                r.error(where, f"{item_path}.type", f"{show(source_type)} is not a source type{hint}",
                        one_of(kinds))
            sources.append(BAD)
            continue
        source_kind = kinds[source_type]
        spec = {"name": SOURCE_NAME, "type": text, **source_kind.spec}
        sources.append(BAD if duplicate else section(source_kind.settings, spec, source_kind.required,
                                                     source_kind.check)(r, item, item_path))
        if isinstance(source_name, str) and not duplicate:
            known[source_name] = (source_kind, source_kind.context(item))
    return (BAD if any(s is BAD for s in sources) else tuple(sources)), known

# -------------------------------------------------------------------- the whole file

TOP = ("gateway", "storage", "server", "northbound", "sources", "products", "outputs", "opcua_server")


def build_config(r: Reader, root: Node, kinds: Iterable[SourceKind],
                 alert_types: Iterable[str] | None = None) -> dict[str, Any] | None:
    """Config keyword arguments from the root node, or None when anything was wrong.

    `kinds` are the source protocols the file may use (gateway.sources.registry gives them);
    `alert_types` the alert types `outputs:` may name (None: not checked).
    """
    by_type = {k.type: k for k in kinds}
    if not isinstance(root, MappingNode):
        r.error(root, "(top level)", f"expected a mapping of sections, got {kind(root)}",
                "gateway, storage, sources, products and optionally server, northbound")
        return None
    items = r.mapping(root, "", TOP)
    if items is None:
        return None
    values: dict[str, Any] = {}
    for key in ("gateway", "storage", "sources", "products"):
        if key not in items or is_null(items[key]):
            r.problem(items.get(key, root) if key in items else (1, 1), key,
                      "is required" if key not in items else "needs a value",
                      "see config/gateway.example.yaml")
            values[key] = BAD
    converters = {"gateway": GATEWAY, "storage": STORAGE, "server": SERVER, "northbound": NORTHBOUND}
    converters["opcua_server"] = OPCUA_SERVER
    for key, convert in converters.items():
        if key in items and not is_null(items[key]):
            values[key] = convert(r, items[key], key)
    known: Known = None
    if "sources" in items and not is_null(items["sources"]):
        values["sources"], known = sources_list(r, items["sources"], "sources", by_type)
    if "products" in items and not is_null(items["products"]):
        values["products"] = products_list(r, items["products"], "products", known, by_type)
    if "outputs" in items and not is_null(items["outputs"]):
        values["outputs"] = outputs_list(r, items["outputs"], "outputs", known, by_type, alert_types,
                                         values.get("products"))
    _client_ids(r, values, by_type)
    if r.ok(values) and not any(p.severity == "error" for p in r.problems):
        _warnings(r, values)
        return values
    return None


def _client_ids(r: Reader, values: dict[str, Any], kinds: Mapping[str, SourceKind]) -> None:
    """Two MQTT connections with one client_id on one broker: each login makes the broker drop the
    other (the MQTT rule for a repeated client id), so both reconnect and kick each other off forever.

    The broker is compared as written (host without case or trailing dot, and port): two spellings
    of one machine (localhost and 127.0.0.1) are not caught.
    """
    clients: list[tuple[str, str, int, str]] = []  # (key path, host, port, client_id)
    northbound = values.get("northbound")
    if isinstance(northbound, NorthboundSection):
        mqtt = northbound.mqtt
        clients.append(("northbound.mqtt", mqtt.host, mqtt.port, mqtt.client_id))
    sources = values.get("sources")
    if isinstance(sources, tuple):
        for i, source in enumerate(sources):
            login = kinds[source.type].broker_login
            broker = login(source) if login is not None else None
            if broker is not None:
                clients.append((f"sources[{i}]", *broker))
    first: dict[tuple[str, int, str], str] = {}
    for path, host, port, client_id in clients:
        key = (host.lower().rstrip("."), port, client_id)
        if key not in first:
            first[key] = path
            continue
        where = f"{path}.client_id" if f"{path}.client_id" in r.marks else f"{path}.host"
        r.at(where, f"client_id {show(client_id)} is also used by {first[key]} on the same broker "
             f"{host}:{port}; the broker would keep dropping one of the two connections",
             "each MQTT connection to one broker its own client_id", report_as=f"{path}.client_id")


def _warnings(r: Reader, values: dict[str, Any]) -> None:
    """Things that work but are probably not meant (the config still loads)."""
    server = values.get("server", ServerSection())
    if not server.auth and server.listen.host not in ("127.0.0.1", "localhost", "::1"):
        r.at("server.listen" if "server.listen" in r.marks else "server",
             f"no auth entries while listening on {server.listen.host}: anyone who reaches port "
             f"{server.listen.port} can acknowledge and resolve alerts",
             "add server.auth entries, or listen on 127.0.0.1", "warning")
    used = {c.source for p in values["products"] for c in p.characteristics}
    used |= {output.write.source for output in values.get("outputs", ())}
    for i, source in enumerate(values["sources"]):
        if source.name not in used:
            r.at(f"sources[{i}].name", f"source {show(source.name)} is not used by any characteristic",
                 "remove it, or point a characteristic's source at it", "warning")
