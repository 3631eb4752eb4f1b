"""The Sparkplug B edge node's state machine (gateway.outputs.sparkplug_node), its payloads decoded by
Eclipse Tahu's decoder (the npm package sparkplug-payload, run by node): an implementation no one here wrote.

The decoder is installed by `npm ci` into tests/sparkplug/node_modules when missing (package-lock.json
is committed, node_modules never); without node or npm the decoder tests are skipped, the rest runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from gateway.outputs import sparkplug_b_pb2 as pb
from gateway.outputs.sparkplug_node import REBIRTH, EdgeNode, rebirth_command

HERE = os.path.join(os.path.dirname(__file__), "sparkplug")


@pytest.fixture(scope="module")
def tahu():
    """decode(messages) -> Tahu's decoding of each (topic, payload) message."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed for Eclipse Tahu's decoder")
    if not os.path.isdir(os.path.join(HERE, "node_modules", "sparkplug-payload")):
        subprocess.run(["npm", "ci", "--silent", "--no-audit", "--no-fund"], cwd=HERE, check=True, timeout=300)

    def decode(messages):
        lines = "".join(json.dumps({"topic": t, "hex": p.hex()}) + "\n" for t, p, *_ in messages)
        out = subprocess.run(["node", os.path.join(HERE, "decode.js")], input=lines, capture_output=True,
                             text=True, check=True, timeout=60).stdout
        return [json.loads(line) for line in out.splitlines()]
    return decode


def node(**kw):
    return EdgeNode("PLANT1-LINE3", "spc-gw-line3", [(1, "SHAFT-20", ["diameter", "length"]), (2, "BOLT", ["od"])], **kw)


def measurement(value, *, product_id=1, c="diameter", in_spec=True):
    return {"type": "measurement", "measurement": {
        "product_id": product_id, "characteristic": c, "measurement_value": value, "is_within_spec": in_spec,
        "is_within_control": True, "measured_at": "2026-12-05T06:00:00.000Z"}}


def test_births_seq_bdseq_and_aliases_decoded_by_tahu(tahu):
    edge = node()
    will = edge.connect()
    births = edge.births(1_000)
    decoded = tahu([will] + births)
    assert will[0] == "spBv1.0/PLANT1-LINE3/NDEATH/spc-gw-line3" and will[2] == 1
    death, nbirth, *dbirths = decoded
    assert [m["name"] for m in death["payload"]["metrics"]] == ["bdSeq"]
    assert death["payload"]["metrics"][0]["value"] == 0
    assert nbirth["topic"] == "spBv1.0/PLANT1-LINE3/NBIRTH/spc-gw-line3"
    assert nbirth["payload"]["seq"] == 0
    metrics = {m["name"]: m for m in nbirth["payload"]["metrics"]}
    assert metrics["bdSeq"]["value"] == 0 and metrics[REBIRTH]["value"] is False
    assert metrics[REBIRTH]["type"] == "Boolean"
    assert [d["topic"] for d in dbirths] == ["spBv1.0/PLANT1-LINE3/DBIRTH/spc-gw-line3/SHAFT-20",
                                             "spBv1.0/PLANT1-LINE3/DBIRTH/spc-gw-line3/BOLT"]
    assert [d["payload"]["seq"] for d in dbirths] == [1, 2]
    shaft = {m["name"]: m for m in dbirths[0]["payload"]["metrics"]}
    assert shaft["diameter/value"]["type"] == "Double" and shaft["diameter/in_spec"]["type"] == "Boolean"
    assert shaft["diameter/limits_version"]["type"] == "Int32" and shaft["alerts/last"]["type"] == "String"
    assert shaft["alerts/open"]["value"] == 0
    aliases = [m["alias"] for d in [nbirth] + dbirths for m in d["payload"]["metrics"]]
    assert len(aliases) == len(set(aliases))  # unique across the node and its devices


