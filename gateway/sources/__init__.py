"""Gauge sources: one module per protocol, all behind `base.Source`."""

from __future__ import annotations

from gateway.config import Source as SourceConfig
from gateway.sources.base import Binding, Sink, Source


def build_source(config: SourceConfig, bindings: list[Binding], sink: Sink) -> Source:
    """The running source for one `sources:` entry; protocol libraries are imported only when used."""
    if config.type == "modbus":
        from gateway.sources.modbus.source import ModbusSource

        return ModbusSource(config, bindings, sink)
    if config.type == "opcua":
        from gateway.sources.opcua.source import OpcUaSource

        return OpcUaSource(config, bindings, sink)
    if config.type == "mqtt":
        from gateway.sources.mqtt.source import MqttSource

        return MqttSource(config, bindings, sink)
    raise ValueError(f"source {config.name}: unknown type {config.type!r} (allowed: modbus, opcua, mqtt)")
