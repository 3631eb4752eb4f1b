"""OPC UA gauges (subscribe or poll): settings (the config's `type: opcua`), source, probe."""

from __future__ import annotations

from typing import Any, TextIO

from gateway.config import Config
from gateway.sources.base import Binding, Sink, Source
from gateway.sources.opcua.settings import KIND, OpcUaSettings
from gateway.sources.plugin import SourcePlugin


def build(settings: OpcUaSettings, bindings: list[Binding], sink: Sink) -> Source:
    from gateway.sources.opcua.source import OpcUaSource  # asyncua only when a source uses it

    return OpcUaSource(settings, bindings, sink)


async def probe(config: Config, settings: OpcUaSettings, address: str | None, out: TextIO, **_: Any) -> int:
    from gateway.sources.opcua.probe import probe as probe_opcua

    return await probe_opcua(config, settings, address, out)


def reading_interval(settings: OpcUaSettings) -> float | None:
    """A subscription reports at its sampling interval, a poll at its poll interval."""
    return settings.sampling_interval if settings.mode == "subscribe" else settings.poll_interval


PLUGIN = SourcePlugin(
    kind=KIND, build=build, probe=probe, reading_interval=reading_interval,
    probe_address="OPC UA a node id (a variable is read, an object browsed)",
    probe_all="OPC UA the server's Objects tree",
)
