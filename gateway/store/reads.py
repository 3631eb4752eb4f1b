"""The store's queries: plain functions over a read connection, run on the reader thread.

In WAL mode a reader sees the last committed state and is never blocked by the writer.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, NamedTuple

from gateway.core.model import Event
from gateway.core.plotted import plotted_fields

UNRESOLVED = ("OPEN", "ACKNOWLEDGED", "SHELVED")


class OutboxRow(NamedTuple):
    """One message waiting for the plant broker's confirmation."""

    seq: int
    topic: str
    payload: bytes
    kind: str


def _bool(x: int | None) -> bool | None:
    return None if x is None else bool(x)


def events_after(conn: sqlite3.Connection, seq: int, limit: int) -> list[Event]:
    """Events with a seq greater than `seq`, oldest first."""
    rows = conn.execute("SELECT seq, type, product_id, notable, body FROM events WHERE seq > ? "
                        "ORDER BY seq LIMIT ?", (int(seq), int(limit))).fetchall()
    # the stored text is the JSON sent live: replay sends those bytes again, not a re-encoding
    return [Event(seq=s, type=t, product_id=p, body=json.loads(b), notable=bool(n), data=b.encode())
            for s, t, p, n, b in rows]


def oldest_event_seq(conn: sqlite3.Connection) -> int | None:
    """The smallest seq still kept (older ones were pruned), or None without events."""
    return conn.execute("SELECT MIN(seq) FROM events").fetchone()[0]


def alerts(conn: sqlite3.Connection, *, status=None, product_id=None, limit=10, before_id=None) -> list[dict]:
    """Alerts, newest first, filtered by status, product and id below before_id."""
    where, args = [], []
    if status is not None:
        where.append("status = ?")
        args.append(status)
    if product_id is not None:
        where.append("product_id = ?")
        args.append(int(product_id))
    if before_id is not None:
        where.append("id < ?")
        args.append(int(before_id))
    sql = "SELECT body FROM alerts" + (" WHERE " + " AND ".join(where) if where else "")
    rows = conn.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, int(limit))).fetchall()
    return [json.loads(b) for (b,) in rows]


def last_changed_alert(conn: sqlite3.Connection, product_id: int) -> dict | None:
    """The alert of a product that changed last (raised, repeated, acknowledged...), or None."""
    row = conn.execute("SELECT body FROM alerts WHERE product_id = ? ORDER BY updated_at DESC, id DESC LIMIT 1",
                       (int(product_id),)).fetchone()
    return None if row is None else json.loads(row[0])


def unresolved_alerts(conn: sqlite3.Connection) -> list[dict]:
    """Alerts that are OPEN, ACKNOWLEDGED or SHELVED, oldest first."""
    rows = conn.execute("SELECT body FROM alerts WHERE status IN (?, ?, ?) ORDER BY id", UNRESOLVED).fetchall()
    return [json.loads(b) for (b,) in rows]


def alert(conn: sqlite3.Connection, alert_id: int) -> dict | None:
    """One alert by id, or None."""
    row = conn.execute("SELECT body FROM alerts WHERE id = ?", (int(alert_id),)).fetchone()
    return None if row is None else json.loads(row[0])


def alert_history(conn: sqlite3.Connection, alert_id: int) -> list[dict]:
    """Every transition of one alert, oldest first."""
    rows = conn.execute("SELECT id, alert_id, at, who, action, from_status, to_status, comment, details "
                        "FROM alert_history WHERE alert_id = ? ORDER BY id", (int(alert_id),)).fetchall()
    return [{"id": i, "alert_id": a, "at": at, "who": who, "action": act, "from_status": fs, "to_status": ts,
             "comment": c, "details": None if d is None else json.loads(d)}
            for i, a, at, who, act, fs, ts, c, d in rows]


_MEASUREMENT_COLUMNS = ("m.id, m.product_id, p.code, m.characteristic, m.value, m.sample_number, "
                        "m.subgroup_number, m.is_within_spec, m.is_within_control, m.measured_at, "
                        "m.received_at, m.source_key, m.count, m.sample_size, m.part, m.part_unknown")


def measurement_dict(row: tuple) -> dict[str, Any]:
    """A measurements row (in _MEASUREMENT_COLUMNS order) as the protocol's measurement object."""
    mid, pid, code, ch, value, sample, subgroup, spec, control, measured, received, key, count, size, part, \
        unknown = row
    result = {"id": mid, "product_id": pid, "product_code": code, "characteristic": ch,
              "measurement_value": value, "sample_number": sample, "subgroup_number": subgroup,
              "is_within_spec": _bool(spec), "is_within_control": _bool(control), "measured_at": measured,
              "received_at": received, "source_key": key, "part": part, "part_unknown": unknown}
    if count is not None:  # attribute data only: a variables measurement keeps the object it always had
        result["count"] = count
        result["sample_size"] = size
    return result


