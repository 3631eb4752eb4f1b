"""A counter pair through the real daemon (issue 15 item 2): a Modbus PLC's good and bad counters become
samples of a p chart, stored with count and n; a PLC restart is in /healthz and the log, and no sample
is negative."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
from pathlib import Path

import pytest

from gateway.sim.simulator import ModbusSimulator, PlcMemory
from tests.conftest import free_port
from tests.daemon_helpers import Daemon, minimal_config, write_config
from tests.test_daemon import wait_for
from tests.test_mqtt_intake import healthz, rows

pytestmark = pytest.mark.timeout(90)


class PlcThread:
    """A real pymodbus server on its own event loop, its counters set from the test."""

    def __init__(self) -> None:
        self.memory = PlcMemory()
        self.memory.define(1, "holding", 0, 8)
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.sim = ModbusSimulator(self.memory, port=self.port)

    def __enter__(self) -> PlcThread:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.sim.start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.sim.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def counters(self, good: int, bad: int) -> None:
        self.memory.set_value(1, "holding", 0, good, "uint32")
        self.memory.set_value(1, "holding", 2, bad, "uint32")


def test_counter_pair_samples_chart_p_and_a_restart_shows_in_healthz(tmp_path: Path) -> None:
    http_port = free_port()
    with PlcThread() as plc:
        config = minimal_config(tmp_path, port=http_port, modbus_port=plc.port)
        config["sources"][0]["poll_interval"] = "50ms"
        config["products"][0]["characteristics"] = [{
            "name": "leak_rejects", "source": "plc", "chart": "p", "spec": {"usl": 0.5},
            "modbus": {"good": {"address": 0, "data_type": "uint32"}, "bad": {"address": 2, "data_type": "uint32"},
                       "sample_every": 10},
            "limits": {"baseline_subgroups": 3}, "rules": [1, 2, 3, 4]}]
        db = tmp_path / "spc.sqlite3"
        plc.counters(5000, 300)
        daemon = Daemon(write_config(tmp_path, config)).start(wait_for_port=http_port)
        try:
            def plc_health() -> dict:
                try:
                    return healthz(http_port)["sources"]["plc"]
                except urllib.error.HTTPError as exc:  # 503 while something is not well: the body says what
                    return json.loads(exc.read())["sources"]["plc"]

            def samples() -> list[tuple]:
                return rows(db, "SELECT count, sample_size FROM measurements ORDER BY id")

            wait_for(lambda: plc_health()["state"] == "connected", 15, "the PLC to be read")
            time.sleep(0.5)  # the first look learns where the counters stand
            good, bad = 5000, 300
            for number, rejected in enumerate((1, 2, 1, 3), 1):  # four samples of 10 parts
                good, bad = good + 10 - rejected, bad + rejected
                plc.counters(good, bad)
                wait_for(lambda n=number: len(samples()) == n, 10, f"sample {number}; log:\n{daemon.log()}")
            plc.counters(good + 4, bad)  # a partial sample...
            time.sleep(0.5)
            plc.counters(2, 1)  # ...and the PLC restarts: its counters are back near 0
            wait_for(lambda: plc_health()["counter_restarts"] == 1, 10, "the restart in /healthz")
            plc.counters(9, 2)  # 8 parts since the restart
            time.sleep(0.5)
            plc.counters(10, 3)  # 10
            wait_for(lambda: len(samples()) == 5, 10, "the sample after the restart")
            assert samples() == [(1, 10), (2, 10), (1, 10), (3, 10), (2, 10)]
            plotted = rows(db, "SELECT mean, center FROM subgroups ORDER BY subgroup_number")
            assert [round(v, 4) for v, _ in plotted] == [0.1, 0.2, 0.1, 0.3, 0.2]
            assert plotted[-1][1] == pytest.approx(4 / 30)  # p-bar of the baseline: 4 of 30 parts
            assert plc_health()["counter_wraps"] == 0
            healthz(http_port)  # 200: a count characteristic is not stale between samples (no `every`)
            assert "a counter went back" in daemon.log() and "Traceback" not in daemon.log()
        finally:
            daemon.stop()
