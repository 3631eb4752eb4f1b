"""Benchmark: what the capability's distribution costs the live engine (non-normal capability).

The engine reports the normal indices on its hot path; the pipeline then adds the distribution, its
Anderson-Darling test and the expected ppm (`CharacteristicEngine.describe_capability`) to every
capability it publishes. This measures I-MR readings per second through `ingest` alone and through
`ingest` plus `describe_capability` on each analysis (every 25 readings over the last 100, the defaults),
for `normal` (the normality test beside every capability) and for a lognormal characteristic, and the
CPU time of one folded-normal analysis (its p-value is a bootstrap).

Run: .venv/bin/python bench/bench_capability_distribution.py [--short]
The last lines are JSON figures for bench/results.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gateway.spc.capability_percentile import choose  # noqa: E402
from gateway.spc.engine import CharacteristicEngine, EngineSettings  # noqa: E402

TARGET = 200_000  # readings/s with the distribution described, like the engine alone


def rate(settings: EngineSettings, values: list[float], describe: bool, repeats: int = 3) -> float:
    """Best of `repeats` runs, readings per second (CPU time)."""
    best = 0.0
    for _ in range(repeats):
        engine = CharacteristicEngine(settings)
        ingest, describe_capability = engine.ingest, engine.describe_capability
        start = time.process_time()
        for i, v in enumerate(values):
            result = ingest(v, float(i))
            if describe and result.capability is not None:
                describe_capability(result.capability)
        best = max(best, len(values) / (time.process_time() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--short", action="store_true", help="20,000 readings instead of 200,000")
    args = parser.parse_args()
    count = 20_000 if args.short else 200_000
    rng = random.Random(7)
    normal = [10.0 + rng.gauss(0, 0.1) for _ in range(count)]
    skewed = [0.02 * rng.lognormvariate(0.0, 0.4) for _ in range(count)]
    plain = rate(EngineSettings(chart="imr", lsl=9.5, usl=10.5), normal, describe=False)
    tested = rate(EngineSettings(chart="imr", lsl=9.5, usl=10.5), normal, describe=True)
    lognormal = rate(EngineSettings(chart="imr", usl=0.08, distribution="lognormal"), skewed, describe=True)
    folded = [abs(rng.gauss(0.004, 0.006)) for _ in range(100)]
    start = time.process_time()
    runs = 5 if args.short else 20
    for _ in range(runs):
        choose("folded_normal", folded)
    folded_ms = (time.process_time() - start) / runs * 1000
    print(f"I-MR ingest alone:                      {plain:,.0f} readings/s")
    print(f"  + normality test on every analysis:  {tested:,.0f} readings/s ({tested / plain:.0%})")
    print(f"  + lognormal percentile capability:   {lognormal:,.0f} readings/s ({lognormal / plain:.0%})")
    print(f"one folded normal analysis (100 values, bootstrap p-value): {folded_ms:.0f} ms CPU")
    print(json.dumps({"name": "spc_ingest_imr_normality_test", "value": round(tested), "unit": "readings/s",
                      "target": TARGET}))
    print(json.dumps({"name": "spc_ingest_imr_lognormal", "value": round(lognormal), "unit": "readings/s"}))
    print(json.dumps({"name": "capability_folded_normal_analysis", "value": round(folded_ms, 1), "unit": "ms",
                      "better": "lower"}))


if __name__ == "__main__":
    main()
