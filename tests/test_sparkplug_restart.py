"""Sparkplug B across a gateway SIGKILL and restart, on a real mosquitto, decoded by Eclipse Tahu's
sparkplug-payload: the next NBIRTH's bdSeq follows the NDEATH's, the DBIRTH shows the store's last
known metrics (not nulls), limits_version is the stored version, DDATA carries only what changed, and
alerts reach Sparkplug although northbound.mqtt.publish does not list them (contract plant-integration §1)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from gateway.outputs import sparkplug_b_pb2 as pb
from tests.conftest import free_port
from tests.daemon_helpers import Daemon, write_config
from tests.test_daemon import wait_for
from tests.test_mqtt_e2e import TOPIC, mqtt_config
from tests.test_mqtt_intake import send_readings
from tests.test_sparkplug_daemon import GROUP, NODE, Host, brokers  # noqa: F401  (the brokers fixture)
from tests.test_sparkplug_node import tahu as tahu  # noqa: F401  (the decoder fixture)


def kind(message: dict) -> str:
    return message["topic"].split("/")[2]


def by_name(decoded: list[dict], upto: int) -> dict[int, str]:
    """alias -> metric name, from the DBIRTHs before index `upto`."""
    return {m["alias"]: m["name"] for d in decoded[:upto] if kind(d) == "DBIRTH" for m in d["payload"]["metrics"]}


def open_alerts_seen(host: Host) -> bool:
    """Our own decoding, only to know when to go on; the assertions use Tahu's."""
    for topic, payload in list(host.messages):
        if "/DDATA/" in topic and any(m.HasField("string_value") for m in pb.Payload.FromString(payload).metrics):
            return True
    return False


