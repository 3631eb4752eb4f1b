"""Fan-out benchmark: events per second delivered to 100 and 1,000 WebSocket clients, and server RSS.

The server (Store on a temporary file, AlertService, Hub, LineServer: the real path) runs in a child
process; the events it fans out are stored measurement events made by real store batches, as the
pipeline makes them. The clients run in this process as minimal raw-socket WebSocket readers (a
handshake, then frame headers counted) so that the measurement is the server's, not the clients'.

    python bench/bench_ws.py [--events 2000] [--clients 100,1000]
    python bench/bench_ws.py --compare-public [--rounds 3] [--clients 100]

Prints JSON lines {"name", "value", "unit", "target"} at the end.

`--compare-public` answers whether the hub's own frames pay (issue 14: they stay only at 1.5x or more):
each round serves the same clients and events with the hub as it is (one frame built per event,
one joined `transport.write` per commit per kind of client) and with `PublicHub` below (websockets'
public API only: `broadcast()` for the clients that keep up, `await connection.send()` for the rest),
one after the other, and prints the ratio of the two per round.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from common import RawWebSocket, open_websocket  # noqa: E402  (bench/ is on the path of a bench script)

BATCH = 100  # events per store batch (what a busy pipeline drain produces)


# ---------------------------------------------------------------- the server (child process)

def public_hub_class() -> type:
    """The hub on websockets' public API only, for the comparison: same selection, queues and cut-off."""
    from websockets.asyncio.server import broadcast
    from websockets.protocol import State

    from gateway.core.model import Event
    from gateway.outputs.websocket.hub import Client, Hub, carries, event_json, log

    high_water = 64 * 1024  # websockets' own default write limit: above it a client goes to its queue

    def keeps_up(client: Client) -> bool:
        connection = client.connection
        return (client.live and not client.queue and connection.state is State.OPEN
                and connection.transport.get_write_buffer_size() < high_water)

    class PublicHub(Hub):
        def publish(self, events: list[Event]) -> None:
            payloads = [(event, event_json(event)) for event in events]
            self.published += len(payloads)
            self.bytes_encoded += sum(len(p) for _, p in payloads)
            selections: dict[tuple[int | None, frozenset[int]], tuple[list[tuple[int, bytes]], list[Client]]] = {}
            for client in self.clients:
                if client.closed:
                    continue
                key = (client.endpoint_product, frozenset(client.subscriptions))
                selection = selections.get(key)
                if selection is None:
                    chunks = [(event.seq, data) for event, data in payloads
                              if carries(client.endpoint_product, client.subscriptions, event)]
                    selection = selections[key] = (chunks, [])
                chunks = selection[0]
                if not chunks:
                    continue
                if keeps_up(client) and chunks[0][0] > client.replayed_through:
                    selection[1].append(client)
                else:
                    self._offer(client, chunks, b"")
            for chunks, now in selections.values():
                if now:
                    connections = [client.connection for client in now]
                    for _, payload in chunks:
                        broadcast(connections, payload, text=True)
                    for client in now:
                        client.sent += len(chunks)
                    self.deliveries += len(chunks) * len(now)

        async def _writer(self, client: Client) -> None:
            try:
                while not client.closed:
                    await client.wake.wait()
                    client.wake.clear()
                    while client.queue and not client.closed:
                        await client.connection.send(client.queue.popleft()[1], text=True)
                        client.sent += 1
                        self.deliveries += 1
            except Exception as exc:
                log.debug("writer of %s stopped: %s", client.address, exc)

    return PublicHub


async def serve(port: int, folder: str, hub: str = "private") -> None:
    """Run the line-side service and obey `publish N` / `rss` / `quit` lines on stdin."""
    from gateway.core.model import iso_time
    from tests import test_server_harness
    from tests.test_server_harness import Rig, make_config

    if hub == "public":
        test_server_harness.Hub = public_hub_class()  # type: ignore[attr-defined]

    config = make_config(Path(folder), max_connections=5000)
    config = config.__class__(**{**config.__dict__, "server": config.server.__class__(
        **{**config.server.__dict__, "listen": config.server.listen.__class__("127.0.0.1", port),
           "ping_interval": 600.0, "client_queue": 100_000})})
    async with Rig(config) as rig:
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        from zoneinfo import ZoneInfo

        tz = ZoneInfo("Asia/Seoul")
        while line := (await reader.readline()).decode().split():
            if line[0] == "publish":
                total, started = int(line[1]), time.perf_counter()
                for first in range(0, total, BATCH):
                    now = time.time()
                    with rig.store.batch(on_commit=rig.hub.publish) as batch:
                        for i in range(first, min(total, first + BATCH)):
                            batch.event("measurement", 1, {
                                "type": "measurement",
                                "measurement": {"id": i, "product_id": 1, "product_code": "BOLT-M10",
                                                "characteristic": "diameter", "measurement_value": 10.65,
                                                "sample_number": i, "subgroup_number": i // 5,
                                                "is_within_spec": False, "is_within_control": True,
                                                "measured_at": iso_time(now, tz)},
                                "timestamp": iso_time(now, tz)}, notable=True)
                    await batch.committed
                print(f"published {time.perf_counter() - started:.4f}", flush=True)
            elif line[0] == "rss":
                print(f"rss {_rss_kib(os.getpid())} clients {len(rig.hub.clients)}", flush=True)
            elif line[0] == "quit":
                break


