"""Short-run SPC through the real daemon: the part read from a real Modbus register (pymodbus, a code
table) and from the field of a real MQTT message (mosquitto), a real WebSocket client that sees the
part on every point, and the readings whose part is unknown stored and flagged, never charted."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import websockets
from paho.mqtt.enums import CallbackAPIVersion

from gateway.sim.simulator import ModbusSimulator, PlcMemory
from tests.conftest import free_port
from tests.daemon_helpers import Daemon, minimal_config, read_json, write_config
from tests.test_mqtt_in import Publisher

pytestmark = pytest.mark.timeout(120)

BORE = {  # Z-MR over two part numbers, the part a code in a PLC register
    "name": "bore", "unit": "mm", "source": "plc",
    "modbus": {"address": 0, "data_type": "float32"},
    "parts": {"A-100": {"target": 10.0, "sigma": 0.02, "lsl": 9.94, "usl": 10.06},
              "A-200": {"target": 12.5, "sigma": 0.03, "lsl": 12.41, "usl": 12.59}},
    "short_run": "z",
    "part_from": {"modbus": {"address": 10, "data_type": "uint16"}, "codes": {1: "A-100", 2: "A-200"}},
}
DEPTH = {  # DNOM with a fixed sigma, the part in the gauge's own JSON message
    "name": "depth", "unit": "mm", "source": "line",
    "mqtt": {"topic": "line1/depth", "value": "value"},
    "parts": {"A-100": {"target": 4.0, "usl": 4.1}, "A-200": {"target": 5.5, "usl": 5.6}},
    "short_run": "dnom", "limits": {"center": 0, "sigma": 0.01},
    "part_from": {"field": "part"},
}
FLATNESS = {  # the value from a gauge over MQTT, the part from the PLC's register: a part source that can go stale
    "name": "flatness", "unit": "mm", "source": "line", "mqtt": {"topic": "line1/flatness"},
    "parts": {"A-100": {"target": 0.0, "usl": 0.05}, "A-200": {"target": 0.0, "usl": 0.08}},
    "short_run": "dnom", "stale_after": "2s",
    "part_from": {"source": "plc", "modbus": {"address": 10, "data_type": "uint16"},
                  "codes": {1: "A-100", 2: "A-200"}},
}


class Screen:
    """A line-side screen on the product's endpoint: every event it gets, by type."""

    def __init__(self, ws: Any):
        self.ws = ws
        self.events: list[dict] = []

    async def pump(self) -> None:
        async for raw in self.ws:
            self.events.append(json.loads(raw))

    def of(self, kind: str, characteristic: str) -> list[dict]:
        if kind == "subgroup":  # lean frames: an individuals point rides in its measurement's frame
            return [e["subgroup"] for e in self.events if e.get("type") in ("measurement", "subgroup")
                    and "subgroup" in e and e["subgroup"]["characteristic"] == characteristic]
        return [e[kind] for e in self.events if e.get("type") == kind and e[kind]["characteristic"] == characteristic]

    async def until(self, kind: str, characteristic: str, n: int, timeout: float = 30.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.of(kind, characteristic)) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"{n} {kind} of {characteristic} not seen: {self.events}")
            await asyncio.sleep(0.05)
        return self.of(kind, characteristic)