def test_restart_births_show_the_stored_state_and_bdseq_goes_on(tmp_path: Path, brokers, tahu) -> None:  # noqa: F811
    line, plant = brokers
    host = Host(plant.port)
    json_topics: list[str] = []  # the JSON northbound beside Sparkplug, on its own connection
    plain = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="json-consumer")
    plain.on_connect = lambda c, *_: c.subscribe("spc/#", 1)
    plain.on_message = lambda _c, _u, m: json_topics.append(m.topic)
    plain.connect("127.0.0.1", plant.port)
    plain.loop_start()
    http_port = free_port()
    cfg = mqtt_config(tmp_path, line.port, http_port)
    cfg["northbound"] = {"mqtt": {"host": "127.0.0.1", "port": plant.port, "client_id": NODE,
                                  "publish": ["measurement"], "reconnect_min": "1s", "reconnect_max": "1s"},
                         "sparkplug": {"group_id": GROUP, "edge_node_id": NODE}}
    path = write_config(tmp_path, cfg)
    # 35 in spec (limits learned after 30), then one out of spec: an OUT_OF_SPEC alert
    values = [0.02 + (i % 7) * 0.001 for i in range(35)] + [0.09]
    daemon = Daemon(path).start(wait_for_port=http_port)
    try:
        wait_for(lambda: "DBIRTH" in host.kinds(), 15, "the births")
        wait_for(lambda: f"line-broker: connected to 127.0.0.1:{line.port}" in daemon.log(), 10, "the gauges")
        time.sleep(0.5)
        send_readings(line.port, TOPIC, values, time.time() - 600)
        wait_for(lambda: open_alerts_seen(host), 20, "the alert's DDATA")
        daemon.kill()
        wait_for(lambda: "NDEATH" in host.kinds(), 15, "the NDEATH will")
        daemon = Daemon(path).start(wait_for_port=http_port)
        wait_for(lambda: host.kinds().count("DBIRTH") >= 2, 15, "the births after the restart")
        wait_for(lambda: sum("/measurement/" in t for t in json_topics) >= len(values), 15, "the JSON rows")
    finally:
        daemon.stop()
        host.stop()
        plain.loop_stop()
        plain.disconnect()
    # the JSON consumer sends only its publish list: no alert topic, although the outbox has alert rows
    assert not [t for t in json_topics if t.startswith("spc/alert/")]
    db = sqlite3.connect(tmp_path / "spc.sqlite3")
    version = db.execute("SELECT MAX(id) FROM control_limits").fetchone()[0]
    mean, center, ucl, lcl = db.execute("SELECT mean, center, ucl, lcl FROM subgroups ORDER BY subgroup_number "
                                        "DESC LIMIT 1").fetchone()
    cpk = (db.execute("SELECT cpk FROM capability ORDER BY id DESC LIMIT 1").fetchone() or [None])[0]
    newest_alert = db.execute("SELECT id FROM alerts ORDER BY updated_at DESC, id DESC LIMIT 1").fetchone()[0]
    open_count = db.execute("SELECT COUNT(*) FROM alerts WHERE product_id = 2 AND status IN ('OPEN', "
                            "'ACKNOWLEDGED')").fetchone()[0]
    assert version is not None and open_count >= 1

    decoded = tahu(host.messages)
    kinds = [kind(d) for d in decoded]
    first, death, second = kinds.index("NBIRTH"), kinds.index("NDEATH"), len(kinds) - 1 - kinds[::-1].index("NBIRTH")
    bd = [d["payload"]["metrics"][0]["value"] for d in (decoded[first], decoded[death])]
    births_bd = {m["name"]: m["value"] for m in decoded[second]["payload"]["metrics"]}["bdSeq"]
    assert bd[0] == bd[1] and births_bd == (bd[0] + 1) % 256

    # the DBIRTH after the restart: the store's last known values, not nulls
    dbirth = {m["name"]: m["value"] for m in decoded[second + 1]["payload"]["metrics"]}
    assert dbirth["runout/value"] == pytest.approx(0.09) and dbirth["runout/in_spec"] is False
    assert dbirth["runout/limits_version"] == version
    assert [dbirth[f"runout/{k}"] for k in ("mean", "center", "ucl", "lcl")] == pytest.approx([mean, center, ucl, lcl])
    assert dbirth["runout/cpk"] == (pytest.approx(cpk) if cpk is not None else None)
    assert dbirth["alerts/open"] == open_count
    assert json.loads(dbirth["alerts/last"])["id"] == newest_alert

    # live DDATA before the kill: only what changed, limits_version once, alerts without mqtt.publish
    names = by_name(decoded, death)
    live = [[names[m["alias"]] for m in d["payload"]["metrics"]] for d in decoded[first:death] if kind(d) == "DDATA"]
    assert sum(n.count("runout/in_spec") for n in live) == 2  # True, then False at 0.09
    assert sum(n.count("runout/limits_version") for n in live) == 1
    assert sum(n.count("runout/value") for n in live) == len(values)
    versions = [m["value"] for d in decoded[first:death] if kind(d) == "DDATA" for m in d["payload"]["metrics"]
                if names[m["alias"]] == "runout/limits_version"]
    assert versions == [version]
    assert any("alerts/last" in n for n in live) and any("alerts/open" in n for n in live)


def test_stored_bdseq_is_read_back_and_a_bad_one_starts_over(tmp_path: Path) -> None:
    """The meta row is the only memory of bdSeq: a value someone edited into it must not stop the start."""
    import asyncio

    from gateway.outputs.sparkplug_seed import last_bd_seq, store_bd_seq
    from gateway.store import Store

    async def run() -> list[int]:
        store = Store(str(tmp_path / "bd.sqlite3"))
        await store.open()
        try:
            seen = [await last_bd_seq(store)]
            await store_bd_seq(store, 17)
            seen.append(await last_bd_seq(store))
            for bad in ("999", "-3", "seventeen", ""):
                await store.set_meta_value("sparkplug_bdseq", bad)
                seen.append(await last_bd_seq(store))
            return seen
        finally:
            await store.close()
    assert asyncio.run(run()) == [-1, 17, -1, -1, -1, -1]
