"""The capability history keeps the rate of attribute data (schema 9): p_bar, ppm and process_z of a p
chart, u_bar and dpu of a u chart, on a real SQLite file. A file of schema 8 (the last one before) is
migrated with every row it holds, measured values' distribution and expected ppm included."""

from __future__ import annotations

import asyncio
import json
import sqlite3

from gateway.store import Store
from gateway.store.schema import LATEST, migrate, user_version

DISTRIBUTION = {"name": "lognormal", "parameters": {"mu": 2.302, "sigma": 0.008},
                "anderson_darling": {"statistic": 0.31, "p_value": 0.55}, "method": "percentile",
                "warning": None, "warning_texts": None}
PPM = {"below": 0.1, "above": 0.3, "total": 0.4}
RATE_KEYS = ("p_bar", "ppm", "process_z", "u_bar", "dpu")


def _schema8_file(path: str) -> None:
    """A database as a gateway of schema 8 left it: a measured result with its distribution, a p chart's
    result with no rate (schema 8 dropped it), and other rows beside them."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    assert migrate(conn, target=8) == (0, 8)
    conn.execute("INSERT INTO capability (id, product_id, characteristic, cp, cpk, pp, ppk, cpm, cpk_lower, n, "
                 "sigma_within, sigma_overall, analyzed_at, reason, part, distribution, expected_ppm) VALUES "
                 "(1, 1, 'diameter', 1.7, 1.6, 1.62, 1.55, NULL, NULL, 125, 0.08, 0.081, 1.0, NULL, NULL, ?, ?)",
                 (json.dumps(DISTRIBUTION), json.dumps(PPM)))
    conn.execute("INSERT INTO capability (id, product_id, characteristic, n, analyzed_at) "
                 "VALUES (2, 1, 'defects', 25, 1.0)")
    conn.execute("INSERT INTO meta VALUES ('hw_capability', '2')")
    conn.close()


def test_a_schema_8_file_is_migrated_and_attribute_results_keep_their_rate(tmp_path) -> None:
    assert LATEST == 9
    path = str(tmp_path / "spc.sqlite3")
    _schema8_file(path)

    async def main() -> None:
        store = Store(path)
        await store.open()
        try:
            assert store.schema_upgraded == (8, 9)
            before = {r["characteristic"]: r for r in await store.latest_capability(1)}
            # what schema 8 kept is read back unchanged; the rate it never stored is null, not a guess
            assert before["diameter"]["distribution"] == DISTRIBUTION
            assert before["diameter"]["expected_ppm"] == PPM and before["diameter"]["ppk"] == 1.55
            assert all(before[c][k] is None for c in before for k in RATE_KEYS)
            with store.batch() as b:
                p_id = b.capability(product_id=1, characteristic="defects", cp=None, cpk=None, pp=None, ppk=None,
                                    cpm=None, cpk_lower=None, n=30, sigma_within=None, sigma_overall=None,
                                    analyzed_at=2.0, p_bar=0.2313, ppm=231300.0, process_z=0.7339)
                b.capability(product_id=1, characteristic="scratches", cp=None, cpk=None, pp=None, ppk=None,
                             cpm=None, cpk_lower=None, n=26, sigma_within=None, sigma_overall=None,
                             analyzed_at=2.0, u_bar=1.93, dpu=1.93)
                # a p chart with no defective at all: p_bar 0, ppm 0, and no process Z (it is infinite)
                b.capability(product_id=1, characteristic="burrs", cp=None, cpk=None, pp=None, ppk=None,
                             cpm=None, cpk_lower=None, n=25, sigma_within=None, sigma_overall=None,
                             analyzed_at=2.0, p_bar=0.0, ppm=0.0, process_z=None)
            await b.committed
            assert p_id > 2  # ids go on after the migrated rows
            after = {r["characteristic"]: r for r in await store.latest_capability(1)}
            assert [after["defects"][k] for k in RATE_KEYS] == [0.2313, 231300.0, 0.7339, None, None]
            assert [after["scratches"][k] for k in RATE_KEYS] == [None, None, None, 1.93, 1.93]
            assert [after["burrs"][k] for k in RATE_KEYS] == [0.0, 0.0, None, None, None]
            assert after["defects"]["distribution"] is None and after["defects"]["n"] == 30
            assert after["diameter"]["distribution"] == DISTRIBUTION  # the measured row is still the latest
        finally:
            await store.close()
        store = Store(path)  # the same file opens again as it is
        await store.open()
        try:
            assert store.schema_upgraded in (None, (9, 9))
            assert len(await store.latest_capability(1)) == 4
        finally:
            await store.close()

    asyncio.run(main())
    conn = sqlite3.connect(path)
    assert user_version(conn) == 9
    # plain columns: the rate of a chart is one SELECT away with sqlite3 on the line PC
    assert conn.execute("SELECT characteristic, p_bar, ppm, process_z, u_bar, dpu FROM capability "
                        "WHERE p_bar IS NOT NULL OR u_bar IS NOT NULL ORDER BY id").fetchall() == [
        ("defects", 0.2313, 231300.0, 0.7339, None, None), ("scratches", None, None, None, 1.93, 1.93),
        ("burrs", 0.0, 0.0, None, None, None)]
    assert conn.execute("SELECT COUNT(*) FROM capability").fetchone() == (5,)
    conn.close()