def test_ddata_aliases_timestamps_only_changes_and_historical(tahu):
    edge = node()
    edge.connect()
    edge.births(1_000)
    first = edge.data(measurement(10.0), 5_000, historical=True)
    edge.devices[1].sent.update({"diameter/in_spec": True, "diameter/in_control": True})  # what the host has
    live = edge.data(measurement(10.1), 6_000, historical=False)
    decoded = tahu([first, live])
    assert decoded[0]["topic"] == "spBv1.0/PLANT1-LINE3/DDATA/spc-gw-line3/SHAFT-20"
    hist = decoded[0]["payload"]["metrics"]
    assert all(m["isHistorical"] for m in hist) and len(hist) == 3
    assert all("name" not in m or not m["name"] for m in hist)  # aliases only
    assert [m.get("isHistorical", False) for m in decoded[1]["payload"]["metrics"]] == [False]
    assert decoded[1]["payload"]["metrics"][0]["value"] == 10.1
    assert decoded[1]["payload"]["metrics"][0]["timestamp"] == 6_000
    assert [d["payload"]["seq"] for d in decoded] == [3, 4]


def test_ddata_carries_only_what_changed_live_and_in_history(tahu):
    """Contract §1: DDATA carries only what changed. Live: against the births and the live DDATA since;
    history: against the previous historical DDATA (the host files it apart from its current values)."""
    edge = node()
    edge.connect()
    edge.births(0)  # the host has nulls: the first live one carries all three
    live = [edge.data(measurement(v, in_spec=spec), i, historical=False)
            for i, (v, spec) in enumerate(((10.0, True), (10.1, True), (10.2, False), (10.2, False)))]
    history = [edge.data(measurement(v, in_spec=spec), i, historical=True)
               for i, (v, spec) in enumerate(((9.0, True), (9.1, True), (9.2, False)))]
    decoded = tahu(live + history)
    aliases = {alias: name for name, (alias, _) in edge.devices[1].metrics.items()}

    def names(d):
        return sorted(aliases[m["alias"]] for m in d["payload"]["metrics"])
    assert [names(d) for d in decoded[:4]] == [
        ["diameter/in_control", "diameter/in_spec", "diameter/value"], ["diameter/value"],
        ["diameter/in_spec", "diameter/value"], ["diameter/value"]]  # a repeated value is a new sample
    assert [names(d) for d in decoded[4:]] == [
        ["diameter/in_control", "diameter/in_spec", "diameter/value"], ["diameter/value"],
        ["diameter/in_spec", "diameter/value"]]
    # a rebirth: the host has what the births show, nothing is sent again that did not change
    edge.on_ncmd(rebirth_command(9), 9)
    again = pb.Payload.FromString(edge.data(measurement(9.3, in_spec=False), 10, historical=False)[1])
    assert [aliases[m.alias] for m in again.metrics] == ["diameter/value"]


def test_limits_version_from_the_subgroup_event():
    edge = node()
    edge.connect()
    edge.births(0)
    subgroup = {"type": "subgroup", "subgroup": {
        "product_id": 1, "characteristic": "diameter", "value": 10.0, "center": 10.0, "ucl": 10.3,
        "lcl": 9.7, "limits_version": 7, "measured_at": "2026-12-05T06:00:00.000Z"}}
    message = pb.Payload.FromString(edge.data(subgroup, 1, historical=False)[1])
    alias = edge.devices[1].metrics["diameter/limits_version"][0]
    assert {m.alias: m.int_value for m in message.metrics}[alias] == 7
    assert edge.devices[1].values["diameter/limits_version"] == 7


def test_bdseq_continues_from_the_stored_one_and_wraps():
    edge = EdgeNode("G", "N", [], bd_seq=254)
    assert pb.Payload.FromString(edge.connect()[1]).metrics[0].long_value == 255
    assert pb.Payload.FromString(edge.connect()[1]).metrics[0].long_value == 0


def test_seq_wraps_to_zero_after_255():
    edge = node()
    edge.connect()
    edge.births(0)  # seq 0..2
    seqs = [pb.Payload.FromString(edge.data(measurement(float(i)), i, historical=False)[1]).seq
            for i in range(300)]
    assert seqs[:3] == [3, 4, 5] and seqs[252] == 255 and seqs[253] == 0