def measurements(conn: sqlite3.Connection, product_id: int, characteristic: str | None = None,
                 limit: int = 100) -> list[dict]:
    """The latest `limit` measurements of a product (or one characteristic), oldest first."""
    base = (f"SELECT {_MEASUREMENT_COLUMNS} FROM measurements m LEFT JOIN products p ON p.id = m.product_id "
            "WHERE m.product_id = ?")
    args: tuple[int | str, ...]
    if characteristic is None:
        sql, args = base + " ORDER BY m.id DESC LIMIT ?", (int(product_id), int(limit))
    else:
        # ordered like the (product_id, characteristic, subgroup_number) index, which ends in the rowid
        sql = base + " AND m.characteristic = ? ORDER BY m.subgroup_number DESC, m.id DESC LIMIT ?"
        args = (int(product_id), characteristic, int(limit))
    rows = conn.execute(sql, args).fetchall()
    return [measurement_dict(r) for r in reversed(rows)]


def subgroup_values(conn: sqlite3.Connection, product_id: int, characteristic: str, from_subgroup: int,
                    count: int) -> list[list[float]]:
    """Individual values of `count` subgroups starting at from_subgroup, one list per subgroup."""
    rows = conn.execute("SELECT subgroup_number, value FROM measurements WHERE product_id = ? AND "
                        "characteristic = ? AND subgroup_number >= ? AND subgroup_number < ? AND value "
                        "IS NOT NULL ORDER BY subgroup_number, id",
                        (int(product_id), characteristic, int(from_subgroup),
                         int(from_subgroup) + int(count))).fetchall()
    groups: dict[int, list[float]] = {}
    for number, value in rows:
        groups.setdefault(number, []).append(value)
    return list(groups.values())


def subgroup_means(conn: sqlite3.Connection, product_id: int, characteristic: str, from_subgroup: int,
                   count: int) -> list[list[float]]:
    """The charted value of `count` points from from_subgroup, one list each: a short-run chart's
    DNOM or Z values (its measurements hold the parts' own readings)."""
    rows = conn.execute("SELECT mean FROM subgroups WHERE product_id = ? AND characteristic = ? AND "
                        "subgroup_number >= ? AND subgroup_number < ? AND mean IS NOT NULL ORDER BY "
                        "subgroup_number", (int(product_id), characteristic, int(from_subgroup),
                                            int(from_subgroup) + int(count))).fetchall()
    return [[mean] for (mean,) in rows]


def subgroups(conn: sqlite3.Connection, product_id: int, characteristic: str, limit: int) -> list[dict]:
    """The latest `limit` charted points (subgroups) with their limits and rule numbers, oldest first."""
    rows = conn.execute("SELECT subgroup_number, n, mean, range, stdev, center, ucl, lcl, violations, plotted, "
                        "cusum_upper, cusum_lower, run_upper, run_lower, count, sample_size, part FROM "
                        "subgroups WHERE product_id = ? AND characteristic = ? ORDER BY subgroup_number DESC "
                        "LIMIT ?", (int(product_id), characteristic, int(limit))).fetchall()
    keys = ("subgroup_number", "n", "mean", "range", "stdev", "center", "ucl", "lcl")
    # each point with what its chart plots, worded as the live `subgroup` event words it
    return [{**dict(zip(keys, row[:8], strict=True)), "violations": json.loads(row[8] or "[]"),
             **plotted_fields(mean=row[2], ucl=row[6], plotted=row[9], cusum_upper=row[10], cusum_lower=row[11],
                              run_upper=row[12], run_lower=row[13], count=row[14], sample_size=row[15]),
             "part": row[16]}
            for row in reversed(rows)]


_LIMITS_COLUMNS = ("id", "product_id", "characteristic", "effective_from", "center", "sigma", "ucl", "lcl",
                   "dispersion_center", "dispersion_ucl", "dispersion_lcl", "source", "from_subgroup",
                   "to_subgroup", "who", "reason", "stored_at")


def latest_limits(conn: sqlite3.Connection, product_id: int, characteristic: str) -> dict | None:
    """The newest control limits version of a characteristic, or None."""
    row = conn.execute(f"SELECT {', '.join(_LIMITS_COLUMNS)} FROM control_limits WHERE product_id = ? AND "
                       "characteristic = ? ORDER BY id DESC LIMIT 1", (int(product_id), characteristic)
                       ).fetchone()
    return None if row is None else dict(zip(_LIMITS_COLUMNS, row, strict=True))


def limits_versions(conn: sqlite3.Connection) -> dict[tuple[int, str], int]:
    """The newest control-limits version (its id) of every characteristic."""
    rows = conn.execute("SELECT product_id, characteristic, MAX(id) FROM control_limits "
                        "GROUP BY product_id, characteristic").fetchall()
    return {(pid, c): version for pid, c, version in rows}


def limits_history(conn: sqlite3.Connection, product_id: int, characteristic: str) -> list[dict]:
    """Every control limits version of a characteristic, oldest first."""
    rows = conn.execute(f"SELECT {', '.join(_LIMITS_COLUMNS)} FROM control_limits WHERE product_id = ? AND "
                        "characteristic = ? ORDER BY id", (int(product_id), characteristic)).fetchall()
    return [dict(zip(_LIMITS_COLUMNS, r, strict=True)) for r in rows]


