"""OPC UA subscription values per second through gateway.sources.opcua.source.OpcUaSource.

The simulated server (gateway.sim.opcua_server, asyncua) runs in its own process with GAUGES gauges
making a part every INTERVAL seconds each; the source subscribes to every value node (on_change,
sampling interval = INTERVAL) and a counting sink measures what arrives.

    .venv/bin/python bench/bench_opcua.py [--gauges 100] [--interval 0.01] [--seconds 8]

Prints one JSON line per figure at the end: {"name", "value", "unit", "target"}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.config import Characteristic, Product, Sampling  # noqa: E402
from gateway.sources.base import Binding  # noqa: E402
from gateway.sources.opcua.settings import OpcUaAddress
from gateway.sources.opcua.settings import OpcUaSettings as OpcUaSourceConfig  # noqa: E402
from gateway.sources.opcua.source import OpcUaSource  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(port: int, gauges: int, interval: float) -> None:
    from gateway.sim.opcua_server import start_opcua_simulator
    from gateway.sim.simulator import Gauge

    async def main() -> None:
        await start_opcua_simulator(port, {f"G{i:03d}": Gauge(20.0, 0.01, seed=i) for i in range(gauges)}, interval)
        await asyncio.Event().wait()

    asyncio.run(main())


async def measure(port: int, gauges: int, interval: float, seconds: float) -> tuple[float, int]:
    endpoint = f"opc.tcp://127.0.0.1:{port}/spc-gateway/sim/"
    chars = tuple(Characteristic(f"g{i}", "cmm", address=OpcUaAddress(f"ns=2;s=Line3.CMM.G{i:03d}"),
                                 sampling=Sampling("on_change")) for i in range(gauges))
    product = Product(1, "P", "p", chars)
    count = 0

    async def sink(m) -> None:  # noqa: ANN001
        nonlocal count
        count += 1

    source = OpcUaSource(OpcUaSourceConfig("cmm", endpoint, sampling_interval=interval),
                         [Binding(product, c) for c in chars], sink)
    await source.start()
    deadline = time.monotonic() + 30
    while count < gauges:  # every node's first value has arrived: the subscription is complete
        if time.monotonic() > deadline:
            raise TimeoutError(f"subscription incomplete: {source.health.as_dict()}")
        await asyncio.sleep(0.05)
    start, first = time.perf_counter(), count
    await asyncio.sleep(seconds)
    rate = (count - first) / (time.perf_counter() - start)
    bad = source.health.bad_readings
    await source.stop()
    return rate, bad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gauges", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0.01)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    port = _free_port()
    server = multiprocessing.Process(target=_serve, args=(port, args.gauges, args.interval), daemon=True)
    server.start()
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        rate, bad = asyncio.run(measure(port, args.gauges, args.interval, args.seconds))
    finally:
        server.terminate()
        server.join(5)
    offered = args.gauges / args.interval
    # no target: the Python asyncua *server* (the simulator) cannot produce what is offered, so the
    # figure is a floor of what the client takes, printed beside the offered rate
    print(json.dumps({"name": "opcua_subscription_values", "value": round(rate), "unit": "values/s",
                      "target": None}))
    print(json.dumps({"name": "opcua_offered_values", "value": round(offered), "unit": "values/s",
                      "target": None}))
    print(json.dumps({"name": "opcua_bad_readings", "value": bad, "unit": "count", "target": 0,
                      "better": "lower"}))


if __name__ == "__main__":
    main()
