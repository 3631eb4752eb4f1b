"""The andon output in the real daemon (a subprocess) against the simulated PLC (a real pymodbus server in
this process): `spc-gateway outputs test` while it runs, a SIGKILL and restart with the alert still open
(the coil is written on again from the stored alert), and an output added by SIGHUP."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import yaml

from gateway.sim.simulator import ModbusSimulator
from tests.conftest import free_port
from tests.daemon_helpers import REPO, Daemon, minimal_config, write_config
from tests.test_andon import COIL_RED, RED, coil, plc_memory, until


async def cli(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "gateway.cli", *args, cwd=REPO,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


def test_outputs_test_sigkill_restart_and_reload(tmp_path: Path) -> None:
    port, modbus_port = free_port(), free_port()
    raw = minimal_config(tmp_path, port=port, modbus_port=modbus_port)
    raw["sources"][0]["backoff"] = {"initial": "100ms", "maximum": "500ms"}
    raw["outputs"] = [RED]
    path = write_config(tmp_path, raw)
    url = f"ws://127.0.0.1:{port}"

    async def scenario() -> None:
        memory = plc_memory(11.0)  # every part above USL: OUT_OF_SPEC and OUT_OF_CONTROL
        plc = ModbusSimulator(memory, port=modbus_port)
        await plc.start()
        daemon = Daemon(path)
        try:
            await asyncio.to_thread(daemon.start, port)
            await until(lambda: coil(memory, COIL_RED) == 1, 20, "andon on for the open alert")

            # commissioning while the daemon runs: off by hand for a second, then the alerts decide again
            code, out = await cli("outputs", "test", "andon-red", "off", "--hold", "1s", "--url", url)
            assert code == 0, out
            assert "andon-red: off" in out
            assert coil(memory, COIL_RED) == 0  # written before the command answered
            await until(lambda: coil(memory, COIL_RED) == 1, 10, "back on after the hold")
            code, out = await cli("outputs", "test", "andon-blue", "on", "--url", url)
            assert code == 1 and "no output named 'andon-blue'" in out, out

            # the gateway dies and the PLC restarts meanwhile (coils 0); the part is back in spec, so only
            # the stored, still open alert can turn the andon on again
            daemon.kill()
            memory.set_value(1, "holding", 0, 10.0, "float32")
            memory.set_registers(1, "coil", COIL_RED, [0])
            daemon = Daemon(path)
            await asyncio.to_thread(daemon.start, port)
            await until(lambda: coil(memory, COIL_RED) == 1, 20, "rewritten on after the restart")
            code, out = await cli("status", "--url", url)
            assert "output andon-red: on (wants on, source plc), 0 failed writes" in out, out

            # SIGHUP: a new output is driven at once
            raw["outputs"].append({"name": "andon-any", "when": {"alert_types": ["OUT_OF_SPEC"]},
                                   "write": {"source": "plc", "coil": 22}})
            path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False))
            daemon.signal(signal.SIGHUP)
            await until(lambda: coil(memory, 22) == 1, 20, "the output added by reload")
            assert await asyncio.to_thread(daemon.stop) == 0
            assert "Traceback" not in daemon.log(), daemon.log()
        finally:
            daemon.kill()
            await plc.stop()

    asyncio.run(scenario())