def test_bdseq_grows_per_connection_and_births_carry_it():
    edge = node()
    for expected in (0, 1, 2):
        will = pb.Payload.FromString(edge.connect()[1])
        birth = pb.Payload.FromString(edge.births(0)[0][1])
        assert will.metrics[0].long_value == expected
        assert {m.name: m.long_value for m in birth.metrics}["bdSeq"] == expected
        assert birth.seq == 0


def test_rebirth_on_ncmd_and_not_otherwise():
    edge = node()
    edge.connect()
    edge.births(0)
    edge.data(measurement(1.0), 1, historical=False)
    again = edge.on_ncmd(rebirth_command(2), 2)
    assert [t.split("/")[2] for t, *_ in again] == ["NBIRTH", "DBIRTH", "DBIRTH"]
    assert pb.Payload.FromString(again[0][1]).seq == 0
    shaft = {m.name: m for m in pb.Payload.FromString(again[1][1]).metrics}
    assert shaft["diameter/value"].double_value == 1.0  # births show the values now
    no = pb.Payload()
    no.metrics.add(name=REBIRTH, datatype=11).boolean_value = False
    assert edge.on_ncmd(no.SerializeToString(), 3) == [] and edge.on_ncmd(b"\xff\xff", 3) == []


def test_primary_host_state_holds_births_and_data():
    edge = node(primary_host_id="scada-host")
    edge.connect()
    assert "spBv1.0/STATE/scada-host" in edge.subscriptions()
    assert edge.births(0) == [] and edge.data(measurement(1.0), 1, historical=False) is None
    births = edge.on_state(b'{"online": true, "timestamp": 100}', 5)
    assert [t.split("/")[2] for t, *_ in births][0] == "NBIRTH"
    assert edge.on_state(b'{"online": false, "timestamp": 50}', 6) == []  # older: ignored
    assert edge.may_publish()
    edge.on_state(b'{"online": false, "timestamp": 200}', 7)
    assert not edge.may_publish() and edge.data(measurement(2.0), 8, historical=False) is None
    assert edge.on_state(b"not json", 9) == []
    # what anyone on the broker may publish on the host's STATE topic: none of it brings the births back
    for junk in (b'{"online": "true", "timestamp": 300}', b'{"online": 1, "timestamp": 300}',
                 b'{"online": true, "timestamp": "300"}', b'{"online": true, "timestamp": true}',
                 b'{"online": true}', b'[true, 300]', b'"online"', b'{"online": true, "timestamp": 1e999}',
                 b"\xff\xfe", b""):
        assert edge.on_state(junk, 10) == [] and not edge.may_publish(), junk
    assert edge.on_state(b'{"online": true, "timestamp": 300}', 11)  # the real one still does


def test_alerts_open_counts_open_and_acknowledged():
    edge = node()
    edge.connect()
    edge.births(0)
    for alert_id, status in ((1, "OPEN"), (2, "ACKNOWLEDGED"), (3, "OPEN"), (3, "RESOLVED")):
        message = edge.data({"type": "alert", "alert": {"id": alert_id, "product_id": 1, "status": status}},
                            0, historical=False)
    metrics = {m.alias: m for m in pb.Payload.FromString(message[1]).metrics}
    device = edge.devices[1]
    assert metrics[device.metrics["alerts/open"][0]].int_value == 2
    assert json.loads(metrics[device.metrics["alerts/last"][0]].string_value)["status"] == "RESOLVED"


def test_contract_section_loads_unchanged(monkeypatch):
    """The contract's northbound.sparkplug keys (plant-integration §1), as written there."""
    from pathlib import Path

    from gateway.config import NorthboundSparkplug
    from gateway.sources.registry import load_config

    case = Path(__file__).parent / "config_cases" / "sparkplug_ok"
    monkeypatch.chdir(case)
    config, _warnings = load_config("gateway.yaml")
    assert config.northbound is not None
    assert config.northbound.sparkplug == NorthboundSparkplug("PLANT1-LINE3", "spc-gw-line3", "scada-host")
