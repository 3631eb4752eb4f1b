"""`spc-gateway demo`: a simulated line served over real OPC UA and Modbus TCP on loopback, the gateway
polling it, and the HMI page, all in one process. Disturbances are scheduled so the run rules trip.
"""

from __future__ import annotations

import logging
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

import yaml

from gateway.sources.simulator import Disturbance, Gauge, ModbusSimulator

log = logging.getLogger("gateway.demo")

PART_INTERVAL = 0.4  # seconds between parts on the simulated line
OPCUA_NODE = "ns=2;s=Line3.CMM.Shaft.OD"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def demo_config(*, listen: str, db: str, modbus_port: int, opcua_port: int) -> dict[str, Any]:
    """The demo line's configuration, as a technician would write it (see config/demo.yaml)."""
    return {
        "gateway": {"name": "DEMO-LINE", "language": "ko", "timezone": "Asia/Seoul"},
        "storage": {"path": db, "retention": "30d", "max_size": "1GB"},
        "server": {"listen": listen},
        "sources": [
            {"name": "plc", "type": "modbus", "transport": "tcp", "host": "127.0.0.1", "port": modbus_port,
             "poll_interval": "100ms", "timeout": "500ms"},
            {"name": "cmm", "type": "opcua", "endpoint": f"opc.tcp://127.0.0.1:{opcua_port}/spc-gateway/sim/",
             "mode": "subscribe", "sampling_interval": "100ms"},
        ],
        "products": [
            {"id": 1, "code": "BOLT-M10", "name": "M10 볼트", "characteristics": [
                {"name": "diameter", "unit": "mm", "source": "plc",
                 "modbus": {"unit": 1, "table": "holding", "address": 100, "data_type": "float32",
                            "byte_order": "ABCD"},
                 "sampling": {"part_counter": {"table": "holding", "address": 110, "data_type": "uint32"}},
                 "spec": {"lsl": 9.7, "target": 10.0, "usl": 10.3}, "chart": "xbar_r", "subgroup_size": 5,
                 "limits": {"baseline_subgroups": 20}, "rules": "nelson",
                 "capability": {"every_subgroups": 10, "window_subgroups": 50, "min_cpk": 1.33}},
                {"name": "length", "unit": "mm", "source": "plc",
                 "modbus": {"unit": 1, "table": "holding", "address": 120, "data_type": "float32"},
                 "sampling": {"part_counter": {"table": "holding", "address": 130, "data_type": "uint32"}},
                 "spec": {"lsl": 39.8, "usl": 40.2}, "chart": "imr",
                 "limits": {"center": 40.0, "sigma": 0.04}, "rules": [1, 2, 3, 5, 6]},
            ]},
            {"id": 2, "code": "SHAFT-20", "name": "20mm 샤프트", "characteristics": [
                {"name": "outer_diameter", "unit": "mm", "source": "cmm", "opcua": {"node_id": OPCUA_NODE},
                 "spec": {"lsl": 19.98, "target": 20.0, "usl": 20.02}, "chart": "imr",
                 "limits": {"baseline_subgroups": 30}, "rules": "western_electric",
                 "capability": {"every_subgroups": 30, "window_subgroups": 100, "min_cpk": 1.33}},
            ]},
        ],
    }


def demo_gauges() -> dict[str, Gauge]:
    """The three gauges with disturbances that trip shifts, trends, spec and variance alerts."""
    diameter = Gauge(10.0, 0.04, seed=1)
    diameter.schedule(Disturbance("shift", start=160, length=60, size=1.5))  # test 2 (9 on one side), 5, 6
    diameter.schedule(Disturbance("variance", start=300, length=40, size=3.0))  # test 1 on R, spec
    length = Gauge(40.0, 0.04, seed=2)
    length.schedule(Disturbance("trend", start=80, length=12, size=0.5))  # test 3, then out of spec
    length.schedule(Disturbance("shift", start=200, length=30, size=-2.0))
    od = Gauge(20.0, 0.004, seed=3)
    od.schedule(Disturbance("alternate", start=120, length=20, size=1.2))
    od.schedule(Disturbance("shift", start=220, length=40, size=2.5))
    return {"diameter": diameter, "length": length, "outer_diameter": od}


async def run_demo(listen: str, db: str | None) -> int:
    """Start the simulators and the gateway; run until Ctrl-C / SIGTERM."""
    # the generated config, and the database unless --db names one: removed when the demo ends, however
    # it ends (Ctrl-C, SIGTERM, a port in use); a --db file lives elsewhere and is kept
    workdir = Path(tempfile.mkdtemp(prefix="spc-gateway-demo-"))
    try:
        return await _run_demo_in(workdir, listen, db)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def _run_demo_in(workdir: Path, listen: str, db: str | None) -> int:
    from gateway.app import serve
    from gateway.sources.sim_opcua import start_opcua_simulator

    db_path = db or str(workdir / "demo.sqlite3")
    gauges = demo_gauges()
    modbus = ModbusSimulator(port=_free_port())
    modbus.add_gauge(gauges["diameter"], unit=1, address=100, counter_address=110)
    modbus.add_gauge(gauges["length"], unit=1, address=120, counter_address=130)
    await modbus.start()
    modbus.start_line(PART_INTERVAL)
    opcua_port = _free_port()
    opcua = await start_opcua_simulator(opcua_port, {"Shaft.OD": gauges["outer_diameter"]}, PART_INTERVAL)
    config = demo_config(listen=listen, db=db_path, modbus_port=modbus.port, opcua_port=opcua_port)
    config_path = workdir / "gateway.yaml"
    config_path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    host, _, port = listen.rpartition(":")
    print(f"\n  spc-gateway demo: open http://{host or '127.0.0.1'}:{port}/   (data in {db_path}; Ctrl-C stops)\n",
          flush=True)
    try:
        return await serve(str(config_path))
    finally:
        await modbus.stop_line()
        await modbus.stop()
        await opcua.stop()