def test_parts_from_a_plc_register_and_an_mqtt_field_reach_the_screen_on_every_point(tmp_path: Path,
                                                                                         mosquitto) -> None:
    http_port = free_port()
    memory = PlcMemory()
    memory.define(1, "holding", 0, 16)
    simulator = ModbusSimulator(memory, port=free_port())
    config = minimal_config(tmp_path, port=http_port, modbus_port=simulator.port, products=[{
        "id": 1, "code": "HOUSING", "name": "하우징", "characteristics": [BORE, DEPTH, FLATNESS]}])
    config["sources"].append({"name": "line", "type": "mqtt", "host": "127.0.0.1", "port": mosquitto.port,
                              "client_id": "gw-shortrun"})
    config["northbound"] = {"mqtt": {"host": "127.0.0.1", "port": mosquitto.port, "client_id": "gw-shortrun-out",
                                     "topic_prefix": "plant/spc", "qos": 1,
                                     "publish": ["measurement", "subgroup"]}}
    daemon = Daemon(write_config(tmp_path, config))
    plant: list[dict] = []  # what the plant broker's subscribers get (the northbound JSON)
    subscriber = paho.Client(CallbackAPIVersion.VERSION2, client_id="plant-historian")
    subscriber.on_message = lambda client, userdata, message: plant.append(json.loads(message.payload))
    subscriber.connect("127.0.0.1", mosquitto.port)
    subscriber.subscribe("plant/spc/#", qos=1)
    subscriber.loop_start()

    def north() -> list[dict]:
        return [e["measurement"] for e in list(plant) if e.get("type") == "measurement"
                and e["measurement"]["characteristic"] == "depth"]

    async def scenario() -> None:
        await simulator.start()
        memory.set_registers(1, "holding", 10, [7])  # a code the table does not know
        memory.set_value(1, "holding", 0, 10.01, "float32")
        daemon.start(wait_for_port=http_port, timeout=30)
        async with websockets.connect(f"ws://127.0.0.1:{http_port}/ws/spc/product/1/") as ws:
            screen = Screen(ws)
            pump = asyncio.create_task(screen.pump())
            unknown = (await screen.until("measurement", "bore", 1))[0]
            assert unknown["part"] is None and unknown["part_unknown"] == "not_in_table"
            assert unknown["measurement_value"] == pytest.approx(10.01)
            # the changeover as a PLC makes it: the code, then the part's value, within one poll
            for seen, (code, value) in enumerate(((1, 10.02), (1, 9.98), (2, 12.47), (2, 12.56)), start=2):
                memory.set_registers(1, "holding", 10, [code])
                memory.set_value(1, "holding", 0, value, "float32")
                await screen.until("measurement", "bore", seen)  # on_change: one reading per value
            bore = await screen.until("subgroup", "bore", 4)
            assert [p["part"] for p in bore] == ["A-100", "A-100", "A-200", "A-200"]
            # Z = (x - target) / sigma of the part: 0.02/0.02, -0.02/0.02, then -0.03/0.03, 0.06/0.03
            assert [p["value"] for p in bore] == pytest.approx([1.0, -1.0, -1.0, 2.0], abs=1e-4)
            assert {(p["center"], p["ucl"], p["lcl"]) for p in bore} == {(0.0, 3.0, -3.0)}
            # the moving range runs across the changeover: |-1 - 1|, |-1 - (-1)|, |2 - (-1)|
            assert [p["range"] for p in bore][1:] == pytest.approx([2.0, 0.0, 3.0], abs=1e-4)
            measured = await screen.until("measurement", "bore", 5)
            assert [m["part"] for m in measured] == [None, "A-100", "A-100", "A-200", "A-200"]
            assert [m["part_unknown"] for m in measured] == ["not_in_table", None, None, None, None]
            assert measured[0]["is_within_control"] is None and measured[0]["is_within_spec"] is None
            # 12.56 is within A-200's own spec, though far beyond A-100's
            assert measured[-1]["is_within_spec"] is True
            health = await asyncio.to_thread(read_json, f"http://127.0.0.1:{http_port}/healthz", 10)
            assert (health["characteristics"]["1/bore"]["part"], health["characteristics"]["1/bore"]["part_unknown"]) \
                == ("A-200", None)

            # the gauge's messages are not retained: the MQTT source must have subscribed (it reports
            # connected after sending its SUBSCRIBE), which a loaded machine may take seconds to do
            deadline = time.monotonic() + 30
            while (await asyncio.to_thread(read_json, f"http://127.0.0.1:{http_port}/healthz", 10))["sources"]["line"][
                    "state"] != "connected":
                assert time.monotonic() < deadline, "the MQTT source did not connect"
                await asyncio.sleep(0.1)
            publisher = Publisher(mosquitto.port)
            try:
                for payload in ({"value": 4.01, "part": "A-100"}, {"value": 5.49, "part": "A-200"},
                                {"value": 5.0}, {"value": 5.0, "part": "B-999"}, {"value": 4.12, "part": "A-100"},
                                {"value": "5.5", "part": " A-200 "}):
                    publisher.send("line1/depth", json.dumps(payload))
                depth = await screen.until("measurement", "depth", 6)
            finally:
                publisher.close()
            assert [m["part"] for m in depth] == ["A-100", "A-200", None, None, "A-100", "A-200"]
            assert [m["part_unknown"] for m in depth] == [None, None, "not_read", "not_in_table", None, None]
            assert [m["is_within_spec"] for m in depth] == [True, True, None, None, False, True]
            points = await screen.until("subgroup", "depth", 4)
            assert [p["part"] for p in points] == ["A-100", "A-200", "A-100", "A-200"]
            # the PLC's part register, read for another gauge's value; then the PLC goes away
            publisher = Publisher(mosquitto.port)
            try:
                publisher.send("line1/flatness", "0.07")
                await screen.until("measurement", "flatness", 1)
                await simulator.stop()
                await asyncio.sleep(3.0)  # beyond its stale_after of 2 s
                publisher.send("line1/flatness", "0.02")
                flat = await screen.until("measurement", "flatness", 2)
            finally:
                publisher.close()
            assert [(m["part"], m["part_unknown"]) for m in flat] == [("A-200", None), (None, "stale")]
            assert flat[0]["is_within_spec"] is True  # 0.07 is within A-200's 0.08
            assert [p["part"] for p in await screen.until("subgroup", "flatness", 1)] == ["A-200"]
            # DNOM: x - target; 0.12 is 12 sigma out: test 1 on the third point
            assert [p["value"] for p in points] == pytest.approx([0.01, -0.01, 0.12, 0.0], abs=1e-9)
            assert 1 in points[2]["violations"]
            # the out-of-spec alert names A-100's own limit, not the characteristic's (it has none)
            deadline = time.monotonic() + 10
            while not [e for e in screen.events if e.get("type") == "alert"
                       and e["alert"]["alert_type"] == "OUT_OF_SPEC" and e["alert"]["characteristic"] == "depth"]:
                assert time.monotonic() < deadline, screen.events
                await asyncio.sleep(0.05)
            spec_alert = next(e["alert"] for e in screen.events if e.get("type") == "alert"
                              and e["alert"]["alert_type"] == "OUT_OF_SPEC" and e["alert"]["characteristic"] == "depth")
            assert spec_alert["limit"] == 4.1 and spec_alert["value"] == 4.12
            assert "4.1" in spec_alert["texts"]["en"]["message"], spec_alert
            # every event of the chart carries the part, null only on the flagged readings
            assert all("part" in e[e["type"]] for e in screen.events if e.get("type") in ("measurement", "subgroup"))

            await ws.send(json.dumps({"type": "get_measurements", "product_id": 1, "characteristic": "depth",
                                      "request_id": "h"}))
            deadline = time.monotonic() + 10
            while not any(e.get("type") == "measurements" for e in screen.events):
                assert time.monotonic() < deadline, screen.events
                await asyncio.sleep(0.05)
            reply = next(e for e in screen.events if e.get("type") == "measurements")
            assert [m["part"] for m in reply["measurements"]] == ["A-100", "A-200", None, None, "A-100", "A-200"]
            assert [m["part_unknown"] for m in reply["measurements"]][2:4] == ["not_read", "not_in_table"]
            assert [s["part"] for s in reply["subgroups"]] == ["A-100", "A-200", "A-100", "A-200"]
            assert reply["limits"]["short_run"] == "dnom" and reply["limits"]["center"] == 0.0
            assert reply["limits"]["parts"]["A-200"] == {"target": 5.5, "sigma": None, "lsl": None, "usl": 5.6}
            pump.cancel()
        listed = (await asyncio.to_thread(read_json, f"http://127.0.0.1:{http_port}/api/spc/products/", 10)
                  )["products"][0]["characteristics"]
        assert [(c["name"], c.get("short_run")) for c in listed] == [("bore", "z"), ("depth", "dnom"),
                                                                    ("flatness", "dnom")]
        assert listed[0]["parts"]["A-200"] == {"target": 12.5, "sigma": 0.03, "lsl": 12.41, "usl": 12.59}
        deadline = time.monotonic() + 20  # the plant's copies may trail the screen's
        while len(north()) < 6 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert daemon.stop() == 0
        await simulator.stop()

    try:
        asyncio.run(scenario())
    finally:
        daemon.kill()
        subscriber.loop_stop()
        subscriber.disconnect()
    # northbound: the same bodies, part and flag included
    assert [(m["part"], m["part_unknown"]) for m in north()] == [
        ("A-100", None), ("A-200", None), (None, "not_read"), (None, "not_in_table"), ("A-100", None),
        ("A-200", None)], plant
    assert [e["subgroup"]["part"] for e in plant if e.get("type") == "subgroup"].count("A-200") == 5  # 2 + 2 + 1
    with sqlite3.connect(tmp_path / "spc.sqlite3") as conn:
        rows = conn.execute("SELECT characteristic, part, part_unknown FROM measurements ORDER BY id").fetchall()
        charted = conn.execute("SELECT COUNT(*) FROM subgroups").fetchone()[0]
    assert rows.count(("bore", None, "not_in_table")) == 1 and rows.count(("depth", None, "not_read")) == 1
    assert rows.count(("flatness", None, "stale")) == 1
    assert charted == 9, daemon.log()  # 4 + 4 + 1: the 4 readings of unknown part are stored, not charted
    assert "Traceback" not in daemon.log()
