"""Sparkplug B from the daemon to a real mosquitto, read by a host whose decoder is Eclipse Tahu's
(sparkplug-payload in node, see tests/test_sparkplug_node.py): births, the NDEATH will after a SIGKILL
with the bdSeq of its NBIRTH, and a plant broker outage that loses nothing (held rows after the births,
is_historical)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from tests.conftest import Mosquitto, free_port
from tests.daemon_helpers import Daemon, write_config
from tests.test_daemon import wait_for
from tests.test_mqtt_e2e import TOPIC, mqtt_config, publish
from tests.test_sparkplug_node import tahu as tahu  # noqa: F401  (the decoder fixture)

GROUP, NODE = "PLANT1-LINE3", "spc-gw-line3"


class Host:
    """Records every Sparkplug message of our group, raw; Tahu decodes them at the end."""

    def __init__(self, port: int, secure: Callable[[mqtt.Client], None] | None = None):
        self.messages: list[tuple[str, bytes]] = []
        # a persistent session: the broker (persistence, queue_qos0_messages) keeps what comes while the
        # host reconnects after a broker restart, so the test sees every message however slow the machine
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="scada-test-host",
                                  clean_session=False)
        self.client.reconnect_delay_set(0.05, 0.2)
        if secure is not None:  # credentials and TLS, before the connect
            secure(self.client)
        self.client.on_connect = lambda c, *_: c.subscribe(f"spBv1.0/{GROUP}/#", 1)
        self.client.on_message = lambda _c, _u, m: self.messages.append((m.topic, bytes(m.payload)))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def kinds(self) -> list[str]:
        return [t.split("/")[2] for t, _ in list(self.messages)]

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def brokers(tmp_path: Path):
    (tmp_path / "line").mkdir()
    (tmp_path / "plant").mkdir()
    line, plant = Mosquitto(tmp_path / "line"), Mosquitto(tmp_path / "plant", "queue_qos0_messages true")
    line.start()
    plant.start()
    yield line, plant
    line.stop()
    plant.stop()


def config(tmp_path: Path, line: Mosquitto, plant: Mosquitto, http_port: int) -> Path:
    cfg = mqtt_config(tmp_path, line.port, http_port)
    # reconnects 1 s apart: the test host is back on the restarted broker before the gateway
    cfg["northbound"] = {"mqtt": {"host": "127.0.0.1", "port": plant.port, "client_id": NODE,
                                  "reconnect_min": "1s", "reconnect_max": "1s"},
                         "sparkplug": {"group_id": GROUP, "edge_node_id": NODE}}
    return write_config(tmp_path, cfg)


def values(decoded: list[dict]) -> list[tuple[float, bool]]:
    """(runout/value, is_historical) of every DDATA, in order (alias of runout/value from the DBIRTH)."""
    alias = None
    out = []
    for d in decoded:
        kind = d["topic"].split("/")[2]
        if kind == "DBIRTH":
            alias = next(m["alias"] for m in d["payload"]["metrics"] if m["name"] == "runout/value")
        elif kind == "DDATA":
            out += [(m["value"], bool(m.get("isHistorical"))) for m in d["payload"]["metrics"] if m["alias"] == alias]
    return out


def test_sigkill_leaves_the_ndeath_with_the_births_bdseq(tmp_path: Path, brokers, tahu) -> None:  # noqa: F811
    line, plant = brokers
    host = Host(plant.port)
    http_port = free_port()
    daemon = Daemon(config(tmp_path, line, plant, http_port)).start(wait_for_port=http_port)
    try:
        wait_for(lambda: "DBIRTH" in host.kinds(), 15, "the births")
        wait_for(lambda: f"line-broker: connected to 127.0.0.1:{line.port}" in daemon.log(), 10, "the gauges")
        time.sleep(0.5)
        publish(line.port, 0, 20, time.time() - 60)
        wait_for(lambda: host.kinds().count("DDATA") >= 20, 15, "20 DDATA")
        daemon.kill()
        wait_for(lambda: "NDEATH" in host.kinds(), 15, "the NDEATH will")
    finally:
        daemon.stop()
        host.stop()
    decoded = tahu(host.messages)
    nbirth = next(d for d in decoded if d["topic"].endswith(f"/NBIRTH/{NODE}"))
    ndeath = next(d for d in decoded if d["topic"].endswith(f"/NDEATH/{NODE}"))
    bd = {m["name"]: m["value"] for m in nbirth["payload"]["metrics"]}["bdSeq"]
    assert ndeath["payload"]["metrics"][0]["name"] == "bdSeq"
    assert ndeath["payload"]["metrics"][0]["value"] == bd
    seqs = [d["payload"]["seq"] for d in decoded if d["topic"].split("/")[2] in ("NBIRTH", "DBIRTH", "DDATA")]
    assert seqs == [i % 256 for i in range(len(seqs))]
    assert [v for v, historical in values(decoded)][-20:] == pytest.approx(
        [0.02 + (i % 7) * 0.001 for i in range(20)])


def test_broker_outage_loses_nothing_held_rows_are_historical(tmp_path: Path, brokers, tahu) -> None:  # noqa: F811
    line, plant = brokers
    host = Host(plant.port)
    http_port = free_port()
    daemon = Daemon(config(tmp_path, line, plant, http_port)).start(wait_for_port=http_port)
    base = time.time() - 600
    try:
        wait_for(lambda: "DBIRTH" in host.kinds(), 15, "the births")
        wait_for(lambda: f"line-broker: connected to 127.0.0.1:{line.port}" in daemon.log(), 10, "the gauges")
        time.sleep(0.5)
        publish(line.port, 0, 30, base)
        wait_for(lambda: host.kinds().count("DDATA") >= 30, 15, "30 live DDATA")
        plant.stop()
        publish(line.port, 30, 40, base)  # stored while the plant broker is away
        time.sleep(1.0)
        plant.start()
        wait_for(lambda: host.kinds().count("DDATA") >= 70, 30, f"the 40 held readings: {host.kinds()}")
    finally:
        daemon.stop()
        host.stop()
    decoded = tahu(host.messages)
    kinds = [d["topic"].split("/")[2] for d in decoded]
    after = max(i for i, k in enumerate(kinds) if k == "NBIRTH")  # the births after the outage
    assert "DDATA" not in kinds[after:after + 2]  # births first
    # the births show the newest value, held or not: the held rows go to the host's history only
    dbirth = {m["name"]: m["value"] for m in decoded[after + 1]["payload"]["metrics"]}
    assert dbirth["runout/value"] == pytest.approx(0.02 + (69 % 7) * 0.001)
    got = values(decoded[after:])
    assert [v for v, _ in got][:40] == pytest.approx([0.02 + (i % 7) * 0.001 for i in range(30, 70)])
    assert all(historical for _, historical in got[:40])
    assert TOPIC  # the gauge topic the readings came on


def test_primary_host_offline_holds_data_then_births_and_history(tmp_path: Path, brokers, tahu) -> None:  # noqa: F811
    line, plant = brokers
    host = Host(plant.port)
    path = config(tmp_path, line, plant, http_port := free_port())
    cfg_text = path.read_text().replace(f"edge_node_id: {NODE}", f"edge_node_id: {NODE}\n    primary_host_id: scada-host")
    path.write_text(cfg_text)

    def state(online: bool, stamp: int) -> None:
        host.client.publish("spBv1.0/STATE/scada-host", json.dumps({"online": online, "timestamp": stamp}),
                            1, retain=True).wait_for_publish(5)

    daemon = Daemon(path).start(wait_for_port=http_port)
    base = time.time() - 600
    try:
        wait_for(lambda: f"line-broker: connected to 127.0.0.1:{line.port}" in daemon.log(), 10, "the gauges")
        time.sleep(1.0)
        assert "NBIRTH" not in host.kinds()  # no births before the primary host is online
        state(True, 1)
        wait_for(lambda: "DBIRTH" in host.kinds(), 10, "births once the host is online")
        state(False, 2)
        time.sleep(0.5)
        publish(line.port, 0, 10, base)
        time.sleep(1.0)
        assert "DDATA" not in host.kinds()  # held while the host is offline
        state(True, 3)
        wait_for(lambda: host.kinds().count("DDATA") >= 10, 15, "the held rows after the host came back")
    finally:
        daemon.stop()
        host.stop()
    decoded = tahu(host.messages)
    kinds = [d["topic"].split("/")[2] for d in decoded]
    assert kinds.count("NBIRTH") == 2 and kinds.index("DDATA") > len(kinds) - 1 - kinds[::-1].index("NBIRTH")
    got = values(decoded)
    assert [v for v, _ in got] == pytest.approx([0.02 + (i % 7) * 0.001 for i in range(10)])
    last_births = len(kinds) - 1 - kinds[::-1].index("NBIRTH")
    dbirth = {m["name"]: m["value"] for m in decoded[last_births + 1]["payload"]["metrics"]}
    assert dbirth["runout/value"] == pytest.approx(0.02 + (9 % 7) * 0.001)  # the newest held value
    assert all(historical for _, historical in got)
