"""What the Sparkplug births show: each device's newest metrics, read from the store before every births.

Without it the first DBIRTH after a restart would carry nulls until every characteristic had a new
measurement, subgroup and capability, and a host (Ignition) would show "no value" for metrics the
gateway knows; and births after an outage would show the values from before it. The births show the
newest stored state; rows the consumer had not delivered yet go after them as history (they are
older), so the host's current values stay the newest.

The bdSeq of the last connection is kept in the store's meta table (`sparkplug_bdseq`), written and
committed before each connect: the next process continues from it (Sparkplug 3.0: bdSeq counts
connection attempts, and a host may compare an NDEATH's bdSeq with the last NBIRTH's).
"""

from __future__ import annotations

import json
from typing import Any

from gateway.outputs.sparkplug_node import EdgeNode

BD_SEQ_KEY = "sparkplug_bdseq"


async def last_bd_seq(store: Any) -> int:
    """The bdSeq of the last connection of an earlier process (0..255), or -1 when none is stored."""
    raw = await store.meta_value(BD_SEQ_KEY)
    try:
        value = int(raw) if raw is not None else -1
    except ValueError:  # not ours to trust: start over rather than refuse to start
        return -1
    return value if 0 <= value <= 255 else -1


async def store_bd_seq(store: Any, bd_seq: int) -> None:
    await store.set_meta_value(BD_SEQ_KEY, str(bd_seq))


async def seed(node: EdgeNode, store: Any) -> None:
    """Fill every device's current values from the store: value, in_spec, in_control of the last
    measurement; mean, center, ucl, lcl of the last charted point; cpk of the last capability; the
    limits version in force; the open and acknowledged alerts and the alert that changed last."""
    versions = await store.limits_versions()
    unresolved = await store.unresolved_alerts()
    for device in node.devices.values():
        pid = device.product_id
        values = device.values
        # a short-run characteristic has one row per part: the newest is the last one sent live
        capability = {c["characteristic"]: c for c in sorted(await store.latest_capability(pid), key=lambda c: c["id"])}
        for c in device.characteristics:
            last = await store.measurements(pid, c, 1)
            if last:
                values[f"{c}/value"] = last[-1]["measurement_value"]
                values[f"{c}/in_spec"] = last[-1]["is_within_spec"]
                values[f"{c}/in_control"] = last[-1]["is_within_control"]
            point = await store.subgroups(pid, c, 1)
            if point:
                for metric, column in (("mean", "mean"), ("center", "center"), ("ucl", "ucl"), ("lcl", "lcl")):
                    values[f"{c}/{metric}"] = point[-1][column]
            if c in capability:
                values[f"{c}/cpk"] = capability[c]["cpk"]
            if (pid, c) in versions:
                values[f"{c}/limits_version"] = versions[(pid, c)]
        device.open_alerts = {a["id"]: a["status"] for a in unresolved
                              if a.get("product_id") == pid and a.get("status") in ("OPEN", "ACKNOWLEDGED")}
        values["alerts/open"] = len(device.open_alerts)
        last = await store.last_changed_alert(pid)  # what the last alert event of the product carried
        if last is not None:
            values["alerts/last"] = json.dumps(last, ensure_ascii=False)
