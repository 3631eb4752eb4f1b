"""MQTT gauges on a line broker: settings (the config's `type: mqtt`), source, worker, probe."""

from __future__ import annotations

from typing import TextIO

from gateway.config import Config
from gateway.sources.base import Binding, Sink, Source
from gateway.sources.mqtt.settings import KIND, MqttSettings
from gateway.sources.plugin import SourcePlugin


def build(settings: MqttSettings, bindings: list[Binding], sink: Sink) -> Source:
    from gateway.sources.mqtt.source import MqttSource

    return MqttSource(settings, bindings, sink)


async def probe(config: Config, settings: MqttSettings, address: str | None, out: TextIO, *,
                wait: float = 5.0) -> int:
    from gateway.sources.mqtt.probe import probe as probe_mqtt  # paho only when probing

    return await probe_mqtt(config, settings, address, out, wait=wait)


def reading_interval(settings: MqttSettings) -> float | None:
    return None  # gauges publish when a part is measured: no interval to judge staleness by


PLUGIN = SourcePlugin(
    kind=KIND, build=build, probe=probe, reading_interval=reading_interval,
    probe_address="MQTT a topic", probe_all="MQTT the configured topics", waits=True,
)
