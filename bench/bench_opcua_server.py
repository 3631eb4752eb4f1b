"""The OPC UA server: value change to a subscribed client, and what 10 subscribed clients cost the daemon.

One real daemon (subprocess) with an MQTT source on a real mosquitto and `opcua_server:` on loopback;
a paho publisher at 1,000 readings/s whose every reading is its own send time (CLOCK_MONOTONIC, the
same clock in every process), as bench_e2e.py does. Three phases on the same daemon:

1. 10 WebSocket clients only: the e2e WebSocket p99 without OPC UA clients;
2. the same plus one OPC UA client with a subscription at a 100 ms publishing interval on the
   characteristic's Value (queue 1,000): the OPC UA p99 (reading sent -> value at the client);
3. the same with 10 such clients: their p99, and the WebSocket p99 again.

The OPC UA clients are node-opcua's (bench/opcua_subscribers.js, the node_modules of
tests/opcua_client), all in one node process, each its own connection, session and subscription. A
plant's SCADA and PLCs run on other machines: their CPU is not the gateway's cost, but here they share
its 2 cores, so they are made as light as an independent client can be (ten asyncua processes, as this
bench first ran them, used more CPU than the daemon and the server together, and were what the
WebSocket p99 paid for). Without node they run in one asyncua process (`--asyncua` forces that).

Figures: OPC UA p99 (target < 250 ms), every change delivered, the WebSocket p99 with the OPC UA
clients over the one without, and the gateway's CPU per reading with them over without: the daemon,
and the daemon with its OPC UA server process (ratios: absolute times are noisy on a shared machine).
The clients' own CPU while values flow (after they subscribed) is printed beside, as theirs.
`--short` runs 3 s per phase instead of 8.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import common
from bench_e2e import PUBLISHER, open_clients
from common import collect, free_port, mqtt_gauge_config, start_broker

RATE = 1000
WS_CLIENTS = 10
OPCUA_CLIENTS = 10
CLIENT_CPU: dict[int, float] = {}  # clients -> their CPU seconds per second, all together

NODE_CLIENTS = common.REPO / "bench" / "opcua_subscribers.js"
NODE_MODULES = common.REPO / "tests" / "opcua_client" / "node_modules"

# the fallback without node: the clients in one asyncua process, each its own connection and session
OPCUA_CLIENT = """
import asyncio, json, sys, time
from asyncua import Client, ua
endpoint, count, seconds, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
latencies = [[] for _ in range(count)]

class Handler:
    def __init__(self, into):
        self.into, self.first = into, True

    def datachange_notification(self, node, val, data):
        if self.first:  # the value when subscribing: the last reading of the phase before
            self.first = False
        elif isinstance(val, float):
            self.into.append((time.monotonic() - val) * 1000)

async def subscriber(client, into):
    idx = await client.get_namespace_index("urn:spc-gateway")
    subscription = await client.create_subscription(100, Handler(into))
    params = ua.MonitoringParameters(ClientHandle=1, SamplingInterval=0, QueueSize=1000, DiscardOldest=False)
    await subscription.create_monitored_items([ua.MonitoredItemCreateRequest(
        ItemToMonitor=ua.ReadValueId(NodeId=ua.NodeId("SPC/BENCH/x/Value", idx), AttributeId=ua.AttributeIds.Value),
        MonitoringMode=ua.MonitoringMode.Reporting, RequestedParameters=params)])

async def main():
    clients = [Client(endpoint, timeout=30) for _ in range(count)]
    for client in clients:
        await client.connect()
    await asyncio.gather(*(subscriber(c, l) for c, l in zip(clients, latencies)))
    print("ready", flush=True)
    started, cpu = time.monotonic(), time.process_time()  # from here on: while values flow
    await asyncio.sleep(seconds)
    cpu, elapsed = time.process_time() - cpu, time.monotonic() - started
    for client in clients:
        await client.disconnect()
    with open(out, "w") as f:
        json.dump({"latencies": latencies, "cpu": cpu, "seconds": elapsed}, f)

