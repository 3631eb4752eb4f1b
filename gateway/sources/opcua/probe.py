"""`spc-gateway probe` for an OPC UA source: browse the server's Objects tree, or read one node.

Without an address it prints the server state and namespaces, then the Objects tree below the
standard (ns=0) nodes: every node id, and for variables their value and data type, so a technician
finds the `node_id` of each characteristic at the machine. The walk is bounded (depth and count),
because a plant server can hold tens of thousands of nodes. With a node id (or a characteristic's
name) it reads that variable, or browses below that object.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, TextIO

from asyncua import Client, ua

from gateway.config import Config
from gateway.sources.counter_pair import CounterPair
from gateway.sources.opcua.settings import OpcUaAddress, OpcUaSettings
from gateway.sources.opcua.source import _close, _describe, _status_name, build_client
from gateway.sources.plugin import characteristics_of

MAX_DEPTH = 5  # levels below the starting node
MAX_NODES = 200  # nodes printed at most
EXAMPLE_NODE = "ns=2;s=Line3.CMM.Shaft.OD"


@dataclass
class _Entry:
    depth: int
    reference: ua.ReferenceDescription
    value: ua.DataValue | None = None


async def probe(config: Config, source_cfg: OpcUaSettings, address: str | None, out: TextIO, *,
                max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES) -> int:
    """Browse or read now and print what came back; 0 ok, 1 failed."""
    # a characteristic's name stands for its node id, as for Modbus
    by_name = {c.name: c.address.node_id for c in characteristics_of(config, source_cfg.name)
               if isinstance(c.address, OpcUaAddress)}
    for c in characteristics_of(config, source_cfg.name):  # count data: both counters, by name (good) and (bad)
        if isinstance(c.address, CounterPair):
            for side, counter in (("good", c.address.good), ("bad", c.address.bad)):
                if isinstance(counter, OpcUaAddress):
                    by_name[f"{c.name}.{side}"] = counter.node_id
    labels = {node_id: name for name, node_id in by_name.items()}
    node_text = by_name.get(address, address) if address is not None else None
    if node_text is not None:
        try:
            node_id = ua.NodeId.from_string(node_text)
        except Exception:
            out.write(f"{address}: neither a characteristic of {source_cfg.name} nor a valid node id "
                      f"(example: {EXAMPLE_NODE})\n")
            return 1
    try:
        client = await build_client(source_cfg)
        await asyncio.wait_for(client.connect(), source_cfg.timeout * 3)
    except Exception as exc:
        out.write(f"{source_cfg.name}: {source_cfg.endpoint}: {_describe(exc)}\n")
        return 1
    try:
        if node_text is None:
            await _server_summary(client, source_cfg, out)
            out.write("Objects (the standard ns=0 nodes left out):\n")
            return await _browse(client, client.nodes.objects, labels, out, max_depth, max_nodes, skip_ns0=True)
        node = client.get_node(node_id)
        try:
            node_class = await node.read_node_class()
        except ua.UaStatusCodeError as exc:
            out.write(f"{node_text}: the server has no such node ({type(exc).__name__})\n")
            return 1
        if node_class != ua.NodeClass.Variable:
            out.write(f"{node_text} ({node_class.name}):\n")
            return await _browse(client, node, labels, out, max_depth, max_nodes, skip_ns0=False)
        data = await node.read_data_value(raise_on_bad_status=False)
        label = f"{address} ({node_text})" if address != node_text else node_text
        value = data.Value.Value if data.Value is not None else None
        variant = data.Value.VariantType.name if data.Value is not None else "-"
        out.write(f"{label}: value={value!r} type={variant} status={_status_name(data.StatusCode)} "
                  f"source_time={data.SourceTimestamp} server_time={data.ServerTimestamp}\n")
        return 0 if data.StatusCode is None or data.StatusCode.is_good() else 1
    except Exception as exc:
        out.write(f"{source_cfg.name}: {_describe(exc)}\n")
        return 1
    finally:
        await _close(client)


async def _server_summary(client: Client, source_cfg: OpcUaSettings, out: TextIO) -> None:
    state = await client.nodes.server_state.read_value()
    namespaces = await client.get_namespace_array()
    out.write(f"{source_cfg.name}: {source_cfg.endpoint}: server state {ua.ServerState(state).name}\n")
    for index, uri in enumerate(namespaces):
        out.write(f"  ns={index}  {uri}\n")


async def _browse(client: Client, start: Any, labels: dict[str, str], out: TextIO, max_depth: int,
                  max_nodes: int, *, skip_ns0: bool) -> int:
    entries: list[_Entry] = []
    seen: set[str] = {start.nodeid.to_string()}
    truncated = deeper = False

    async def walk(node: Any, depth: int) -> None:
        nonlocal truncated, deeper
        for reference in await node.get_children_descriptions():
            if skip_ns0 and depth == 1 and reference.NodeId.NamespaceIndex == 0:
                continue  # Server, Aliases...: the same on every server, and large
            key = reference.NodeId.to_string()
            if key in seen:
                continue  # a node reached twice (references may form cycles)
            if len(entries) >= max_nodes:
                truncated = True
                return
            seen.add(key)
            entries.append(_Entry(depth, reference))
            if reference.NodeClass == ua.NodeClass.Object:
                if depth >= max_depth:
                    deeper = True
                else:
                    await walk(client.get_node(reference.NodeId), depth + 1)

    await walk(start, 1)
    variables = [e for e in entries if e.reference.NodeClass == ua.NodeClass.Variable]
    if variables:  # every value in one request, not one round trip per node
        values = await client.read_attributes([client.get_node(e.reference.NodeId) for e in variables])
        for entry, value in zip(variables, values, strict=True):
            entry.value = value
    for entry in entries:
        out.write(_line(entry, labels) + "\n")
    if not entries:
        out.write("  (nothing below it)\n")
    if truncated:
        out.write(f"  ... more nodes not shown (at most {max_nodes}); give a node id above to browse below it\n")
    if deeper:
        out.write(f"  ... deeper levels not shown (at most {max_depth}); give a node id above to browse below it\n")
    return 0


def _line(entry: _Entry, labels: dict[str, str]) -> str:
    reference = entry.reference
    node_id = reference.NodeId.to_string()
    text = f"{'  ' * entry.depth}{reference.BrowseName.Name}  {node_id}"
    data = entry.value
    if reference.NodeClass != ua.NodeClass.Variable:
        text += f"  ({reference.NodeClass.name})"
    elif data is not None:
        if data.StatusCode is not None and not data.StatusCode.is_good():
            text += f"  status={_status_name(data.StatusCode)}"
        else:
            variant = data.Value.VariantType.name if data.Value is not None else "-"
            value = data.Value.Value if data.Value is not None else None
            text += f"  = {_short(value)}  {variant}"
    if node_id in labels:
        text += f"  <- characteristic {labels[node_id]}"
    return text


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
