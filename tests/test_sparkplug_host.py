"""A Sparkplug host talking to the daemon over TLS (client certificate and password) on a real mosquitto:
the host sends `Node Control/Rebirth` as an NCMD encoded by Eclipse Tahu's sparkplug-payload, and the
gateway publishes NBIRTH (seq 0, the same bdSeq: the same connection) and every DBIRTH again, with seq
running on from there into the DDATA that follow (Sparkplug 3.0; contract plant-integration §1)."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from tests.conftest import Mosquitto, free_port
from tests.daemon_helpers import Daemon, write_config
from tests.test_daemon import wait_for
from tests.test_mqtt_e2e import mqtt_config, publish
from tests.test_northbound_tls import pki as pki  # noqa: F401  (the certificates fixture)
from tests.test_sparkplug_daemon import GROUP, NODE, Host
from tests.test_sparkplug_node import HERE
from tests.test_sparkplug_node import tahu as tahu  # noqa: F401  (the decoder fixture)


def tahu_encode(payload: dict) -> bytes:
    out = subprocess.run(["node", os.path.join(HERE, "encode.js"), json.dumps(payload)], capture_output=True,
                         text=True, check=True, timeout=60).stdout
    return bytes.fromhex(out.strip())


def tls_host(port: int, pki: Path) -> Host:
    """The test host on the TLS listener, with the plant's client certificate and password."""
    def secure(client: mqtt.Client) -> None:
        client.username_pw_set("line3", "s3cret")
        client.tls_set(ca_certs=str(pki / "plant-ca.pem"), certfile=str(pki / "gateway.pem"),
                       keyfile=str(pki / "gateway.key"), cert_reqs=ssl.CERT_REQUIRED)
    return Host(port, secure)


@pytest.fixture
def tls_plant(tmp_path: Path, pki: Path):  # noqa: F811
    (tmp_path / "plant").mkdir()
    broker = Mosquitto(tmp_path / "plant")
    broker.conf.write_text(
        f"listener {broker.port} 127.0.0.1\nallow_anonymous false\npassword_file {pki}/passwd\n"
        f"cafile {pki}/plant-ca.pem\ncertfile {pki}/broker.pem\nkeyfile {pki}/broker.key\n"
        f"require_certificate true\npersistence false\n" + ("user root\n" if os.geteuid() == 0 else ""))
    broker.start()
    yield broker
    broker.stop()


def test_ncmd_rebirth_from_a_tahu_host_over_tls(tmp_path: Path, mosquitto, tls_plant, pki, tahu) -> None:  # noqa: F811
    http_port = free_port()
    cfg = mqtt_config(tmp_path, mosquitto.port, http_port)
    cfg["northbound"] = {
        "mqtt": {"host": "127.0.0.1", "port": tls_plant.port, "client_id": NODE, "username": "line3",
                 "password_file": str(pki / "mqtt.password"),
                 "tls": {"ca_file": str(pki / "plant-ca.pem"), "certificate": str(pki / "gateway.pem"),
                         "private_key": str(pki / "gateway.key")}},
        "sparkplug": {"group_id": GROUP, "edge_node_id": NODE}}
    host = tls_host(tls_plant.port, pki)
    daemon = Daemon(write_config(tmp_path, cfg)).start(wait_for_port=http_port)
    ncmd = tahu_encode({"timestamp": int(time.time() * 1000),
                        "metrics": [{"name": "Node Control/Rebirth", "type": "Boolean", "value": True}]})
    try:
        wait_for(lambda: "DBIRTH" in host.kinds(), 15, f"the births over TLS: {daemon.log()[-2000:]}")
        wait_for(lambda: f"line-broker: connected to 127.0.0.1:{mosquitto.port}" in daemon.log(), 10, "gauges")
        time.sleep(0.5)
        publish(mosquitto.port, 0, 5, time.time() - 60)
        wait_for(lambda: host.kinds().count("DDATA") >= 5, 15, "5 DDATA")
        # what a host or anyone on the broker may send that is no rebirth: ignored, the node stays up
        no_rebirth = tahu_encode({"timestamp": 1, "metrics": [
            {"name": "Node Control/Rebirth", "type": "Boolean", "value": False},
            {"name": "Node Control/Reboot", "type": "Boolean", "value": True}]})
        for topic, junk in ((f"spBv1.0/{GROUP}/NCMD/{NODE}", b"\xff\x00garbage"),
                            (f"spBv1.0/{GROUP}/NCMD/{NODE}", no_rebirth),
                            (f"spBv1.0/{GROUP}/NCMD/{NODE}", b""),
                            (f"spBv1.0/{GROUP}/DCMD/{NODE}/SHAFT-20", ncmd)):
            host.client.publish(topic, junk, 0).wait_for_publish(5)
        time.sleep(1.0)
        assert host.kinds().count("NBIRTH") == 1
        host.client.publish(f"spBv1.0/{GROUP}/NCMD/{NODE}", ncmd, 0).wait_for_publish(5)
        wait_for(lambda: host.kinds().count("NBIRTH") >= 2, 15, "the rebirth")
        publish(mosquitto.port, 5, 3, time.time() - 30)
        wait_for(lambda: host.kinds().count("DDATA") >= 8, 15, "DDATA after the rebirth")
    finally:
        daemon.stop()
        host.stop()
    # the gateway's messages (the host hears its own commands too, the garbage among them)
    decoded = tahu([(t, p) for t, p in host.messages if t.split("/")[2] not in ("NCMD", "DCMD")])
    kinds = [d["topic"].split("/")[2] for d in decoded]
    births = [i for i, k in enumerate(kinds) if k == "NBIRTH"]
    assert len(births) == 2 and kinds[births[1] + 1] == "DBIRTH"
    first, again = (decoded[i]["payload"] for i in births)
    bd = [{m["name"]: m["value"] for m in p["metrics"]}["bdSeq"] for p in (first, again)]
    assert bd[0] == bd[1]  # one connection, one bdSeq
    # seq restarts at 0 on the NBIRTH and runs on through the DBIRTH and the DDATA after it
    after = [d["payload"]["seq"] for d in decoded[births[1]:] if d["topic"].split("/")[2] != "NDEATH"]
    assert after == list(range(len(after)))
    dbirth = {m["name"]: m["value"] for m in decoded[births[1] + 1]["payload"]["metrics"]}
    assert dbirth["runout/value"] == pytest.approx(0.02 + 4 * 0.001)  # the births show the values now
    assert kinds[-1] == "NDEATH"  # a clean stop publishes it before disconnecting
