"""Modbus RTU over a pseudo-terminal pair (socat): one dead unit must not stall the bus."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

from gateway.config import Backoff, Characteristic, Product, Sampling
from gateway.core.model import Measurement
from gateway.sim.simulator import ModbusSimulator, PlcMemory
from gateway.sources.base import Binding
from gateway.sources.modbus.settings import ModbusAddress, ModbusSettings
from gateway.sources.modbus.source import ModbusSource as ModbusGaugeSource

SOCAT = shutil.which("socat") or "/usr/bin/socat"


@pytest.fixture
def pty_pair() -> Iterator[tuple[str, str]]:
    """Two connected pseudo-terminals: a serial cable between the gateway and the bus."""
    proc = subprocess.Popen([SOCAT, "-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0"],
                            stderr=subprocess.PIPE, text=True)
    ptys: list[str] = []
    assert proc.stderr is not None
    deadline = time.monotonic() + 5
    while len(ptys) < 2 and time.monotonic() < deadline:
        line = proc.stderr.readline()
        match = re.search(r"PTY is (\S+)", line)
        if match:
            ptys.append(match.group(1))
    assert len(ptys) == 2, "socat did not open two ptys"
    yield ptys[0], ptys[1]
    proc.terminate()
    proc.wait(5)


def bind(name: str, unit: int) -> Binding:
    characteristic = Characteristic(name=name, source="rs485", sampling=Sampling("every_poll"),
                                    address=ModbusAddress(0, unit=unit, table="input", data_type="int16",
                                                         scale=0.01))
    return Binding(Product(1, "P", "P", (characteristic,)), characteristic)


def test_live_unit_keeps_its_rate_while_a_dead_unit_backs_off(pty_pair: tuple[str, str]) -> None:
    bus_side, gateway_side = pty_pair
    poll_interval, duration = 0.05, 2.0

    async def main() -> tuple[list[Measurement], ModbusGaugeSource]:
        memory = PlcMemory(units=(7,))  # unit 9 is configured in the gateway but never answers
        memory.set_registers(7, "input", 0, [4001])
        sim = ModbusSimulator(memory, serial_port=bus_side, baudrate=19200)
        await sim.start()
        items: list[Measurement] = []

        async def sink(m: Measurement) -> None:
            items.append(m)

        config = ModbusSettings(name="rs485", transport="rtu", serial_port=gateway_side, baudrate=19200,
                              parity="N", poll_interval=poll_interval, timeout=0.1,
                              backoff=Backoff(0.5, 2.0))
        source = ModbusGaugeSource(config, [bind("live", 7), bind("dead", 9)], sink)
        await source.start()
        await asyncio.sleep(duration)
        await source.stop()
        await sim.stop()
        return items, source

    items, source = asyncio.run(main())
    live = [m.value for m in items if m.key.characteristic == "live"]
    assert live and all(v == pytest.approx(40.01) for v in live)
    assert not [m for m in items if m.key.characteristic == "dead"]
    # The dead unit is retried only on its backoff (0.5 s, 1 s, ...): about 3 timeouts of 100 ms in 2 s.
    dead = source.units[9]
    assert 1 <= dead.timeouts <= 5, dead.timeouts
    assert source.health.reconnects == 0  # the port stays open; only the unit is backed off
    nominal = duration / poll_interval
    print(f"live readings {len(live)} of {nominal:.0f} polls, dead unit timeouts {dead.timeouts}")
    assert len(live) >= 0.7 * nominal, (len(live), nominal)
