"""Modbus tags per second read from a local pymodbus server, with merging on and off.

The server (the line simulator) runs in its own process, as a PLC would; the gateway's Modbus source
polls 250 float32 tags as fast as it can (poll_interval 0, every_poll sampling) for a few seconds.
Last stdout lines: one JSON object per figure, {"name", "value", "unit", "target", "better"}. The merged
target (10,000 tags/s) is EMQ Neuron's published Modbus TCP figure for a comparable simulator setup.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from common import free_port, wait_port  # noqa: E402

from gateway.config import Characteristic, Product, Sampling  # noqa: E402
from gateway.sources.base import Binding  # noqa: E402
from gateway.sources.modbus.settings import ModbusAddress, ModbusSettings  # noqa: E402
from gateway.sources.modbus.source import ModbusSource as ModbusGaugeSource  # noqa: E402


def bindings(tags: int) -> list[Binding]:
    characteristics = tuple(
        Characteristic(name=f"t{i}", source="plc", sampling=Sampling("every_poll"),
                       address=ModbusAddress(2 * i, data_type="float32"))
        for i in range(tags))
    product = Product(1, "BENCH", "bench", characteristics)
    return [Binding(product, c) for c in characteristics]


async def measure(port: int, tags: int, seconds: float, merge: bool) -> tuple[float, int]:
    count = 0

    async def sink(_m) -> None:
        nonlocal count
        count += 1

    config = ModbusSettings(name="plc", host="127.0.0.1", port=port, poll_interval=0.0, timeout=2.0)
    source = ModbusGaugeSource(config, bindings(tags), sink, merge=merge)
    requests_per_poll = sum(len(u.blocks) for u in source.units.values())
    await source.start()
    while count == 0:
        await asyncio.sleep(0.01)
    start_count, start = count, time.perf_counter()
    await asyncio.sleep(seconds)
    done, elapsed = count - start_count, time.perf_counter() - start
    await source.stop()
    return done / elapsed, requests_per_poll


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tags", type=int, default=250)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    port = free_port()
    gauges = args.tags // 10 + 1  # the simulator defines holding 0 .. 100 + 20 x gauges
    server = subprocess.Popen([sys.executable, "-m", "gateway.sim.simulator", "--modbus-port", str(port),
                               "--gauges", str(gauges), "--part-interval", "3600"], cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, 15.0)
        merged, merged_requests = asyncio.run(measure(port, args.tags, args.seconds, merge=True))
        single, single_requests = asyncio.run(measure(port, args.tags, args.seconds, merge=False))
    finally:
        server.terminate()
        server.wait(10)
    print(f"{args.tags} float32 tags: merged {merged_requests} requests/poll -> {merged:,.0f} tags/s; "
          f"unmerged {single_requests} requests/poll -> {single:,.0f} tags/s "
          f"(x{merged / single:.1f})")
    print(json.dumps({"name": "modbus_tags_per_s_merged", "value": round(merged), "unit": "tags/s",
                      "target": 10000, "better": "higher"}))
    print(json.dumps({"name": "modbus_tags_per_s_unmerged", "value": round(single), "unit": "tags/s",
                      "target": None, "better": "higher"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
