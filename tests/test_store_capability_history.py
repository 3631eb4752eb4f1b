"""The capability history keeps the distribution and expected ppm of each result (schema 8), on a real
SQLite file: a file of schema 7 is migrated with its rows, and a new result reads back as it was given."""

from __future__ import annotations

import asyncio
import sqlite3

from gateway.store import Store
from gateway.store.schema import LATEST, migrate, user_version

DISTRIBUTION = {"name": "weibull", "parameters": {"shape": 1.8, "scale": 0.012},
                "anderson_darling": {"statistic": 0.31, "p_value": 0.25}, "method": "percentile",
                "warning": "fits", "warning_texts": {"ko": "측정값이 맞습니다", "en": "fits"}}
PPM = {"below": None, "above": 1840.2458542474974, "total": 1840.2458542474974}


def _schema7_file(path: str) -> None:
    """A database as a gateway of schema 7 left it, with two capability rows (one of a part number)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    assert migrate(conn, target=7) == (0, 7)
    conn.executemany("INSERT INTO capability (id, product_id, characteristic, cp, cpk, pp, ppk, cpm, cpk_lower, "
                     "n, sigma_within, sigma_overall, analyzed_at, reason, part) "
                     "VALUES (?, 1, 'runout', NULL, ?, NULL, ?, NULL, NULL, 50, 0.01, 0.011, 1.0, NULL, ?)",
                     [(1, 1.4, 1.3, None), (2, 1.1, 1.0, "A-100")])
    conn.execute("INSERT INTO meta VALUES ('hw_capability', '2')")
    conn.close()


def test_a_schema_7_file_is_migrated_and_new_results_keep_distribution_and_ppm(tmp_path) -> None:
    assert LATEST >= 8
    path = str(tmp_path / "spc.sqlite3")
    _schema7_file(path)

    async def main() -> None:
        store = Store(path)
        await store.open()
        try:
            assert store.schema_upgraded == (7, LATEST)
            before = await store.latest_capability(1)
            # rows from before schema 8 say nothing of a distribution: null, not a guess
            assert [(r["part"], r["ppk"], r["distribution"], r["expected_ppm"]) for r in before] == [
                (None, 1.3, None, None), ("A-100", 1.0, None, None)]
            with store.batch() as b:
                cid = b.capability(product_id=1, characteristic="runout", cp=None, cpk=1.2, pp=None, ppk=1.2,
                                   cpm=None, cpk_lower=None, n=50, sigma_within=None, sigma_overall=0.011,
                                   analyzed_at=2.0, reason="percentile", distribution=DISTRIBUTION,
                                   expected_ppm=PPM)
                # an attribute chart's result has neither
                b.capability(product_id=1, characteristic="scratches", cp=None, cpk=None, pp=None, ppk=None,
                             cpm=None, cpk_lower=None, n=25, sigma_within=None, sigma_overall=None,
                             analyzed_at=2.0)
            await b.committed
            assert cid > 2  # ids go on after the migrated rows
            after = {(r["characteristic"], r["part"]): r for r in await store.latest_capability(1)}
            assert after[("runout", None)]["distribution"] == DISTRIBUTION  # Korean and all, unchanged
            assert after[("runout", None)]["expected_ppm"] == PPM
            assert after[("runout", "A-100")]["distribution"] is None
            assert after[("scratches", None)]["distribution"] is None
            assert after[("scratches", None)]["expected_ppm"] is None
        finally:
            await store.close()
        # and the same file opens again as it is, without migrating anything
        store = Store(path)
        await store.open()
        try:
            assert store.schema_upgraded is None or store.schema_upgraded == (LATEST, LATEST)
            assert len(await store.latest_capability(1)) == 3
        finally:
            await store.close()

    asyncio.run(main())
    conn = sqlite3.connect(path)
    assert user_version(conn) == LATEST
    # kept as JSON text, so that sqlite3 on the line PC can ask it too
    assert conn.execute("SELECT json_extract(expected_ppm, '$.above'), json_extract(distribution, '$.name') "
                        "FROM capability WHERE distribution IS NOT NULL").fetchall() == [(1840.2458542474974,
                                                                                            "weibull")]
    conn.close()
