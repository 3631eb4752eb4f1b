"""Store throughput: measurement+event pairs committed per second through Batch (with their outbox rows).

Each pair is what the pipeline writes for one reading: a measurements row, an events row (the
WebSocket message with its seq) and an outbox row (the same JSON for the plant broker). The producer
behaves like the pipeline: small batches, back-pressure through wait_room(), and a pair counts only
once its commit is reported. The last stdout line is one JSON object for bench/results.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gateway.store import Store  # noqa: E402

TARGET = 20_000  # pairs per second


async def run(path: str, pairs: int, per_batch: int, synchronous: str) -> float:
    """Write `pairs` pairs in batches of per_batch; returns committed pairs per second."""
    store = Store(path, synchronous=synchronous)
    await store.open()
    committed = 0

    def on_commit(events: list) -> None:
        nonlocal committed
        committed += len(events)

    start = time.perf_counter()
    last = None
    sample = 0
    for _ in range(pairs // per_batch):
        await store.wait_room()
        with store.batch(on_commit) as b:
            for _ in range(per_batch):
                sample += 1
                now = time.time()
                mid = b.measurement(product_id=1, characteristic="diameter", value=10.0 + (sample % 7) * 0.01,
                                    measured_at=now, received_at=now, sample_number=sample,
                                    subgroup_number=(sample + 4) // 5, is_within_spec=True,
                                    is_within_control=None)
                body = {"type": "measurement", "timestamp": "2026-01-01T00:00:00.000+09:00",
                        "measurement": {"id": mid, "product_id": 1, "product_code": "A-100",
                                        "characteristic": "diameter", "measurement_value": 10.0,
                                        "sample_number": sample, "subgroup_number": (sample + 4) // 5,
                                        "is_within_spec": True, "is_within_control": None,
                                        "measured_at": "2026-01-01T00:00:00.000+09:00"}}
                b.event("measurement", 1, body, notable=False, outbox_topic="spc/measurement/A-100/diameter")
        last = b
        if sample % 500 == 0:
            await asyncio.sleep(0)  # the pipeline yields between queue items too
    await last.committed
    elapsed = time.perf_counter() - start
    assert committed == pairs, (committed, pairs)
    await store.close()
    return pairs / elapsed


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=200_000)
    parser.add_argument("--per-batch", type=int, default=10)
    parser.add_argument("--dir", default=None, help="folder for the database (default: a temporary one)")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        for mode in ("NORMAL", "FULL"):
            rate = asyncio.run(run(os.path.join(folder, f"{mode}.sqlite3"), args.pairs, args.per_batch, mode))
            results[mode] = rate
            print(f"synchronous={mode}: {rate:,.0f} measurement+event pairs/s committed "
                  f"({args.per_batch} pairs per batch, outbox row included)")
    print(json.dumps({"name": "store_commit_pairs_per_second", "value": round(results["FULL"]),
                      "unit": "pairs/s", "target": TARGET,
                      "detail": {"synchronous_normal": round(results["NORMAL"]), "per_batch": args.per_batch}}))


if __name__ == "__main__":
    main()