_CAPABILITY_COLUMNS = ("id", "product_id", "characteristic", "cp", "cpk", "pp", "ppk", "cpm", "cpk_lower", "n",
                       "sigma_within", "sigma_overall", "analyzed_at", "reason", "part", "distribution",
                       "expected_ppm", "p_bar", "ppm", "process_z", "u_bar", "dpu")  # attribute data: schema 9
_CAPABILITY_JSON = ("distribution", "expected_ppm")  # stored as the event's JSON objects (schema 8)


def latest_capability(conn: sqlite3.Connection, product_id: int) -> list[dict]:
    """The newest capability result of each characteristic of a product (and of each of its part numbers)."""
    rows = conn.execute(f"SELECT {', '.join(_CAPABILITY_COLUMNS)} FROM capability WHERE id IN "
                        "(SELECT MAX(id) FROM capability WHERE product_id = ? GROUP BY characteristic, part) "
                        "ORDER BY characteristic, part", (int(product_id),)).fetchall()
    results = [dict(zip(_CAPABILITY_COLUMNS, r, strict=True)) for r in rows]
    for result in results:
        for key in _CAPABILITY_JSON:
            if result[key] is not None:
                result[key] = json.loads(result[key])
    return results


def engine_states(conn: sqlite3.Connection) -> dict[tuple[int, str], str]:
    """Every engine's last saved state by (product_id, characteristic)."""
    rows = conn.execute("SELECT product_id, characteristic, state FROM engine_state").fetchall()
    return {(p, c): s for p, c, s in rows}


def recent_source_keys(conn: sqlite3.Connection, limit: int) -> list[str]:
    """The origin identities of the latest measurements that had one, newest first."""
    rows = conn.execute("SELECT source_key FROM measurements WHERE source_key IS NOT NULL ORDER BY id DESC "
                        "LIMIT ?", (int(limit),)).fetchall()
    return [k for (k,) in rows]


def outbox_fetch(conn: sqlite3.Connection, after_seq: int, limit: int,
                 kinds: frozenset[str] | None = None) -> list[OutboxRow]:
    """Outbox rows after after_seq, in seq order; only rows of these kinds when given."""
    if kinds is None:
        rows = conn.execute("SELECT seq, topic, payload, kind FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                            (int(after_seq), int(limit))).fetchall()
    else:  # a walk along seq that skips other kinds: the rows of one consumer are most of the outbox
        marks = ",".join("?" * len(kinds))
        rows = conn.execute(f"SELECT seq, topic, payload, kind FROM outbox WHERE seq > ? AND kind IN ({marks}) "
                            "ORDER BY seq LIMIT ?", (int(after_seq), *sorted(kinds), int(limit))).fetchall()
    return [OutboxRow(s, t, bytes(p), k) for s, t, p, k in rows]


def outbox_stats(conn: sqlite3.Connection) -> dict:
    """depth (rows), bytes, oldest_at (created_at of the oldest row, None when empty), dropped (ever)."""
    depth, size = conn.execute("SELECT depth, bytes FROM outbox_totals").fetchone()  # kept by triggers
    first = conn.execute("SELECT created_at FROM outbox ORDER BY seq LIMIT 1").fetchone()  # rows come in time order
    oldest = first[0] if first else None
    row = conn.execute("SELECT value FROM meta WHERE key = 'outbox_dropped'").fetchone()
    return {"depth": depth, "bytes": size, "oldest_at": oldest, "dropped": int(row[0]) if row else 0}


def outbox_trim(conn: sqlite3.Connection, limit_bytes: int) -> int:
    """(Writer thread.) Drop the oldest measurement rows until the outbox holds at most limit_bytes."""
    total = conn.execute("SELECT bytes FROM outbox_totals").fetchone()[0]
    excess = total - int(limit_bytes)
    if excess <= 0:
        return 0
    freed = count = 0
    last = None
    for seq, size in conn.execute("SELECT seq, bytes FROM outbox WHERE kind = 'measurement' ORDER BY seq"):
        freed += size
        count += 1
        last = seq
        if freed >= excess:
            break
    if last is None:
        return 0
    conn.execute("BEGIN IMMEDIATE")
    count = conn.execute("DELETE FROM outbox WHERE kind = 'measurement' AND seq <= ?", (last,)).rowcount
    conn.execute("INSERT INTO meta (key, value) VALUES ('outbox_dropped', ?) ON CONFLICT (key) DO UPDATE "
                 "SET value = CAST(value AS INTEGER) + excluded.value", (count,))
    conn.execute("COMMIT")
    return count


def meta_value(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def set_meta_value(conn: sqlite3.Connection, key: str, value: str) -> None:
    """(Writer thread.) One meta row, committed at once."""
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = "
                 "excluded.value", (key, value))
    conn.execute("COMMIT")
