"""The output registry: a fake output registered from the test (and taken out again after it) is built
by a real Gateway, started and stopped with it, gets every committed event through `publish` and shows
its stats in /healthz under its name. Without the registration the app knows nothing of it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.app import Gateway
from gateway.core.model import CharacteristicKey, Event, Measurement
from gateway.outputs.base import Output
from gateway.outputs.registry import OUTPUTS, OutputKind
from gateway.sources.registry import load_config
from tests.conftest import free_port
from tests.daemon_helpers import minimal_config, read_json, write_config


class Recorder(Output):
    """An output that keeps what it is given (a historian, a second broker, a file would send it on)."""

    name = "recorder"

    def __init__(self, gateway_name: str):
        self.gateway_name = gateway_name
        self.events: list[Event] = []
        self.started = self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    def publish(self, events: list[Event]) -> None:
        self.events.extend(events)

    def stats(self) -> dict[str, Any]:
        return {"events": len(self.events), "last_seq": self.events[-1].seq if self.events else None}


BUILT: list[Recorder] = []


def build_recorder(gateway: Any) -> Recorder:
    recorder = Recorder(gateway.config.gateway.name)
    BUILT.append(recorder)
    return recorder


@pytest.fixture
def recorder_kind() -> Iterator[OutputKind]:
    kind = OutputKind(Recorder, build_recorder)
    OUTPUTS.append(kind)  # the registration a new output's module would have in gateway/outputs/registry.py
    BUILT.clear()
    yield kind
    OUTPUTS.remove(kind)


def healthz(port: int) -> dict[str, Any]:
    return read_json(f"http://127.0.0.1:{port}/healthz")  # 503 while the Modbus source is down


def test_a_registered_output_runs_inside_the_gateway(tmp_path: Path, recorder_kind: OutputKind) -> None:
    port = free_port()
    config, _ = load_config(str(write_config(tmp_path, minimal_config(tmp_path, port=port))))

    async def scenario() -> None:
        gateway = Gateway(config)
        await gateway.start()
        try:
            (recorder,) = BUILT
            assert recorder.started and recorder.gateway_name == "TEST-LINE"
            assert [o.name for o in gateway.outputs][-1] == "recorder"
            key = CharacteristicKey(1, "diameter")
            for i in range(5):
                await gateway.pipeline.sink(Measurement(key, 10.0 + i * 0.01, time.time()))
            deadline = time.monotonic() + 10
            while len([e for e in recorder.events if e.type == "measurement"]) < 5 \
                    and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            measurements = [e for e in recorder.events if e.type == "measurement"]
            assert len(measurements) == 5, recorder.events
            seqs = [e.seq for e in recorder.events]
            assert seqs == sorted(seqs) and all(s > 0 for s in seqs)  # committed: numbered, in order

            assert gateway.health()["recorder"] == {"events": len(recorder.events), "last_seq": seqs[-1]}
            served = await asyncio.to_thread(healthz, port)
            assert served["recorder"]["events"] == len(recorder.events)
        finally:
            await gateway.stop()
        assert recorder.stopped

    asyncio.run(scenario())


def test_without_its_registration_the_app_knows_no_such_output(tmp_path: Path) -> None:
    config, _ = load_config(str(write_config(tmp_path, minimal_config(tmp_path))))
    gateway = Gateway(config)
    assert "recorder" not in gateway.health()


def test_a_registered_but_unconfigured_output_is_null_in_healthz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    config, _ = load_config(str(write_config(tmp_path, minimal_config(tmp_path))))
    monkeypatch.setattr("gateway.app.OUTPUTS", [OutputKind(Recorder, lambda gateway: None)])

    async def scenario() -> None:
        gateway = Gateway(config)
        await gateway.start()
        try:
            assert gateway.health()["recorder"] is None
            assert "recorder" not in [o.name for o in gateway.outputs]
        finally:
            await gateway.stop()

    asyncio.run(scenario())
