"""`make bench`: run every bench/bench_*.py, collect their JSON result lines, write bench/results.md.

Each benchmark prints, as its last lines, one JSON object per figure:
{"name": ..., "value": ..., "unit": ..., "target": ..., "better": "higher" | "lower"}.
Where a peer is measured in the same run (bench_relay.py: a Node-RED relay), the target is on the
ratio gateway / peer, not on a time, so a loaded machine slows both sides alike.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
TIMEOUT = 900  # seconds per benchmark script


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run_one(script: Path) -> tuple[list[dict], str, float]:
    started = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, str(script)], cwd=REPO, capture_output=True, text=True,
                              timeout=TIMEOUT, env={**os.environ, "PYTHONPATH": str(REPO)})
        output = proc.stdout
        status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"
    except subprocess.TimeoutExpired:
        output, status = "", f"timed out after {TIMEOUT}s"
    figures = []
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("{") and '"name"' in line:
            try:
                figures.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return figures, status, time.monotonic() - started


def verdict(fig: dict) -> str:
    target = fig.get("target")
    if target is None:
        return ""
    better = fig.get("better", "higher")
    ok = fig["value"] >= target if better == "higher" else fig["value"] <= target
    return "met" if ok else "MISSED"


def machine_line() -> str:
    """Cores, CPU model, Python, kernel and date: the line every results file starts with."""
    return (f"{os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}, {dt.date.today().isoformat()}")


def commit() -> str:
    """The commit measured, marked when the tree had uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" (with uncommitted changes)" if dirty else "")


def table(rows: list[tuple[str, dict]]) -> list[str]:
    """The markdown table of (script, figure) rows, with each target's verdict."""
    lines = ["| benchmark | figure | value | unit | target | verdict |", "|---|---|---|---|---|---|"]
    for script, fig in rows:
        target = fig.get("target")
        op = ">=" if fig.get("better", "higher") == "higher" else "<="
        value = fig["value"]
        shown = f"{value:,.0f}" if isinstance(value, (int, float)) and abs(value) >= 100 else f"{value:.3g}"
        lines.append(f"| {script} | {fig['name']} | {shown} | {fig.get('unit', '')} | "
                     f"{'' if target is None else f'{op} {target:,}'} | {verdict(fig)} |")
    return lines


def main(argv: list[str]) -> int:
    only = set(argv)
    measured = commit()  # before the runs: the code they measure
    scripts = sorted(p for p in BENCH.glob("bench_*.py") if not only or p.stem in only)
    rows, failures = [], []
    for script in scripts:
        print(f"running {script.name} ...", flush=True)
        figures, status, seconds = run_one(script)
        print(f"  {status}, {seconds:.0f}s, {len(figures)} figures", flush=True)
        if status != "ok":
            failures.append(f"{script.name}: {status}")
        for fig in figures:
            rows.append((script.name, fig))
    lines = ["# Benchmark results", "", f"Machine: {machine_line()}", f"Commit: {measured}", "", *table(rows)]
    if failures:
        lines += ["", "Failed to run:", *[f"- {f}" for f in failures]]
    (BENCH / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
