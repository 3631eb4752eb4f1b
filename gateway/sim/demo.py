"""`spc-gateway demo`: a simulated line served over real OPC UA and Modbus TCP on loopback, the gateway
polling it, and the HMI page, all in one process. Disturbances are scheduled so the run rules trip.

Each simulated gauge is built from its characteristic in the demo's configuration (its own mean and
spread from the spec, or from fixed control limits), so the line is in spec until a planned shift,
trend or variance change moves it. `--simulators-only` serves the same line without the gateway, for
`spc-gateway run --config config/demo.yaml` and `spc-gateway probe`.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import shutil
import signal
import socket
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gateway.config import Characteristic, Config, ConfigError, ModbusAddress, load_config
from gateway.core.listen_error import ListenError, address_text, check_bindable
from gateway.sim.simulator import Disturbance, Gauge, ModbusSimulator
from gateway.spc.charts.registry import default_chart

log = logging.getLogger("gateway.demo")

PART_INTERVAL = 0.4  # seconds between parts on the simulated line
OPCUA_PREFIX = "Line3.CMM"
OPCUA_NODE = f"ns=2;s={OPCUA_PREFIX}.Shaft.OD"
# A capable process: the spec limits 5 sigma from the mean (Cp 1.67), so only the disturbances below
# take parts out of spec, and CAPABILITY_LOW (min_cpk 1.33) fires only after one.
CAPABLE_CP = 5.0 / 3.0



@dataclass(frozen=True)
class Plan:
    """One demo gauge's random seed and planned disturbances. The seeds are picked so that the limits
    learned from the baseline are close to the gauge's true sigma (a baseline that happens to be calm
    would learn limits so tight that the chart raises false alarms before any disturbance)."""

    seed: int
    disturbances: tuple[Disturbance, ...]


# What happens on the demo line, by characteristic, and what each disturbance is there to trip.
PLAN: dict[str, Plan] = {
    "diameter": Plan(1, (Disturbance("shift", start=160, length=60, size=1.5),  # test 2 (9 on one side), 5, 6
                         Disturbance("variance", start=300, length=40, size=3.0))),  # test 1 on R, out of spec
    "length": Plan(1, (Disturbance("trend", start=80, length=12, size=0.5),  # test 3, then out of spec
                       Disturbance("shift", start=200, length=30, size=-2.0))),
    "outer_diameter": Plan(5, (Disturbance("alternate", start=120, length=20, size=1.2),
                               Disturbance("shift", start=220, length=40, size=2.5))),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def demo_config(*, listen: str, db: str, modbus_port: int, opcua_port: int) -> dict[str, Any]:
    """The demo line's configuration, as a technician would write it (see config/demo.yaml).

    Each characteristic names its chart, as config/demo.yaml shows a technician; the chart is the
    default for its subgroup size (chart names belong to gateway.spc.charts alone)."""
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
                 "spec": {"lsl": 9.7, "target": 10.0, "usl": 10.3}, "chart": default_chart(5).name, "subgroup_size": 5,
                 "limits": {"baseline_subgroups": 20}, "rules": "nelson",
                 "capability": {"every_subgroups": 10, "window_subgroups": 50, "min_cpk": 1.33}},
                {"name": "length", "unit": "mm", "source": "plc",
                 "modbus": {"unit": 1, "table": "holding", "address": 120, "data_type": "float32"},
                 "sampling": {"part_counter": {"table": "holding", "address": 130, "data_type": "uint32"}},
                 "spec": {"lsl": 39.8, "usl": 40.2}, "chart": default_chart(1).name,
                 "limits": {"center": 40.0, "sigma": 0.04}, "rules": [1, 2, 3, 5, 6]},
            ]},
            {"id": 2, "code": "SHAFT-20", "name": "20mm 샤프트", "characteristics": [
                {"name": "outer_diameter", "unit": "mm", "source": "cmm", "opcua": {"node_id": OPCUA_NODE},
                 "spec": {"lsl": 19.98, "target": 20.0, "usl": 20.02},
                 "chart": default_chart(1).name,
                 "limits": {"baseline_subgroups": 30}, "rules": "western_electric",
                 "capability": {"every_subgroups": 30, "window_subgroups": 100, "min_cpk": 1.33}},
            ]},
        ],
    }


def nominal(characteristic: Characteristic) -> tuple[float, float]:
    """The mean and sigma of a capable process for this characteristic.

    Fixed control limits say both; otherwise the target (or the middle of the spec) and a sigma that
    puts the spec limits 5 sigma away. A one-sided spec needs a target.
    """
    limits, spec = characteristic.limits, characteristic.spec
    if limits.center is not None and limits.sigma is not None:
        return limits.center, limits.sigma
    if spec.lsl is not None and spec.usl is not None:
        mean = spec.target if spec.target is not None else (spec.lsl + spec.usl) / 2
        return mean, (spec.usl - spec.lsl) / (6 * CAPABLE_CP)
    limit = spec.lsl if spec.lsl is not None else spec.usl
    if spec.target is not None and limit is not None and limit != spec.target:
        return spec.target, abs(spec.target - limit) / (3 * CAPABLE_CP)
    raise ValueError(f"{characteristic.name}: a simulated gauge needs a two-sided spec, a target and one "
                     "spec limit, or fixed limits (center and sigma)")


def demo_gauges(config: Config) -> dict[str, Gauge]:
    """A gauge per characteristic, by name: its own mean and spread, and the planned disturbances."""
    gauges: dict[str, Gauge] = {}
    characteristics = [c for p in config.products for c in p.characteristics]
    for number, characteristic in enumerate(characteristics, start=1):
        plan = PLAN.get(characteristic.name, Plan(number, ()))
        mean, sigma = nominal(characteristic)
        gauge = Gauge(mean, sigma, seed=plan.seed)
        for disturbance in plan.disturbances:
            gauge.schedule(disturbance)
        gauges[characteristic.name] = gauge
    return gauges


def modbus_simulator(config: Config, gauges: dict[str, Gauge], port: int) -> ModbusSimulator:
    """The demo PLC: each Modbus characteristic's gauge at its configured address and part counter."""
    modbus = ModbusSimulator(port=port)
    for c in (c for p in config.products for c in p.characteristics):
        counter = c.sampling.counter
        if c.modbus is not None and isinstance(counter, ModbusAddress):
            modbus.add_gauge(gauges[c.name], unit=c.modbus.unit, address=c.modbus.address,
                             counter_address=counter.address)
    return modbus


