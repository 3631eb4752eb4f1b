"""Schema 7: the part number on measurements, charted points and capability; a version-5 file (before
the charts' plotted columns of schema 6) and a version-6 file open, and their rows read back with no part."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from gateway.store import LATEST, Store
from gateway.store.schema import migrate


@pytest.mark.parametrize("version", [5, 6])
def test_an_older_database_opens_and_every_row_gets_its_part(tmp_path, version):
    path = str(tmp_path / f"v{version}.sqlite3")
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, target=version) == (0, version)
    conn.execute("INSERT INTO measurements (id, product_id, characteristic, value, measured_at, received_at, "
                 "sample_number, subgroup_number, is_within_spec, is_within_control) "
                 "VALUES (1, 1, 'bore', 10.01, 1.0, 1.0, 1, 1, 1, 1)")
    conn.execute("INSERT INTO subgroups (product_id, characteristic, subgroup_number, n, mean, violations, at) "
                 "VALUES (1, 'bore', 1, 1, 10.01, '[]', 1.0)")
    conn.close()

    async def main() -> None:
        store = Store(path)
        await store.open()
        try:
            assert store.schema_upgraded == (version, LATEST) and LATEST >= 7
            (old,) = await store.measurements(1, "bore")
            assert (old["part"], old["part_unknown"]) == (None, None)
            assert (await store.subgroups(1, "bore"))[0]["part"] is None
            with store.batch() as b:
                b.measurement(product_id=1, characteristic="bore", value=12.52, measured_at=2.0, received_at=2.0,
                              sample_number=2, subgroup_number=2, is_within_spec=True, is_within_control=True,
                              part="A-200")
                b.measurement(product_id=1, characteristic="bore", value=11.0, measured_at=3.0, received_at=3.0,
                              sample_number=3, subgroup_number=2, is_within_spec=None, is_within_control=None,
                              part_unknown="not_in_table")
                b.subgroup(product_id=1, characteristic="bore", subgroup_number=2, n=1, mean=0.667, range=None,
                           stdev=None, center=0.0, ucl=3.0, lcl=-3.0, violations=[], at=2.0, part="A-200")
                for part, cpk in (("A-100", 1.5), ("A-200", 1.1), ("A-100", 1.6)):
                    b.capability(product_id=1, characteristic="bore", cp=None, cpk=cpk, pp=None, ppk=None, cpm=None,
                                 cpk_lower=None, n=30, sigma_within=0.02, sigma_overall=0.02, analyzed_at=4.0,
                                 part=part)
            await b.committed
            rows = await store.measurements(1, "bore")
            assert [(r["part"], r["part_unknown"]) for r in rows] == [
                (None, None), ("A-200", None), (None, "not_in_table")]
            assert [s["part"] for s in await store.subgroups(1, "bore")] == [None, "A-200"]
            assert await store.subgroup_means(1, "bore", 1, 5) == [[10.01], [0.667]]
            # the latest capability of each part of the characteristic
            latest = await store.latest_capability(1)
            assert [(c["part"], c["cpk"]) for c in latest] == [("A-100", 1.6), ("A-200", 1.1)]
        finally:
            await store.close()

    asyncio.run(main())
