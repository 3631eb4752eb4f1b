"""The daemon's own wiring to the plant broker: what the pipeline stores reaches its topics, with seq."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import paho.mqtt.client as mqtt

from tests.conftest import free_port, wait_port
from tests.daemon_helpers import REPO, Daemon, write_config
from tests.test_daemon import part_counter_config, wait_for


def test_daemon_publishes_measurements_subgroups_and_status(tmp_path: Path, mosquitto) -> None:
    modbus_port, http_port = free_port(), free_port()
    simulator = subprocess.Popen([sys.executable, "-m", "gateway.sim.simulator", "--modbus-port",
                                  str(modbus_port), "--gauges", "1", "--part-interval", "0.05"], cwd=REPO,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(modbus_port)
    config = part_counter_config(tmp_path, modbus_port, http_port)
    config["northbound"] = {"mqtt": {"host": "127.0.0.1", "port": mosquitto.port, "client_id": "gw-test",
                                     "topic_prefix": "plant/line3/spc", "qos": 1, "protocol": "3.1.1",
                                     "publish": ["alert", "measurement", "subgroup"]}}
    received: dict[str, list[dict]] = {}
    lock = threading.Lock()

    def on_message(client, userdata, message) -> None:
        with lock:
            received.setdefault(message.topic, []).append(json.loads(message.payload))

    subscriber = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="plant-historian")
    subscriber.on_message = on_message
    subscriber.connect("127.0.0.1", mosquitto.port)
    subscriber.subscribe("plant/line3/spc/#", qos=1)
    subscriber.loop_start()
    daemon = Daemon(write_config(tmp_path, config)).start(wait_for_port=http_port)
    try:
        topic = "plant/line3/spc/measurement/BOLT-M10/diameter"
        wait_for(lambda: len(received.get(topic, [])) >= 20, 20, "20 measurements on the plant broker")
        wait_for(lambda: received.get("plant/line3/spc/subgroup/BOLT-M10/diameter"), 10, "subgroups")
        with lock:
            measurements = list(received[topic])
            status = received["plant/line3/spc/status"][-1]
        seqs = [m["seq"] for m in measurements]
        assert seqs == sorted(seqs) and measurements[0]["type"] == "measurement"
        assert status["status"] == "online" and status["gateway"] == "TEST-LINE"
        assert {m["epoch"] for m in measurements} == {status["epoch"]}  # (epoch, seq) is unique for consumers
        assert not any(t.startswith("plant/line3/spc/capability") for t in received)  # not in publish
    finally:
        daemon.stop()
        subscriber.loop_stop()
        simulator.kill()
        simulator.wait(5)
    # the northbound is the outbox's consumer "mqtt": its cursor is stored at stop, for the next start
    with sqlite3.connect(tmp_path / "spc.sqlite3") as conn:
        (cursor,) = conn.execute("SELECT cursor FROM outbox_cursors WHERE consumer = 'mqtt'").fetchone()
        left = [s for (s,) in conn.execute("SELECT seq FROM outbox WHERE seq <= ?", (cursor,))]
    assert cursor >= max(seqs) and left == []
