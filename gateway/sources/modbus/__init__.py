"""Modbus TCP and RTU gauges: settings (the config's `type: modbus`), source, codec, probe."""

from __future__ import annotations

from typing import Any, TextIO

from gateway.config import Config
from gateway.sources.base import Binding, Sink, Source
from gateway.sources.modbus.settings import ADDRESS_FORM, KIND, ModbusSettings
from gateway.sources.plugin import SourcePlugin


def build(settings: ModbusSettings, bindings: list[Binding], sink: Sink) -> Source:
    from gateway.sources.modbus.source import ModbusSource  # pymodbus only when a source uses it

    return ModbusSource(settings, bindings, sink)


async def probe(config: Config, settings: ModbusSettings, address: str | None, out: TextIO, **_: Any) -> int:
    from gateway.sources.modbus.probe import probe_modbus

    return await probe_modbus(config, settings, address, out)


def reading_interval(settings: ModbusSettings) -> float | None:
    return settings.poll_interval


PLUGIN = SourcePlugin(
    kind=KIND, build=build, probe=probe, reading_interval=reading_interval,
    probe_address=f"Modbus {ADDRESS_FORM}", probe_all="Modbus every characteristic of the source",
)
