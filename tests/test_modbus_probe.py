"""`probe` against a real pymodbus server: raw registers and every byte order, and precise failures."""

from __future__ import annotations

import argparse
import asyncio
import io
from pathlib import Path

import pytest

from gateway.sim.simulator import ModbusSimulator, PlcMemory
from gateway.sources.registry import load_config
from gateway.tools import probe
from tests.conftest import free_port

CONFIG = """\
gateway: {{name: T}}
storage: {{path: {db}}}
sources:
  - {{name: plc, type: modbus, transport: tcp, host: 127.0.0.1, port: {port}, timeout: 200ms}}
products:
  - id: 1
    code: P
    name: P
    characteristics:
      - name: diameter
        source: plc
        modbus: {{unit: 1, table: holding, address: 100, data_type: float32, byte_order: CDAB, scale: 2}}
        sampling: {{part_counter: {{table: holding, address: 110, data_type: uint32}}}}
        spec: {{lsl: 9, usl: 11}}
"""


def write_config(tmp_path: Path, port: int) -> str:
    path = tmp_path / "gateway.yaml"
    path.write_text(CONFIG.format(db=tmp_path / "db.sqlite3", port=port))
    return str(path)


def probe_many(config_path: str, addresses: list[str | None], memory: PlcMemory) -> list[tuple[int, str]]:
    async def main() -> list[tuple[int, str]]:
        config, _ = load_config(config_path)
        sim = ModbusSimulator(memory, port=config.source("plc").port)
        await sim.start()
        results = []
        for address in addresses:
            out = io.StringIO()
            status = await probe.probe_source(config, "plc", address, out)
            results.append((status, out.getvalue()))
        await sim.stop()
        return results

    return asyncio.run(main())


def test_probe_prints_raw_registers_and_all_byte_orders(tmp_path: Path) -> None:
    memory = PlcMemory()
    memory.define(1, "holding", 0, 120)
    memory.set_value(1, "holding", 100, 12.5, "float32", "CDAB")  # registers [0x0000, 0x4148]
    memory.set_value(1, "holding", 110, 42, "uint32")
    memory.set_registers(1, "coil", 3, [1])
    path = write_config(tmp_path, free_port())
    (s1, whole), (s2, named), (s3, untyped), (s4, coil) = probe_many(
        path, [None, "diameter", "holding:100", "coil:3"], memory)
    assert (s1, s2, s3, s4) == (0, 0, 0, 0)
    assert "raw registers [0, 16712]  hex 0000 4148" in whole
    assert "configured float32 CDAB: 25  (raw 12.5)" in whole  # scale 2
    assert "diameter (part counter): unit 1 holding 110" in whole and "configured uint32 ABCD: 42" in whole
    float_row = next(line for line in named.splitlines() if line.strip().startswith("float32"))
    assert float_row.split()[1:] == ["2.3418e-41", "12.5", "2.592e-41", "197632"]
    assert "ABCD" in untyped and "float64" in untyped and "uint16 0" in untyped
    assert coil.strip() == "coil:3: unit 1 coil 3 = 1"


def test_probe_failures_say_what_is_wrong(tmp_path: Path) -> None:
    memory = PlcMemory(units=(1,))
    path = write_config(tmp_path, free_port())
    results = probe_many(path, ["input:5:int16", "4/holding:0:int16", "holding:1:floaty", "length"], memory)
    assert [status for status, _ in results] == [1, 1, 1, 1]
    assert "Modbus exception 02 ILLEGAL DATA ADDRESS" in results[0][1]
    assert "unit 4 holding 0..0: no answer (timeout 0.2s)" in results[1][1]
    assert "unknown data type 'floaty'" in results[2][1]
    assert "not a characteristic of plc nor an address" in results[3][1]


def test_probe_command_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    probe.add_arguments(parser)
    path = write_config(tmp_path, free_port())  # nothing listens there
    assert probe.run(parser.parse_args(["--config", path, "nope"])) == 1
    assert "no source named 'nope'" in capsys.readouterr().err
    assert probe.run(parser.parse_args(["--config", path, "plc", "holding:0"])) == 1
    assert "plc: cannot connect to 127.0.0.1:" in capsys.readouterr().out
    assert probe.run(parser.parse_args(["--config", str(tmp_path / "missing.yaml"), "plc"])) == 1
