"""`spc-gateway export` into `spc-gateway analyze`, through the real CLI on a real SQLite file:
the time zone of --from/--to with --db, one characteristic per file, and analyze refusing a mix."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.sources.registry import load_config
from gateway.store import Store
from tests.daemon_helpers import REPO, minimal_config, write_config

SEOUL = dt.timezone(dt.timedelta(hours=9))
START = dt.datetime(2026, 4, 30, 12, 0, tzinfo=dt.UTC).timestamp()  # 21:00 on 30 April in Seoul
STEP = 600.0  # one part every ten minutes, for 36 hours
PARTS = 216


def cli(*argv: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *map(str, argv)], capture_output=True, text=True,
                          timeout=60, cwd=cwd, env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.fixture(scope="module")
def line(tmp_path_factory) -> tuple[Path, Path]:
    """A config in Asia/Seoul with two characteristics, and a database holding 36 hours of both."""
    tmp = tmp_path_factory.mktemp("export")
    config = minimal_config(tmp)
    first = config["products"][0]["characteristics"][0]
    second = {**first, "name": "length", "modbus": {**first["modbus"], "address": 2}, "chart": "xbar_r",
              "subgroup_size": 5, "spec": {"lsl": 49.0, "usl": 51.0}, "limits": {"center": 50.0, "sigma": 0.2}}
    config["products"][0]["characteristics"].append(second)
    config_path = write_config(tmp, config)
    loaded, _warnings = load_config(str(config_path))
    rng = random.Random(17)

    async def fill() -> None:
        store = Store(loaded.storage.path)
        await store.open()
        store.sync_catalog(loaded.products)
        with store.batch() as batch:
            for i in range(PARTS):
                at = START + STEP * i
                for name, value, subgroup in (("diameter", rng.gauss(10.0, 0.1), i + 1),
                                              ("length", rng.gauss(50.0, 0.2), i // 5 + 1)):
                    batch.measurement(product_id=1, characteristic=name, value=round(value, 4), measured_at=at,
                                      received_at=at, sample_number=i + 1, subgroup_number=subgroup,
                                      is_within_spec=True, is_within_control=True)
        await batch.committed
        await store.close()

    asyncio.run(fill())
    return config_path, Path(loaded.storage.path)


def rows_of(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_export_with_db_reads_dates_in_the_configured_zone(line, tmp_path):
    config_path, db = line
    out = tmp_path / "day.csv"
    # --db with --config: the config's gateway.timezone (Asia/Seoul), not UTC
    result = cli("export", "--db", db, "--config", config_path, "--product", 1, "--from", "2026-05-01",
                 "--to", "2026-05-02", "-o", out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = rows_of(out)
    assert len(rows) == 2 * 144  # 24 hours of both characteristics
    assert rows[0]["measured_at"] == "2026-05-01T00:00:00.000+09:00"
    assert rows[-1]["measured_at"] == "2026-05-01T23:50:00.000+09:00"
    assert "times in Asia/Seoul" in result.stderr
    # --db alone with --timezone gives the same window
    result = cli("export", "--db", db, "--timezone", "Asia/Seoul", "--product", 1, "--from", "2026-05-01",
                 "--to", "2026-05-02", "-o", tmp_path / "tz.csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "tz.csv").read_text() == out.read_text()
    # --db and nothing else: UTC, and the summary says so
    result = cli("export", "--db", db, "--product", 1, "--from", "2026-05-01", "--to", "2026-05-02",
                 "-o", tmp_path / "utc.csv", cwd=tmp_path)
    assert result.returncode == 0 and "times in UTC" in result.stderr and "--timezone" in result.stderr
    assert rows_of(tmp_path / "utc.csv")[0]["measured_at"] == "2026-05-01T00:00:00.000+00:00"
    result = cli("export", "--db", db, "--timezone", "Asia/Seol", "--product", 1, cwd=tmp_path)
    assert result.returncode == 1 and "'Asia/Seol' is not a known time zone" in result.stderr


def test_export_of_one_characteristic_is_an_analyze_input(line, tmp_path):
    config_path, db = line
    both, length = tmp_path / "both.csv", tmp_path / "length.csv"
    assert cli("export", "--config", config_path, "--product", 1, "-o", both, cwd=tmp_path).returncode == 0
    # analyze refuses a file that mixes characteristics, naming them
    result = cli("analyze", both, cwd=tmp_path)
    assert result.returncode == 1 and result.stdout == ""
    assert "mix characteristics" in result.stderr
    assert "'diameter'" in result.stderr and "'length'" in result.stderr
    result = cli("export", "--config", config_path, "--product", 1, "--characteristic", "length", "-o", length,
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{PARTS} measurements of product 1 (length) exported" in result.stderr
    assert {r["characteristic"] for r in rows_of(length)} == {"length"}
    # subgroups as the gateway formed them (subgroup_number): xbar_r of 5, like the daemon's chart
    result = cli("analyze", length, "--lsl", "49", "--usl", "51", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    analysis = json.loads(result.stdout)
    assert (analysis["chart"], analysis["subgroups"]) == ("xbar_r", PARTS // 5 + 1)
    assert analysis["points"][0] == {**analysis["points"][0], "subgroup": "1", "n": 5}
    assert analysis["limits"]["center"] == pytest.approx(50.0, abs=0.1)
    # a misspelt characteristic names the known ones instead of writing an empty file
    result = cli("export", "--config", config_path, "--product", 1, "--characteristic", "lenght",
                 "-o", tmp_path / "x.csv", cwd=tmp_path)
    assert result.returncode == 1 and "known: diameter, length" in result.stderr
    assert not (tmp_path / "x.csv").exists()
