"""`probe` of an OPC UA source against the simulator's real asyncua server: the Objects tree with node
ids, values and data types (bounded), one node by id or by characteristic, and clear failures."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from gateway.config import Config
from gateway.sim.opcua_server import start_opcua_simulator
from gateway.sim.simulator import Gauge
from gateway.sources.registry import load_config
from gateway.tools import probe
from tests.conftest import free_port

pytestmark = [pytest.mark.timeout(40), pytest.mark.anyio]

CONFIG = """\
gateway: {{name: T}}
storage: {{path: {db}}}
sources:
  - {{name: cmm, type: opcua, endpoint: "opc.tcp://127.0.0.1:{port}/spc-gateway/sim/", timeout: 1s}}
products:
  - id: 1
    code: P
    name: P
    characteristics:
      - name: outer_diameter
        source: cmm
        opcua: {{node_id: "ns=2;s=Line3.CMM.OD"}}
        spec: {{lsl: 19.98, usl: 20.02}}
"""


def load(tmp_path: Path, port: int) -> Config:
    path = tmp_path / "gateway.yaml"
    path.write_text(CONFIG.format(db=tmp_path / "db.sqlite3", port=port))
    return load_config(str(path))[0]


async def run_probe(config: Config, address: str | None, **limits: int) -> tuple[int, str]:
    out = io.StringIO()
    if limits:
        from gateway.sources.opcua import probe as probe_opcua

        status = await probe_opcua.probe(config, config.source("cmm"), address, out, **limits)  # type: ignore[arg-type]
    else:
        status = await probe.probe_source(config, "cmm", address, out)
    return status, out.getvalue()


async def test_probe_browses_the_objects_tree_and_reads_nodes(tmp_path: Path) -> None:
    port = free_port()
    sim = await start_opcua_simulator(port, {"OD": Gauge(20.0, 0.004, seed=1), "Runout": Gauge(0.02, 0.004)},
                                      3600.0)
    try:
        await sim.write("OD", 20.005, counter=42)
        config = load(tmp_path, port)

        status, tree = await run_probe(config, None)
        assert status == 0, tree
        assert "ns=2  urn:spc-gateway:simulator" in tree
        assert "Line3.CMM  ns=2;s=Line3.CMM  (Object)" in tree
        od_line = next(line for line in tree.splitlines() if "ns=2;s=Line3.CMM.OD " in line)
        assert "= 20.005  Double" in od_line and "<- characteristic outer_diameter" in od_line
        assert "ns=2;s=Line3.CMM.OD.PartCounter  = 42  UInt32" in tree
        assert "ns=2;s=Line3.CMM.Runout  = 0.02  Double" in tree
        assert "ns=0;i=2253" not in tree  # the standard Server object is left out

        status, by_id = await run_probe(config, "ns=2;s=Line3.CMM.OD")
        assert status == 0 and "value=20.005 type=Double status=Good" in by_id
        status, by_name = await run_probe(config, "outer_diameter")
        assert status == 0 and by_name.startswith("outer_diameter (ns=2;s=Line3.CMM.OD): value=20.005")
        status, folder = await run_probe(config, "ns=2;s=Line3.CMM")
        assert status == 0 and "ns=2;s=Line3.CMM.Runout  = 0.02  Double" in folder

        status, bounded = await run_probe(config, None, max_nodes=2)
        assert status == 0 and "more nodes not shown (at most 2)" in bounded
        assert "Runout" not in bounded
        status, shallow = await run_probe(config, None, max_depth=1)
        assert status == 0 and "deeper levels not shown" in shallow and "Line3.CMM.OD" not in shallow

        status, missing = await run_probe(config, "ns=2;s=Nope")
        assert status == 1 and "the server has no such node (BadNodeIdUnknown)" in missing
        status, garbage = await run_probe(config, "not a node")
        assert status == 1 and "neither a characteristic of cmm nor a valid node id" in garbage
    finally:
        await sim.stop()
    status, down = await run_probe(config, None)
    assert status == 1 and "connection failed" in down