def opcua_gauges(config: Config, gauges: dict[str, Gauge]) -> dict[str, Gauge]:
    """The demo CMM's gauges, by the name the OPC UA simulator serves them under (`PREFIX.NAME`)."""
    served: dict[str, Gauge] = {}
    for c in (c for p in config.products for c in p.characteristics):
        if c.opcua is not None:
            served[c.opcua.node_id.removeprefix(f"ns=2;s={OPCUA_PREFIX}.")] = gauges[c.name]
    return served


def _banner(config: Config, config_path: Path, modbus_port: int, opcua_endpoint: str,
            simulators_only: bool) -> str:
    listen = config.server.listen
    where = address_text(listen.host, listen.port)
    lines = [""]
    if simulators_only:
        lines.append(f"  spc-gateway demo: simulators only (Ctrl-C stops); the gateway for them: "
                     f"spc-gateway run --config {config_path}")
    else:
        lines.append(f"  spc-gateway demo: open http://{where}/   (data in {config.storage.path}; Ctrl-C stops)")
    lines += [
        f"  simulated PLC, Modbus TCP:  127.0.0.1:{modbus_port}",
        f"  simulated CMM, OPC UA:      {opcua_endpoint}",
        f"  configuration:              {config_path}",
        f"  read them yourself:         spc-gateway probe --config {config_path} plc   (or cmm)",
        "",
    ]
    return "\n".join(lines)


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def run_demo(listen: str, db: str | None, *, modbus_port: int = 0, opcua_port: int = 0,
                   simulators_only: bool = False) -> int:
    """Start the simulators and the gateway; run until Ctrl-C / SIGTERM. Ports 0: any free port."""
    # the generated config, and the database unless --db names one: removed when the demo ends, however
    # it ends (Ctrl-C, SIGTERM, a port in use); a --db file lives elsewhere and is kept
    remove_abandoned_workdirs()
    workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
    held = _hold_workdir(workdir)
    try:
        return await _run_demo_in(workdir, listen, db, modbus_port=modbus_port, opcua_port=opcua_port,
                                  simulators_only=simulators_only)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        os.close(held)


