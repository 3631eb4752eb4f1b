"""`probe` of an MQTT source against a real mosquitto: values and timestamps taken with the configured
paths, exit 1 when nothing arrives or nothing can be read, and an unknown source type refused."""

from __future__ import annotations

import dataclasses
import io
import subprocess
from pathlib import Path

import pytest

from gateway.config import Config
from gateway.sources.registry import load_config
from gateway.tools import probe

pytestmark = [pytest.mark.timeout(40), pytest.mark.anyio]

CONFIG = """\
gateway: {{name: T}}
storage: {{path: {db}}}
sources:
  - {{name: broker, type: mqtt, host: 127.0.0.1, port: {port}, client_id: t-in}}
products:
  - id: 1
    code: P
    name: P
    characteristics:
      - name: runout
        source: broker
        mqtt: {{topic: line3/runout, value: reading.value, timestamp: reading.ts}}
        spec: {{lsl: 0, usl: 0.05}}
      - name: bore
        source: broker
        mqtt: {{topic: line3/bore}}
        spec: {{lsl: 9, usl: 11}}
"""


def load(tmp_path: Path, port: int) -> Config:
    path = tmp_path / "gateway.yaml"
    path.write_text(CONFIG.format(db=tmp_path / "db.sqlite3", port=port))
    return load_config(str(path))[0]


def publish_retained(port: int, topic: str, payload: str) -> None:
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-r", "-t", topic,
                    "-m", payload], check=True, timeout=10)


async def run_probe(config: Config, address: str | None, wait: float = 2.0) -> tuple[int, str]:
    out = io.StringIO()
    status = await probe.probe_source(config, "broker", address, out, wait=wait)
    return status, out.getvalue()


async def test_probe_decodes_with_the_configured_paths(tmp_path: Path, mosquitto) -> None:
    config = load(tmp_path, mosquitto.port)
    publish_retained(mosquitto.port, "line3/runout", '{"reading": {"value": 0.0123, "ts": "2026-03-04T05:06:07Z"}}')
    publish_retained(mosquitto.port, "line3/bore", "10.004")

    status, out = await run_probe(config, None)
    assert status == 0, out
    assert ("  runout: value 0.0123 (value 'reading.value'), timestamp 2026-03-04T05:06:07+00:00 "
            "(from 'reading.ts' = '2026-03-04T05:06:07Z')") in out
    assert "  bore: value 10.004 (plain number), no timestamp path: the arrival time is used" in out

    status, one = await run_probe(config, "runout")  # a characteristic's name stands for its topic
    assert status == 0 and "runout: value 0.0123" in one and "bore" not in one
    status, both = await run_probe(config, "line3/#")  # a filter: decoded for each characteristic it feeds
    assert status == 0 and "  runout: value 0.0123" in both and "  bore: value 10.004" in both


async def test_probe_fails_when_nothing_arrives_or_nothing_is_readable(tmp_path: Path, mosquitto) -> None:
    config = load(tmp_path, mosquitto.port)
    status, out = await run_probe(config, "line3/runout", wait=0.5)
    assert status == 1
    assert f"connected to 127.0.0.1:{mosquitto.port}, but nothing arrived on line3/runout within 0.5 s" in out

    publish_retained(mosquitto.port, "line3/runout", '{"value": 0.0123}')  # not where the config looks
    status, out = await run_probe(config, "line3/runout")
    assert status == 1
    assert "runout (value 'reading.value'): skipped / 무시: no 'reading.value' in the JSON payload" in out
    assert "no value could be taken from them" in out


async def test_probe_says_when_the_broker_cannot_be_reached(tmp_path: Path) -> None:
    from tests.conftest import free_port

    port = free_port()  # nobody listens there
    status, out = await run_probe(load(tmp_path, port), None, wait=0.1)
    assert status == 1 and f"127.0.0.1:{port}: connection failed" in out


async def test_probe_refuses_an_unknown_source_type(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A type no plugin is registered for is an error of its own, not handed to the MQTT probe (the
    # if-chain before the registry ended with it)
    from gateway.sources.mqtt import probe as mqtt_probe

    async def not_this_one(*args, **kwargs):
        raise AssertionError("the MQTT probe ran for a source that is not MQTT")

    monkeypatch.setattr(mqtt_probe, "probe", not_this_one)
    config = load(tmp_path, 1883)
    odd = dataclasses.replace(config, sources=(dataclasses.replace(config.sources[0], type="bacnet"),))
    out = io.StringIO()
    assert await probe.probe_source(odd, "broker", None, out, wait=0.1) == 1
    assert out.getvalue() == "broker: probe cannot read a source of type 'bacnet' (it reads modbus, opcua and mqtt)\n"


async def test_probe_says_the_gateway_would_refuse_a_time_it_cannot_store(tmp_path: Path, mosquitto) -> None:
    config = load(tmp_path, mosquitto.port)
    publish_retained(mosquitto.port, "line3/runout", '{"reading": {"value": 0.01, "ts": 1e300}}')
    status, out = await run_probe(config, "runout", wait=1.0)
    assert status == 1 and "is not a date the gateway can store" in out and "Traceback" not in out, out
