"""The OPC UA server: value change to a subscribed client, and what 10 subscribed clients cost the daemon.

One real daemon (subprocess) with an MQTT source on a real mosquitto and `opcua_server:` on loopback;
a paho publisher at 1,000 readings/s whose every reading is its own send time (CLOCK_MONOTONIC, the
same clock in every process), as bench_e2e.py does. Two phases on the same daemon:

1. 10 WebSocket clients only: the e2e WebSocket p99 without OPC UA clients;
2. the same plus one asyncua client with a subscription at a 100 ms publishing interval on the
   characteristic's Value (queue 1,000): the OPC UA p99 (reading sent -> value at the client);
3. the same with 10 such clients, each in its own process: their p99, and the WebSocket p99 again.

Figures: OPC UA p99 (target < 250 ms), every change delivered, the WebSocket p99 with the OPC UA
clients over the one without, and the daemon's CPU seconds per second with them over without (ratios:
absolute times are noisy on a shared machine, and the ten client processes load it too).
`--short` runs 3 s per phase instead of 8.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
from bench_e2e import PUBLISHER, open_clients
from common import collect, free_port, mqtt_gauge_config, start_broker

RATE = 1000
WS_CLIENTS = 10
OPCUA_CLIENTS = 10
CLIENT_CPU: dict[int, float] = {}  # clients -> their CPU seconds per second, all together

OPCUA_CLIENT = """
import asyncio, json, sys, time
from asyncua import Client, ua
endpoint, seconds, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
latencies = []

class Handler:
    first = True

    def datachange_notification(self, node, val, data):
        if self.first:  # the value when subscribing: the last reading of the phase before
            self.first = False
        elif isinstance(val, float):
            latencies.append((time.monotonic() - val) * 1000)

started = time.monotonic()

async def main():
    async with Client(endpoint, timeout=30) as client:
        idx = await client.get_namespace_index("urn:spc-gateway")
        subscription = await client.create_subscription(100, Handler())
        params = ua.MonitoringParameters(ClientHandle=1, SamplingInterval=0, QueueSize=1000, DiscardOldest=False)
        await subscription.create_monitored_items([ua.MonitoredItemCreateRequest(
            ItemToMonitor=ua.ReadValueId(NodeId=ua.NodeId("SPC/BENCH/x/Value", idx), AttributeId=ua.AttributeIds.Value),
            MonitoringMode=ua.MonitoringMode.Reporting, RequestedParameters=params)])
        print("ready", flush=True)
        await asyncio.sleep(seconds)
    with open(out, "w") as f:
        json.dump({"latencies": latencies, "cpu": time.process_time(), "seconds": time.monotonic() - started}, f)

asyncio.run(main())
"""


def start_daemon(workdir: Path, broker_port: int, http_port: int, opcua_port: int) -> subprocess.Popen:
    config = mqtt_gauge_config(workdir, broker_port, http_port, 100)
    config["opcua_server"] = {"listen": f"127.0.0.1:{opcua_port}", "security": ["None"]}
    return common.start_daemon(workdir, config, http_port, opcua_port)


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used so far (the daemon's own cost, whatever else runs)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def p99(values: list[float]) -> float:
    values = sorted(values)
    return values[max(0, int(len(values) * 0.99) - 1)] if values else float("nan")


async def publish(broker_port: int, seconds: float) -> int:
    total = int(RATE * seconds)
    publisher = await asyncio.create_subprocess_exec(sys.executable, "-c", PUBLISHER, str(broker_port), str(RATE),
                                                     str(total))
    await publisher.wait()
    return total


async def phase(http_port: int, broker_port: int, seconds: float, pid: int) -> tuple[list[float], int, int, float]:
    """WebSocket latencies of one publishing run, readings sent, the fewest any client got, and the
    daemon's CPU seconds per second while the publisher ran."""
    latencies: list[float] = []
    readers = await open_clients(http_port, WS_CLIENTS, latencies)
    await asyncio.sleep(1.0)
    cpu, started = cpu_seconds(pid), time.monotonic()
    total = await publish(broker_port, seconds)
    cpu = (cpu_seconds(pid) - cpu) / (time.monotonic() - started)
    return latencies, total, await collect(readers, total), cpu


async def with_clients(count: int, workdir: Path, opcua_port: int, http_port: int, broker_port: int,
                       seconds: float, pid: int) -> tuple[list[list[float]], list[float], int, int, float]:
    """A publishing run with `count` OPC UA clients subscribed: their latencies, then what phase() says."""
    clients = []
    for i in range(count):  # they listen a little longer than the publisher runs, to take the last values
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", OPCUA_CLIENT, f"opc.tcp://127.0.0.1:{opcua_port}/spc-gateway/",
            str(seconds + 4.0), str(workdir / f"opcua-{count}-{i}.json"), stdout=asyncio.subprocess.PIPE)
        clients.append(proc)
    for proc in clients:
        assert proc.stdout is not None
        assert (await asyncio.wait_for(proc.stdout.readline(), 60)).strip() == b"ready"
    ws, total, got, cpu = await phase(http_port, broker_port, seconds, pid)
    for proc in clients:
        await asyncio.wait_for(proc.wait(), 60)
    results = [json.loads((workdir / f"opcua-{count}-{i}.json").read_text()) for i in range(count)]
    CLIENT_CPU[count] = sum(r["cpu"] / r["seconds"] for r in results)
    return [r["latencies"] for r in results], ws, total, got, cpu


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
            "cpu_without": cpu_without, "cpu_with": cpu_with}


def main() -> None:
    seconds = 3.0 if "--short" in sys.argv else 8.0
    r = asyncio.run(run(seconds))
    ratio = r["ws_p99_with"] / r["ws_p99_without"]
    print(f"{RATE}/s, one OPC UA client at 100 ms: p50 {r['one_p50']:.1f} ms, p99 {r['one_p99']:.1f} ms, "
          f"{r['one_count']}/{r['sent']} values", flush=True)
    print(f"{RATE}/s, {OPCUA_CLIENTS} OPC UA clients at 100 ms: OPC UA p50 {r['opcua_p50']:.1f} ms, "
          f"p99 {r['opcua_p99']:.1f} ms, fewest values at a client {r['opcua_fewest']}/{r['sent']}; WebSocket p99 "
          f"{r['ws_p99_without']:.2f} ms without, {r['ws_p99_with']:.2f} ms with ({ratio:.2f}x), "
          f"lost {r['ws_lost']}; daemon CPU {r['cpu_without']:.2f} s/s without, {r['cpu_with']:.2f} s/s with "
          f"({r['cpu_with'] / r['cpu_without']:.2f}x); the 10 client processes used {CLIENT_CPU[OPCUA_CLIENTS]:.2f} "
          "CPU s/s of the same 2 cores", flush=True)
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
        {"name": "opcua_server_ws_p99_with_10_clients", "value": round(r["ws_p99_with"], 2), "unit": "ms",
         "target": 15.0, "better": "lower"},
    ):
        print(json.dumps(fig))


if __name__ == "__main__":
    main()
