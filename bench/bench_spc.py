"""Benchmark: measurements per second through the SPC engine alone, all eight Nelson tests on.

Run: .venv/bin/python bench/bench_spc.py [--count N]
Prints one line per chart and a JSON result per chart; the last line is the I-MR figure:
{"name": "spc_ingest_imr", "value": N, "unit": "measurements/s", "target": 200000}
EWMA and CUSUM run on individual values (their only test is the beyond-limits one); the p chart takes
one sample (count, n) per reading through CharacteristicEngine.ingest_count, with tests 1-4.
"""

from __future__ import annotations

import argparse
import json
import random
import time

from gateway.spc.engine import CharacteristicEngine, EngineSettings

TARGET = 200_000


def measure(settings: EngineSettings, values: list[float], repeats: int = 3) -> float:
    """Best of `repeats` runs, measurements per second."""
    best = 0.0
    for _ in range(repeats):
        engine = CharacteristicEngine(settings)
        ingest = engine.ingest
        start = time.process_time()  # CPU time: other processes on the machine do not count
        for i, v in enumerate(values):
            ingest(v, float(i))
        elapsed = time.process_time() - start
        best = max(best, len(values) / elapsed)
    return best


def measure_counts(settings: EngineSettings, samples: list[tuple[int, int]], repeats: int = 3) -> float:
    """Best of `repeats` runs, attribute samples per second."""
    best = 0.0
    for _ in range(repeats):
        engine = CharacteristicEngine(settings)
        ingest = engine.ingest_count
        start = time.process_time()
        for i, (count, n) in enumerate(samples):
            ingest(count, n, float(i))
        elapsed = time.process_time() - start
        best = max(best, len(samples) / elapsed)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=500_000, help="measurements per run")
    args = parser.parse_args()
    rng = random.Random(7)
    # in-control data with occasional shifts, so the rules and violations paths are exercised too
    values = [10.0 + rng.gauss(0, 0.1) + (0.15 if (i // 500) % 7 == 3 else 0.0) for i in range(args.count)]
    spec = {"lsl": 9.5, "usl": 10.5, "target": 10.0}
    imr = measure(EngineSettings(chart="imr", baseline_subgroups=25, **spec), values)
    xbar = measure(EngineSettings(chart="xbar_r", subgroup_size=5, baseline_subgroups=25, **spec), values)
    ewma = measure(EngineSettings(chart="ewma", baseline_subgroups=25, **spec), values)
    cusum = measure(EngineSettings(chart="cusum", baseline_subgroups=25, **spec), values)
    # 3 % nonconforming in samples of 40 to 60, drifting to 5 % now and then
    samples = [(sum(rng.random() < (0.05 if (i // 500) % 7 == 3 else 0.03) for _ in range(n)), n)
               for i, n in enumerate(rng.randint(40, 60) for _ in range(min(args.count, 100_000)))]
    p_chart = measure_counts(EngineSettings(chart="p", baseline_subgroups=25, tests=(1, 2, 3, 4)), samples)
    print(f"I-MR,        all 8 tests: {imr:,.0f} measurements/s")
    print(f"Xbar-R n=5,  all 8 tests: {xbar:,.0f} measurements/s")
    print(f"EWMA n=1:                 {ewma:,.0f} measurements/s")
    print(f"CUSUM n=1:                {cusum:,.0f} measurements/s")
    print(f"p chart, tests 1-4:       {p_chart:,.0f} samples/s")
    print(json.dumps({"name": "spc_ingest_xbar_r5", "value": round(xbar), "unit": "measurements/s",
                      "target": TARGET}))
    print(json.dumps({"name": "spc_ingest_ewma", "value": round(ewma), "unit": "measurements/s", "target": TARGET}))
    print(json.dumps({"name": "spc_ingest_cusum", "value": round(cusum), "unit": "measurements/s", "target": TARGET}))
    print(json.dumps({"name": "spc_ingest_p", "value": round(p_chart), "unit": "samples/s", "target": TARGET}))
    print(json.dumps({"name": "spc_ingest_imr", "value": round(imr), "unit": "measurements/s",
                      "target": TARGET}))


if __name__ == "__main__":
    main()
