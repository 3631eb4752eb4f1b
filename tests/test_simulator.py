"""The line simulator: disturbances do what they say, deterministically; served over real Modbus TCP."""

from __future__ import annotations

import asyncio
import statistics

import pytest
from pymodbus.client import AsyncModbusTcpClient

from gateway.sim.simulator import Disturbance, Gauge, ModbusSimulator, parse_disturbance
from gateway.sources.modbus.codec import decode
from tests.conftest import free_port


def run(gauge: Gauge, n: int) -> list[float]:
    return [gauge.next() for _ in range(n)]


def test_same_seed_same_readings_and_the_counter_counts() -> None:
    a, b = Gauge(10.0, 0.1, seed=7), Gauge(10.0, 0.1, seed=7)
    assert run(a, 50) == run(b, 50)
    assert a.part_counter == 50
    normal = run(Gauge(10.0, 0.1, seed=7), 2000)
    assert abs(statistics.fmean(normal) - 10.0) < 0.01
    assert 0.09 < statistics.stdev(normal) < 0.11


def test_shift_moves_the_mean_only_inside_its_window() -> None:
    g = Gauge(10.0, 0.1, seed=1)
    g.schedule(Disturbance("shift", start=100, length=200, size=2.0))
    values = run(g, 400)
    assert abs(statistics.fmean(values[:100]) - 10.0) < 0.03
    assert abs(statistics.fmean(values[100:300]) - 10.2) < 0.02
    assert abs(statistics.fmean(values[300:]) - 10.0) < 0.03
    # the noise stream is the same with or without the disturbance: the shift is exactly size x sigma
    plain = run(Gauge(10.0, 0.1, seed=1), 400)
    assert values[150] - plain[150] == pytest.approx(0.2)
    assert values[350] == plain[350]


def test_trend_drifts_monotonically_with_little_noise() -> None:
    g = Gauge(10.0, 0.001, seed=2)
    g.schedule(Disturbance("trend", start=10, length=8, size=5.0))
    values = run(g, 20)
    window = values[10:18]
    assert all(b > a for a, b in zip(window, window[1:], strict=False))  # Nelson test 3 material
    assert window[-1] - 10.0 == pytest.approx(8 * 5.0 * 0.001, abs=0.005)


def test_variance_multiplies_sigma() -> None:
    g = Gauge(0.0, 1.0, seed=3)
    g.schedule(Disturbance("variance", start=0, length=3000, size=3.0))
    assert 2.8 < statistics.stdev(run(g, 3000)) < 3.2


def test_alternate_goes_up_and_down() -> None:
    g = Gauge(10.0, 0.1, seed=4)
    g.schedule(Disturbance("alternate", start=0, length=14, size=3.0))
    values = run(g, 14)
    diffs = [b - a for a, b in zip(values, values[1:], strict=False)]
    assert all(d1 * d2 < 0 for d1, d2 in zip(diffs, diffs[1:], strict=False))  # Nelson test 4 material


def test_stuck_repeats_the_last_value_while_parts_keep_coming() -> None:
    g = Gauge(10.0, 0.1, seed=5)
    g.schedule(Disturbance("stuck", start=5, length=4))
    values = run(g, 10)
    assert values[5:9] == [values[4]] * 4 and values[9] != values[4]
    assert g.part_counter == 10


def test_drop_marks_its_window_and_bad_disturbances_are_refused() -> None:
    g = Gauge(10.0, 0.1, seed=6)
    g.schedule(Disturbance("drop", start=2, length=2))
    seen = []
    for _ in range(5):
        seen.append(g.dropped)
        g.next()
    assert seen == [False, False, True, True, False]
    with pytest.raises(ValueError, match="unknown disturbance"):
        Disturbance("wobble", 0, 1)
    with pytest.raises(ValueError, match="length"):
        Disturbance("shift", 0, 0)
    assert parse_disturbance("shift:50:20:1.5") == Disturbance("shift", 50, 20, 1.5)


def test_modbus_simulator_serves_value_and_counter_and_drops_the_connection() -> None:
    async def main() -> None:
        g = Gauge(10.0, 0.1, seed=8)
        g.schedule(Disturbance("drop", start=3, length=2))
        sim = ModbusSimulator(port=free_port())
        sim.add_gauge(g, unit=1, address=100, counter_address=110)
        await sim.start()
        client = AsyncModbusTcpClient("127.0.0.1", port=sim.port, timeout=1, retries=0, reconnect_delay=0)
        assert await client.connect()
        for expected_counter in (1, 2, 3):
            sim.make_parts()
            rr = await client.read_holding_registers(100, count=12, device_id=1)
            assert decode(rr.registers[0:2], "float32") == pytest.approx(g.value, rel=1e-6)
            assert decode(rr.registers[10:12], "uint32") == expected_counter
        line = asyncio.create_task(sim.run_line(0.05, parts=1))  # part 3 is in the drop window
        await line
        assert not sim.running
        await asyncio.sleep(0.05)
        assert not client.connected
        client.close()
        await sim.run_line(0.01, parts=3)  # parts 4.. : the window is over, the server is back
        assert sim.running
        client = AsyncModbusTcpClient("127.0.0.1", port=sim.port, timeout=1, retries=0, reconnect_delay=0)
        assert await client.connect()
        rr = await client.read_holding_registers(110, count=2, device_id=1)
        assert decode(rr.registers, "uint32") == 7
        client.close()
        await sim.stop()

    asyncio.run(main())
