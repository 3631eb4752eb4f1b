"""Short-run SPC seen by the outputs that seed from the store at start: a short-run characteristic has
its latest capability per part number, and the Sparkplug DBIRTH's `cpk` (like the OPC UA server's Cpk
node, seeded the same way) is the newest of them, the one the last live capability event carried, not
the alphabetically last part's."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.outputs.sparkplug_node import EdgeNode
from gateway.outputs.sparkplug_seed import seed
from gateway.store import Store


def test_sparkplug_seeds_the_newest_part_capability_of_a_short_run_characteristic(tmp_path: Path) -> None:
    async def run() -> tuple[list[dict], object]:
        store = Store(str(tmp_path / "spc.sqlite3"))
        await store.open()
        try:
            with store.batch() as b:
                # B-200 analyzed first, then A-100: A-100's is the newest
                for part, cpk in (("B-200", 0.9), ("A-100", 1.6)):
                    b.capability(product_id=1, characteristic="bore", cp=None, cpk=cpk, pp=None, ppk=None,
                                 cpm=None, cpk_lower=None, n=30, sigma_within=0.02, sigma_overall=0.02,
                                 analyzed_at=4.0, part=part)
            await b.committed
            node = EdgeNode("Plant", "LINE-1", [(1, "HOUSING", ["bore"])])
            await seed(node, store)
            return await store.latest_capability(1), node.devices[1].values.get("bore/cpk")
        finally:
            await store.close()

    latest, cpk = asyncio.run(run())
    assert [(row["part"], row["cpk"]) for row in latest] == [("A-100", 1.6), ("B-200", 0.9)]
    assert cpk == 1.6