asyncio.run(main())
"""


def client_command(endpoint: str, count: int, seconds: float, out: Path) -> list[str]:
    """node-opcua's clients when node and tests/opcua_client's node_modules are here, else asyncua's."""
    if "--asyncua" not in sys.argv and shutil.which("node") and (NODE_MODULES / "node-opcua-client").is_dir():
        return ["node", str(NODE_CLIENTS), endpoint, str(count), str(seconds), str(out)]
    return [sys.executable, "-c", OPCUA_CLIENT, endpoint, str(count), str(seconds), str(out)]


def start_daemon(workdir: Path, broker_port: int, http_port: int, opcua_port: int) -> subprocess.Popen:
    config = mqtt_gauge_config(workdir, broker_port, http_port, 100)
    config["opcua_server"] = {"listen": f"127.0.0.1:{opcua_port}", "security": ["None"]}
    return common.start_daemon(workdir, config, http_port, opcua_port)


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used so far (the daemon's own cost, whatever else runs)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The daemon's child processes (its OPC UA server's worker)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def gateway_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds so far of the daemon, and of the daemon with its OPC UA server process."""
    own = cpu_seconds(pid)
    return own, own + sum(cpu_seconds(child) for child in children(pid))


def p99(values: list[float]) -> float:
    values = sorted(values)
    return values[max(0, int(len(values) * 0.99) - 1)] if values else float("nan")


async def publish(broker_port: int, seconds: float) -> int:
    total = int(RATE * seconds)
    publisher = await asyncio.create_subprocess_exec(sys.executable, "-c", PUBLISHER, str(broker_port), str(RATE),
                                                     str(total))
    await publisher.wait()
    return total


async def phase(http_port: int, broker_port: int, seconds: float,
                pid: int) -> tuple[list[float], int, int, tuple[float, float]]:
    """WebSocket latencies of one publishing run, readings sent, the fewest any client got, and the
    CPU milliseconds per reading of the daemon, and of the daemon with its OPC UA server process, from
    the first reading sent to the last one at every screen."""
    latencies: list[float] = []
    readers = await open_clients(http_port, WS_CLIENTS, latencies)
    await asyncio.sleep(1.0)
    before = gateway_cpu(pid)
    total = await publish(broker_port, seconds)
    got = await collect(readers, total)
    after = gateway_cpu(pid)
    # per reading, not per second: on a loaded machine the publisher's run stretches, and CPU per
    # second of it falls with no change in the work
    cpu = ((after[0] - before[0]) * 1000 / total, (after[1] - before[1]) * 1000 / total)
    return latencies, total, got, cpu


async def with_clients(count: int, workdir: Path, opcua_port: int, http_port: int, broker_port: int,
                       seconds: float, pid: int) -> tuple[list[list[float]], list[float], int, int, tuple[float, float]]:
    """A publishing run with `count` OPC UA clients subscribed: their latencies, then what phase() says."""
    out = workdir / f"opcua-{count}.json"  # they listen a little longer than the publisher runs, for the last values
    proc = await asyncio.create_subprocess_exec(
        *client_command(f"opc.tcp://127.0.0.1:{opcua_port}/spc-gateway/", count, seconds + 4.0, out),
        stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    assert (await asyncio.wait_for(proc.stdout.readline(), 60)).strip() == b"ready"
    ws, total, got, cpu = await phase(http_port, broker_port, seconds, pid)
    await asyncio.wait_for(proc.wait(), 60)
    result = json.loads(out.read_text())
    CLIENT_CPU[count] = result["cpu"] / result["seconds"]
    return result["latencies"], ws, total, got, cpu


async def run(seconds: float) -> dict[str, float]:
    workdir = Path(tempfile.mkdtemp(prefix="spc-bench-opcua-server-"))
    broker, broker_port = start_broker(workdir)
    http_port, opcua_port = free_port(), free_port()
    daemon = start_daemon(workdir, broker_port, http_port, opcua_port)
    try:
        await asyncio.sleep(1.0)  # the MQTT source subscribes
        ws_without, total_without, got_without, cpu_without = await phase(http_port, broker_port, seconds, daemon.pid)
        one, _, _, _, _ = await with_clients(1, workdir, opcua_port, http_port, broker_port, seconds, daemon.pid)
        opcua, ws_with, total_with, got_with, cpu_with = await with_clients(
            OPCUA_CLIENTS, workdir, opcua_port, http_port, broker_port, seconds, daemon.pid)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(10)
        broker.terminate()
        broker.wait(5)
    every = [v for client in opcua for v in client]
    return {"one_p50": statistics.median(one[0]), "one_p99": p99(one[0]), "one_count": len(one[0]),
            "opcua_p50": statistics.median(every), "opcua_p99": p99(every),
            "opcua_fewest": min(len(c) for c in opcua), "sent": total_with,
            "ws_p99_without": p99(ws_without), "ws_p99_with": p99(ws_with),
            "ws_lost": (total_without - got_without) + (total_with - got_with),
            "cpu_without": cpu_without[0], "cpu_with": cpu_with[0],
            "server_cpu_without": cpu_without[1], "server_cpu_with": cpu_with[1]}


def main() -> None:
    seconds = 3.0 if "--short" in sys.argv else 8.0
    r = asyncio.run(run(seconds))
    ratio = r["ws_p99_with"] / r["ws_p99_without"]
    print(f"{RATE}/s, one OPC UA client at 100 ms: p50 {r['one_p50']:.1f} ms, p99 {r['one_p99']:.1f} ms, "
          f"{r['one_count']}/{r['sent']} values", flush=True)
    print(f"{RATE}/s, {OPCUA_CLIENTS} OPC UA clients at 100 ms: OPC UA p50 {r['opcua_p50']:.1f} ms, "
          f"p99 {r['opcua_p99']:.1f} ms, fewest values at a client {r['opcua_fewest']}/{r['sent']}; WebSocket p99 "
          f"{r['ws_p99_without']:.2f} ms without, {r['ws_p99_with']:.2f} ms with ({ratio:.2f}x), "
          f"lost {r['ws_lost']}; daemon CPU {r['cpu_without']:.3f} ms/reading without, {r['cpu_with']:.3f} with "
          f"({r['cpu_with'] / r['cpu_without']:.2f}x); with its OPC UA server process {r['server_cpu_without']:.3f} "
          f"without, {r['server_cpu_with']:.3f} with ({r['server_cpu_with'] / r['server_cpu_without']:.2f}x); "
          f"the {OPCUA_CLIENTS} clients ({client_command('', 0, 0, Path())[0].rsplit('/', 1)[-1]}, one process) "
          f"used {CLIENT_CPU[OPCUA_CLIENTS]:.2f} CPU s/s of the same 2 cores", flush=True)
    for fig in (
        {"name": "opcua_server_change_p99_100ms", "value": round(r["one_p99"], 1), "unit": "ms", "target": 250,
         "better": "lower"},
        {"name": "opcua_server_change_p99_100ms_10_clients", "value": round(r["opcua_p99"], 1), "unit": "ms",
         "target": None, "better": "lower"},
        {"name": "opcua_server_changes_missed", "value": r["sent"] - r["opcua_fewest"], "unit": "values",
         "target": 0, "better": "lower"},
        {"name": "opcua_server_ws_p99_ratio_10_clients", "value": round(ratio, 2), "unit": "x", "target": None,
         "better": "lower"},
        {"name": "opcua_server_daemon_cpu_ratio_10_clients", "value": round(r["cpu_with"] / r["cpu_without"], 2),
         "unit": "x", "target": None, "better": "lower"},
        {"name": "opcua_server_gateway_cpu_ratio_10_clients",
         "value": round(r["server_cpu_with"] / r["server_cpu_without"], 2), "unit": "x", "target": None,
         "better": "lower"},
        {"name": "opcua_server_ws_p99_with_10_clients", "value": round(r["ws_p99_with"], 2), "unit": "ms",
         "target": 15.0, "better": "lower"},
    ):
        print(json.dumps(fig))


if __name__ == "__main__":
    main()