WORKDIR_PREFIX = "spc-gateway-demo-"
WORKDIR_LOCK = "demo.lock"
WORKDIR_GRACE_S = 10.0


def _hold_workdir(workdir: Path) -> int:
    """Lock the demo's folder for the life of the process: the kernel drops the lock however the
    process ends, so a folder whose lock can be taken belongs to no running demo."""
    fd = os.open(workdir / WORKDIR_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def remove_abandoned_workdirs(tmp: str | None = None) -> list[Path]:
    """Remove the folders of demos that were killed (SIGKILL, power loss) before they could clean up.

    Only this user's folders with a demo lock nobody holds; folders of running demos, of other users
    and of versions without the lock are left alone."""
    removed: list[Path] = []
    for folder in Path(tmp or tempfile.gettempdir()).glob(WORKDIR_PREFIX + "*"):
        try:
            info = folder.lstat()
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
                continue
            if time.time() - info.st_mtime < WORKDIR_GRACE_S:
                continue  # a demo starting right now, between its mkdtemp and its lock
            fd = os.open(folder / WORKDIR_LOCK, os.O_RDWR | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a running demo holds it
        finally:
            os.close(fd)
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    if removed:
        log.info("removed %d folder(s) of demos that were killed: %s", len(removed),
                 ", ".join(str(f) for f in removed))
    return removed


async def _run_demo_in(workdir: Path, listen: str, db: str | None, *, modbus_port: int, opcua_port: int,
                       simulators_only: bool) -> int:
    from gateway.app import serve
    from gateway.sim.opcua_server import OpcUaSimulator, start_opcua_simulator

    db_path = db or str(workdir / "demo.sqlite3")
    modbus_port = modbus_port or _free_port()
    opcua_port = opcua_port or _free_port()
    config_path = workdir / "gateway.yaml"
    config_path.write_text(yaml.safe_dump(
        demo_config(listen=listen, db=db_path, modbus_port=modbus_port, opcua_port=opcua_port),
        allow_unicode=True, sort_keys=False))
    try:
        config, _warnings = load_config(str(config_path))
    except ConfigError as exc:  # a malformed --listen
        log.error("--listen %s: %s", listen, str(exc).splitlines()[0])
        return 1
    gauges = demo_gauges(config)
    modbus = modbus_simulator(config, gauges, modbus_port)
    opcua: OpcUaSimulator | None = None
    try:
        if not simulators_only:
            # before anything starts: a taken page port is the one line the user sees
            check_bindable("--listen", config.server.listen.host, config.server.listen.port)
        await modbus.start()
        modbus.start_line(PART_INTERVAL)
        opcua = await start_opcua_simulator(opcua_port, opcua_gauges(config, gauges), PART_INTERVAL,
                                            prefix=OPCUA_PREFIX)
        print(_banner(config, config_path, modbus_port, opcua.endpoint, simulators_only), flush=True)
        if simulators_only:
            await _until_signalled()
            return 0
        return await serve(str(config_path))
    except ListenError as exc:
        # the page port is the one a user picks: say how to pick another
        hint = "  (another port: --listen HOST:PORT, make demo PORT=N)" if "--listen" in str(exc) else ""
        log.error("%s%s", exc, hint)
        return 1
    finally:
        await modbus.stop_line()
        await modbus.stop()
        if opcua is not None:
            await opcua.stop()