def _rss_kib(pid: int) -> int:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1])
    return 0


# ---------------------------------------------------------------- the clients (this process)

class Reader(RawWebSocket):
    """A WebSocket client that counts text frames after the handshake; nothing else."""

    def __init__(self, done: asyncio.Event):
        super().__init__()
        self.frames = 0
        self.target = -1
        self.done = done

    def frames_received(self, buffer: bytes, spans: list[tuple[int, int]], now: float) -> None:
        self.frames += len(spans)
        if self.frames == self.target:
            self.done.set()


async def open_readers(port: int, count: int) -> list[Reader]:
    """`count` connected readers on the general feed (connection + snapshot already counted)."""
    readers: list[Reader] = []
    for start in range(0, count, 50):
        batch = []
        for _ in range(start, min(count, start + 50)):
            reader = Reader(asyncio.Event())
            await open_websocket(reader, port, "/ws/spc/notifications/", "bench")
            batch.append(reader)
        for reader in batch:
            assert await asyncio.wait_for(reader.connected, 30), "handshake refused"
        readers += batch
    deadline = time.monotonic() + 30
    while any(r.frames < 2 for r in readers) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return readers


async def round_trip(proc: asyncio.subprocess.Process, command: str) -> str:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write((command + "\n").encode())
    await proc.stdin.drain()
    return (await proc.stdout.readline()).decode().strip()


async def measure(events: int, client_counts: list[int], hub: str = "private") -> list[dict]:
    results = []
    with tempfile.TemporaryDirectory() as folder:
        from tests.conftest import free_port

        port = free_port()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--serve", str(port), folder, hub, cwd=REPO,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert proc.stdout is not None
        assert (await proc.stdout.readline()).decode().strip() == "ready"
        readers: list[Reader] = []
        baseline_rss = int((await round_trip(proc, "rss")).split()[1])
        for count in client_counts:
            readers += await open_readers(port, count - len(readers))
            for reader in readers:
                reader.frames = 0
                reader.target = events
                reader.done.clear()
            started = time.perf_counter()
            await round_trip(proc, f"publish {events}")
            await asyncio.wait_for(asyncio.gather(*(r.done.wait() for r in readers)), 300)
            elapsed = time.perf_counter() - started
            results.append({"name": f"fanout_events_per_s_{count}_clients", "value": round(events / elapsed, 1),
                            "unit": "events/s", "target": None})
            results.append({"name": f"fanout_deliveries_per_s_{count}_clients",
                            "value": round(events * count / elapsed), "unit": "messages/s", "target": None})
            rss = int((await round_trip(proc, "rss")).split()[1])
            results.append({"name": f"server_rss_{count}_clients", "value": round(rss / 1024, 1), "unit": "MB",
                            "target": 150 if count >= 1000 else None, "better": "lower"})
        results.append({"name": "server_rss_no_clients", "value": round(baseline_rss / 1024, 1), "unit": "MB",
                        "target": None})
        await round_trip(proc, "quit")
        for reader in readers:
            if reader.transport is not None:
                reader.transport.abort()
        await proc.wait()
    return results


def compare_public(events: int, clients: list[int], rounds: int) -> None:
    """Per round and client count: events/s with the hub's own frames, with PublicHub, and their ratio."""
    ratios: dict[int, list[float]] = {count: [] for count in clients}
    for round_number in range(1, rounds + 1):
        rates = {}
        for hub in ("private", "public") if round_number % 2 else ("public", "private"):
            rates[hub] = {row["name"]: row["value"] for row in asyncio.run(measure(events, clients, hub))}
        for count in clients:
            name = f"fanout_events_per_s_{count}_clients"
            ratio = rates["private"][name] / rates["public"][name]
            ratios[count].append(ratio)
            print(f"round {round_number}, {count} clients: own frames {rates['private'][name]:,.0f} events/s, "
                  f"public API {rates['public'][name]:,.0f} events/s, ratio {ratio:.2f}", flush=True)
    for count, values in ratios.items():
        print(json.dumps({"name": f"fanout_own_frames_vs_public_{count}_clients",
                          "value": round(statistics.median(values), 2), "unit": "x", "target": 1.5}))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        asyncio.run(serve(int(sys.argv[2]), sys.argv[3], sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--clients", default=None, help="client counts (default 100,1000; 100 with --compare-public)")
    parser.add_argument("--compare-public", action="store_true",
                        help="the hub against PublicHub (websockets' public API), one after the other, per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --compare-public (default 3)")
    args = parser.parse_args()
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 8192)), hard))
    clients = [int(c) for c in (args.clients or ("100" if args.compare_public else "100,1000")).split(",")]
    if args.compare_public:
        compare_public(args.events, clients, args.rounds)
        return
    results = asyncio.run(measure(args.events, clients))
    for row in results:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
