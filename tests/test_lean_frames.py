"""Lean frames (issue 17, docs/protocol.md "Frames per reading") through the real daemon.

Gauge readings go in over a real mosquitto, real `websockets` clients read the product endpoint, a paho
subscriber reads the northbound on the same broker. A quiet reading of n = 1 is one frame per screen;
a rule that keeps firing is one `violation` when it starts and an update at most once a second; a
`since` replay sends the very same frames; the plant broker still gets every event.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import websockets

from gateway.tools.clients import format_message
from tests.conftest import free_port
from tests.daemon_helpers import Daemon, write_config
from tests.test_daemon import wait_for

TOPIC = "line3/gauges/bolt/diameter"
EVENTS = ("measurement", "subgroup", "violation", "alert", "capability")


def lean_config(tmp_path: Path, broker_port: int, http_port: int, rules) -> dict:
    return {
        "gateway": {"name": "TEST-LINE", "language": "ko", "timezone": "Asia/Seoul"},
        "storage": {"path": str(tmp_path / "spc.sqlite3")},
        "server": {"listen": f"127.0.0.1:{http_port}"},
        "sources": [{"name": "line-broker", "type": "mqtt", "host": "127.0.0.1", "port": broker_port,
                     "client_id": "spc-gw-lean-in", "qos": 1}],
        "northbound": {"mqtt": {"host": "127.0.0.1", "port": broker_port, "client_id": "spc-gw-lean-out",
                                "topic_prefix": "plant/line3/spc", "qos": 1,
                                "publish": ["measurement", "subgroup", "violation"]}},
        "products": [{"id": 1, "code": "BOLT-M10", "name": "M10 볼트", "characteristics": [{
            "name": "diameter", "unit": "mm", "source": "line-broker", "mqtt": {"topic": TOPIC},
            "spec": {"lsl": 9.0, "target": 10.0, "usl": 11.0}, "chart": "imr",
            "limits": {"center": 10.0, "sigma": 0.1}, "rules": rules,
            "capability": {"every_subgroups": 1000}}]}],
    }


class Northbound:
    """A paho subscriber on the plant topics: every message the gateway forwards, by type."""

    def __init__(self, port: int):
        self.received: dict[str, list[dict]] = {}
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="plant-consumer")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("plant/line3/spc/#", qos=1)
        self.client.loop_start()

    def _on_message(self, client, userdata, message) -> None:
        kind = message.topic.split("/")[3]
        with self.lock:
            self.received.setdefault(kind, []).append(json.loads(message.payload))

    def count(self, kind: str) -> int:
        with self.lock:
            return len(self.received.get(kind, []))

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def publish(port: int, values: list[float], rate: float) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="gauge")
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = []
    for value in values:
        infos.append(client.publish(TOPIC, repr(value), qos=1))
        time.sleep(1 / rate)
    for info in infos:
        info.wait_for_publish(10)
    client.loop_stop()
    client.disconnect()


async def frames(url: str, until, timeout: float) -> list[dict]:
    """Every event frame a product screen gets (after connection and the snapshot) until `until(frames)`."""
    got: list[dict] = []
    async with websockets.connect(url) as ws:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not until(got):
            try:
                raw = await asyncio.wait_for(ws.recv(), 1.0)
            except TimeoutError:
                continue
            message = json.loads(raw)
            if message["type"] in EVENTS:
                got.append(message)
    return got


def start(tmp_path: Path, mosquitto, rules) -> tuple[Daemon, int, Northbound]:
    http_port = free_port()
    daemon = Daemon(write_config(tmp_path, lean_config(tmp_path, mosquitto.port, http_port, rules)))
    daemon.start(wait_for_port=http_port)
    wait_for(lambda: "subscribed" in daemon.log().lower() or (tmp_path / "spc.sqlite3").exists(), 10,
             "the source to subscribe")
    time.sleep(0.5)
    return daemon, http_port, Northbound(mosquitto.port)


def test_a_quiet_reading_of_n_1_is_one_frame_and_a_replay_sends_the_same(tmp_path: Path, mosquitto) -> None:
    daemon, http_port, plant = start(tmp_path, mosquitto, [1])
    url = f"ws://127.0.0.1:{http_port}/ws/spc/product/1/"
    values = [round(10.0 + 0.05 * ((i * 7) % 5 - 2), 3) for i in range(40)]  # well inside the limits

    async def live_then_replay() -> tuple[list[dict], list[dict], dict]:
        live_task = asyncio.create_task(frames(url, lambda got: sum(
            m["type"] == "measurement" for m in got) >= len(values), 60))
        await asyncio.sleep(1.0)
        await asyncio.to_thread(publish, mosquitto.port, values, 50)
        live = await live_task
        await asyncio.sleep(1.0)  # anything that would follow the last reading arrives now
        replay = await frames(f"{url}?since=0", lambda got: len(got) >= len(live) + 1, 3)
        async with websockets.connect(url) as ws:
            await ws.send(json.dumps({"type": "get_measurements", "product_id": 1, "limit": 100}))
            while (history := json.loads(await ws.recv()))["type"] != "measurements":
                pass
        return live, replay, history

    try:
        live, replay, history = asyncio.run(live_then_replay())
        # one frame per reading, and it is the measurement, with its point folded in
        assert [m["type"] for m in live] == ["measurement"] * len(values)
        for i, message in enumerate(live):
            m, point = message["measurement"], message["subgroup"]
            assert point["subgroup_number"] == m["subgroup_number"] == i + 1
            assert point["n"] == 1 and point["mean"] == m["measurement_value"] == values[i]
            assert [round(x, 9) for x in (point["center"], point["ucl"], point["lcl"])] == [10.0, 10.3, 9.7]
            assert point["violations"] == [] and point["dispersion_violations"] == []
            if i:  # the moving range, and its chart's limits
                assert abs(point["range"] - abs(values[i] - values[i - 1])) < 1e-9
                assert point["dispersion"] == point["range"] and point["dispersion_ucl"] > 0
        # a replay from the start sends exactly these frames, byte for byte the same events
        assert replay == live
        # the history is unchanged: every point, as charted
        assert [s["subgroup_number"] for s in history["subgroups"]] == list(range(1, len(values) + 1))
        assert len(history["measurements"]) == len(values)
        # the plant broker keeps the full record: a subgroup message per point as well
        wait_for(lambda: plant.count("subgroup") >= len(values), 20, "every subgroup northbound")
        assert plant.count("measurement") == plant.count("subgroup") == len(values)
        # the replay log keeps what screens are sent: no row for a point that rode in its measurement
        with sqlite3.connect(tmp_path / "spc.sqlite3") as db:
            kinds = dict(db.execute("SELECT type, COUNT(*) FROM events GROUP BY type").fetchall())
            seqs = [row[0] for row in db.execute("SELECT seq FROM events WHERE type = 'measurement'")]
        assert kinds.get("measurement") == len(values) and "subgroup" not in kinds
        # numbered among the others all the same: the northbound subgroups fill the gaps in seq
        subgroup_seqs = {m["seq"] for m in plant.received["subgroup"]}
        assert subgroup_seqs.isdisjoint(seqs) and len(subgroup_seqs) == len(values)
    finally:
        plant.stop()
        assert daemon.stop() == 0


def test_a_rule_that_keeps_firing_sends_a_violation_then_an_update_a_second(tmp_path: Path, mosquitto) -> None:
    """All Nelson tests, limits from a process wider than the stream: test 7 (15 points in a row within
    one sigma) holds from the 15th point on, every reading for 4 s."""
    daemon, http_port, plant = start(tmp_path, mosquitto, "nelson")
    url = f"ws://127.0.0.1:{http_port}/ws/spc/product/1/"
    rng = random.Random(7)
    values = [round(10.0 + rng.uniform(-0.04, 0.04), 4) for _ in range(400)]  # inside one sigma (0.1)
    rate = 100.0

    async def screens() -> tuple[list[dict], list[dict], list[dict]]:
        def done(got: list[dict]) -> bool:
            return any(m["type"] == "measurement" and m["measurement"]["sample_number"] >= len(values) for m in got)

        first = asyncio.create_task(frames(url, done, 90))
        await asyncio.sleep(1.0)
        publisher = asyncio.create_task(asyncio.to_thread(publish, mosquitto.port, values, rate))
        await asyncio.sleep(2.0)  # a screen that connects while the rule keeps firing
        midway = asyncio.create_task(frames(url, done, 90))
        await publisher
        live, joined = await first, await midway
        await asyncio.sleep(1.0)
        replay = await frames(f"{url}?since=0", lambda got: len(got) >= len(live), 5)
        return live, joined, replay

    try:
        live, joined, replay = asyncio.run(screens())
        rule7 = [m["violation"] for m in live if m["type"] == "violation" and m["violation"]["rule"] == 7]
        assert rule7, [m["type"] for m in live]
        assert rule7[0]["subgroup_number"] == 15 and rule7[0]["count"] == 1 and rule7[0]["continuing"] is False
        assert all(v["continuing"] is True and v["count"] == v["subgroup_number"] - 14 for v in rule7[1:])
        # 386 firings in about 4 s: the start and then at most one update a second (a loaded machine may
        # stretch the publishing, so the bound follows the points the firings span)
        seconds = (len(values) - 15) / rate
        assert 2 <= len(rule7) <= 2 + seconds * 2, [v["count"] for v in rule7]
        assert len(rule7) < (len(values) - 14) / 10
        # every reading is still one measurement frame with its point, marked with the rule it broke
        measurements = [m for m in live if m["type"] == "measurement"]
        assert [m["measurement"]["sample_number"] for m in measurements] == list(range(1, len(values) + 1))
        assert not [m for m in live if m["type"] == "subgroup"]
        assert all(7 in m["subgroup"]["violations"] for m in measurements[14:])
        # the screen that joined midway gets the run as an update, not its start
        joined_rule7 = [m["violation"] for m in joined if m["type"] == "violation" and m["violation"]["rule"] == 7]
        assert joined_rule7 and all(v["continuing"] for v in joined_rule7)
        assert {v["subgroup_number"] for v in joined_rule7} <= {v["subgroup_number"] for v in rule7}
        # a replay sends the same frames the live screen got
        assert replay == live
        # `spc-gateway watch` prints a line per reading and the run's updates with their count
        lines = [format_message(m) for m in live]
        assert sum(1 for line in lines if line and " measurement " in line) == len(values)
        updates = [line for line in lines if line and "VIOLATION" in line and " rule 7 " in line]
        assert len(updates) == len(rule7) and "still holds" not in updates[0]
        assert all(f"still holds ({v['count']} points)" in line for v, line in zip(rule7[1:], updates[1:], strict=True))
        # the plant broker got every firing of test 7, each with its count
        wait_for(lambda: len([v for v in plant.received.get("violation", []) if v["violation"]["rule"] == 7])
                 >= len(values) - 14, 20, "every violation northbound")
        counts = [v["violation"]["count"] for v in plant.received["violation"] if v["violation"]["rule"] == 7]
        assert counts == list(range(1, len(values) - 13))
    finally:
        plant.stop()
        assert daemon.stop() == 0
