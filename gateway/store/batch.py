"""Batch: the rows of one unit of work, recorded on the event loop and written later by the writer thread.

Every method only records parameters in memory. Ids and `seq` are handed out at once from counters
kept in memory (loaded from the file at open), so events can be built and numbered before commit.
Numbers are coerced to plain Python types here: a numpy integer that reached SQLite would fail every
retry of the transaction and jam the writer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol

from gateway.core.jsoncodec import dumps
from gateway.core.model import Event

# One statement per kind of row; a group of batches runs them in this order (catalog first, outbox
# deletes last, so a delete never runs before an insert of the same group).
SQL: dict[str, str] = {
    "product": "INSERT INTO products (id, code, name, updated_at) VALUES (?, ?, ?, ?) "
               "ON CONFLICT (id) DO UPDATE SET code = excluded.code, name = excluded.name, "
               "updated_at = excluded.updated_at",
    "characteristic": "INSERT INTO characteristics (product_id, name, unit, chart, subgroup_size, lsl, "
                      "target, usl, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                      "ON CONFLICT (product_id, name) DO UPDATE SET unit = excluded.unit, "
                      "chart = excluded.chart, subgroup_size = excluded.subgroup_size, lsl = excluded.lsl, "
                      "target = excluded.target, usl = excluded.usl, updated_at = excluded.updated_at",
    "measurement": "INSERT INTO measurements (id, product_id, characteristic, value, measured_at, received_at, "
                   "sample_number, subgroup_number, is_within_spec, is_within_control, source_key, count, sample_size, "
                   "part, part_unknown) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "subgroup": "INSERT INTO subgroups (product_id, characteristic, subgroup_number, n, mean, range, stdev, "
                "center, ucl, lcl, violations, at, plotted, cusum_upper, cusum_lower, run_upper, run_lower, count, "
                "sample_size, part) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "limits": "INSERT INTO control_limits (id, product_id, characteristic, effective_from, center, sigma, ucl, "
              "lcl, dispersion_center, dispersion_ucl, dispersion_lcl, source, from_subgroup, to_subgroup, "
              "who, reason, stored_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "alert": "INSERT INTO alerts (id, product_id, characteristic, alert_type, priority, status, rule, "
             "created_at, updated_at, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
             "ON CONFLICT (id) DO UPDATE SET product_id = excluded.product_id, "
             "characteristic = excluded.characteristic, alert_type = excluded.alert_type, "
             "priority = excluded.priority, status = excluded.status, rule = excluded.rule, "
             "created_at = excluded.created_at, updated_at = excluded.updated_at, body = excluded.body",
    "alert_history": "INSERT INTO alert_history (alert_id, at, who, action, from_status, to_status, comment, "
                     "details) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    "capability": "INSERT INTO capability (id, product_id, characteristic, cp, cpk, pp, ppk, cpm, cpk_lower, n, "
                  "sigma_within, sigma_overall, analyzed_at, reason, part, distribution, expected_ppm, p_bar, ppm, "
                  "process_z, u_bar, dpu) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "engine_state": "INSERT INTO engine_state (product_id, characteristic, state, updated_at) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (product_id, characteristic) DO UPDATE SET "
                    "state = excluded.state, updated_at = excluded.updated_at",
    "event": "INSERT INTO events (seq, type, product_id, notable, body, created_at) VALUES (?, ?, ?, ?, ?, ?)",
    "outbox": "INSERT INTO outbox (seq, topic, payload, kind, bytes, created_at) VALUES (?, ?, ?, ?, ?, ?)",
    # the outbox's consumers (gateway.store.outbox): cursors and held rows first, then what they release
    "outbox_cursor": "INSERT INTO outbox_cursors (consumer, cursor, updated_at) VALUES (?, ?, ?) "
                     "ON CONFLICT (consumer) DO UPDATE SET cursor = max(cursor, excluded.cursor), "
                     "updated_at = excluded.updated_at",
    "outbox_hold": "INSERT OR IGNORE INTO outbox_held (consumer, seq, kind) VALUES (?, ?, ?)",
    "outbox_unhold": "DELETE FROM outbox_held WHERE consumer = ? AND seq = ?",
    # one walk along seq for every kind released up to the same point; the kinds as a JSON array
    "outbox_release": "DELETE FROM outbox WHERE seq > ? AND seq <= ? AND kind IN (SELECT value FROM json_each(?))",
    "outbox_release_all": "DELETE FROM outbox WHERE seq > ? AND seq <= ?",  # every kind: the common case
    "outbox_release_held": "DELETE FROM outbox WHERE seq > ? AND seq <= ? AND kind IN "
                           "(SELECT value FROM json_each(?)) AND seq NOT IN (SELECT seq FROM outbox_held "
                           "WHERE consumer IN (SELECT value FROM json_each(?)))",
    "outbox_delete": "DELETE FROM outbox WHERE seq = ?",
}
ORDER: tuple[str, ...] = tuple(SQL)

# The counters handed out in memory: kind -> (table, id column).
COUNTERS: dict[str, tuple[str, str]] = {
    "measurement": ("measurements", "id"),
    "limits": ("control_limits", "id"),
    "alert": ("alerts", "id"),
    "capability": ("capability", "id"),
    "seq": ("events", "seq"),
}


def _f(x: Any) -> float | None:
    return None if x is None else float(x)


def _i(x: Any) -> int | None:
    return None if x is None else int(x)


def _n(x: Any) -> int | float | None:
    """A whole number stays an int, anything else a float (a numpy number becomes a plain one)."""
    if x is None:
        return None
    f = float(x)
    return int(f) if f.is_integer() else f


def _b(x: Any) -> int | None:
    return None if x is None else int(bool(x))


def _violations(violations: Any) -> str:
    """The rule numbers of a subgroup as a JSON array; most subgroups break none."""
    if not violations:
        return "[]"
    return "[" + ",".join(str(int(v)) for v in violations) + "]"


class BatchOwner(Protocol):
    """What a Batch needs of the Store that opened it (gateway.store.store.Store is the one owner).

    Written out so that this module need not import the store module, which imports this one. The
    batch still reaches into the store's private id counters and queue: a design debt (the counters
    could move into a small allocator both share), left as it is so that this move changes nothing.
    """

    epoch: str

    def _allocate(self, kind: str) -> int: ...

    def _peek(self, kind: str) -> int: ...

    def _give_back(self, allocated: dict[str, tuple[int, int]]) -> None: ...

    def _enqueue(self, batch: Batch) -> None: ...


class Batch:
    """One unit of work; `with store.batch(cb) as b:` queues it for the writer on exit."""

    __slots__ = ("_store", "_allocated", "rows", "n_rows", "events", "on_commit", "committed",
                 "enqueued_at", "_closed", "refusable")

    def __init__(self, store: BatchOwner, on_commit: Callable[[list[Event]], Any] | None,
                 future: asyncio.Future[list[Event]], refusable: bool = False):
        self._store = store
        self._allocated: dict[str, tuple[int, int]] = {}  # kind -> (first, last) ids handed out
        self.rows: dict[str, list[tuple]] = {}
        self.n_rows = 0
        self.events: list[Event] = []
        self.on_commit = on_commit
        self.committed = future
        self.enqueued_at = 0.0
        self._closed = False
        # An operator's act: when the database cannot be written it is refused (StoreUnavailable) instead
        # of waiting in memory to be applied after recovery, when the person who asked has given up.
        self.refusable = refusable

    # -- context manager -------------------------------------------------------------------------
    def __enter__(self) -> Batch:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.submit()
        else:
            self.abandon()

    def submit(self) -> None:
        """Queue the recorded rows for the writer (what `with` does on a normal exit)."""
        if self._closed:
            return
        self._closed = True
        self._store._enqueue(self)

    def abandon(self) -> None:
        """Forget the recorded rows; give back the numbers if nobody took one since."""
        if self._closed:
            return
        self._closed = True
        self._store._give_back(self._allocated)
        self.committed.cancel()

    # -- recording -------------------------------------------------------------------------------
    def _add(self, kind: str, params: tuple) -> None:
        if self._closed:
            raise RuntimeError("this batch was already queued; open a new one with store.batch()")
        self.rows.setdefault(kind, []).append(params)
        self.n_rows += 1

    def _next(self, kind: str) -> int:
        value = self._store._allocate(kind)
        first = self._allocated.get(kind, (value, value))[0]
        self._allocated[kind] = (first, value)
        return value

    def measurement(self, *, product_id, characteristic, value, measured_at, received_at, sample_number,
                    subgroup_number, is_within_spec, is_within_control, source_key=None, count=None,
                    sample_size=None, part=None, part_unknown=None) -> int:
        """Record one measurement; returns its id. count and sample_size: attribute data (None for variables);
        part: its part number (short-run SPC), part_unknown: why it is not known (then not charted)."""
        params = (int(product_id), str(characteristic), _f(value), float(measured_at), float(received_at),
                  _i(sample_number), _i(subgroup_number), _b(is_within_spec), _b(is_within_control),
                  source_key, _i(count), _n(sample_size), part, part_unknown)
        mid = self._next("measurement")
        self._add("measurement", (mid, *params))
        return mid

    def subgroup(self, *, product_id, characteristic, subgroup_number, n, mean, range, stdev, center,
                 ucl, lcl, violations, at, plotted=None, cusum_upper=None, cusum_lower=None, run_upper=None,
                 run_lower=None, count=None, sample_size=None, part=None) -> None:
        """Record one completed subgroup (or charted individual). plotted .. sample_size: what an EWMA,
        CUSUM or attribute chart plots (gateway.core.plotted), None for the Shewhart charts; part: its part
        number (short-run SPC)."""
        self._add("subgroup", (int(product_id), str(characteristic), int(subgroup_number), _i(n), _f(mean),
                               _f(range), _f(stdev), _f(center), _f(ucl), _f(lcl),
                               _violations(violations), float(at), _f(plotted), _f(cusum_upper),
                               _f(cusum_lower), _i(run_upper), _i(run_lower), _i(count), _n(sample_size), part))

    def limits_version(self, *, product_id, characteristic, effective_from, center, sigma, ucl, lcl,
                       dispersion_center, dispersion_ucl, dispersion_lcl, source, from_subgroup,
                       to_subgroup, who, reason) -> int:
        """Record a new control limits version (never rewritten once stored); returns its id."""
        params = (int(product_id), str(characteristic), float(effective_from), _f(center), _f(sigma),
                  _f(ucl), _f(lcl), _f(dispersion_center), _f(dispersion_ucl), _f(dispersion_lcl),
                  str(source), _i(from_subgroup), _i(to_subgroup), who, reason, time.time())
        lid = self._next("limits")
        self._add("limits", (lid, *params))
        return lid

    def alert(self, alert: dict) -> int:
        """Insert or replace an alert by alert["id"]; allocates (and sets) the id when None."""
        if alert.get("id") is None:
            alert["id"] = self._next("alert")
        body = dumps(alert).decode()
        self._add("alert", (int(alert["id"]), _i(alert.get("product_id")), alert.get("characteristic"),
                            str(alert["alert_type"]), _i(alert.get("priority")), str(alert["status"]),
                            _i(alert.get("rule")), alert.get("created_at"), time.time(), body))
        return int(alert["id"])

    def alert_transition(self, *, alert_id, at, who, action, from_status, to_status, comment=None,
                         details=None) -> None:
        """Record one step of an alert's history (who, when, what)."""
        self._add("alert_history", (int(alert_id), float(at), who, str(action), from_status, to_status,
                                    comment, None if details is None else dumps(details).decode()))

    def capability(self, *, product_id, characteristic, cp, cpk, pp, ppk, cpm, cpk_lower, n,
                   sigma_within, sigma_overall, analyzed_at, reason=None, part=None, distribution=None,
                   expected_ppm=None, p_bar=None, ppm=None, process_z=None, u_bar=None, dpu=None) -> int:
        """Record one capability result (of one part number, short-run SPC); returns its id.

        distribution and expected_ppm are the event's objects (schema 8), kept as JSON text or NULL;
        p_bar, ppm, process_z (p charts) and u_bar, dpu (u charts) the rate of attribute data (schema 9)."""
        params = (int(product_id), str(characteristic), _f(cp), _f(cpk), _f(pp), _f(ppk), _f(cpm),
                  _f(cpk_lower), _i(n), _f(sigma_within), _f(sigma_overall), float(analyzed_at), reason, part,
                  None if distribution is None else dumps(distribution).decode(),
                  None if expected_ppm is None else dumps(expected_ppm).decode(),
                  _f(p_bar), _f(ppm), _f(process_z), _f(u_bar), _f(dpu))
        cid = self._next("capability")
        self._add("capability", (cid, *params))
        return cid

    def engine_state(self, product_id, characteristic, state: dict | str) -> None:
        """Record an engine's state (a JSON-able dict, or its JSON text); the last write per characteristic
        wins. A dict is encoded here with the one encoder of events (orjson): at one reading per commit,
        which is the usual rate of a line, the state of a chart with its capability window is about 3 KB
        of floats that the standard library's json took some 50 us to write, more than the rest of the
        reading's work. An engine's numbers are finite by construction (readings beyond +-1e100 are
        refused), so the encoder's NaN-as-null never applies to them."""
        text = state if isinstance(state, str) else dumps(state).decode()
        self._add("engine_state", (int(product_id), str(characteristic), text, time.time()))

    def event(self, type, product_id, body: dict, *, notable=True, outbox_topic=None, replayed=True) -> Event:
        """Number an event (sets body["seq"] and body["epoch"]) and record it, with its outbox row when a topic is given.

        replayed=False: no row in `events`, the replay log of the screens, for an event that no screen is
        sent live either (`notable` false: the point of n = 1 that rode in its measurement's frame, a
        violation that repeats a rule still firing). It still gets its seq, its outbox row and its place
        in the committed events the outputs are given.

        The body is encoded here, once: the stored row, the WebSocket frame, the replay and the outbox
        payload all carry these bytes (`Event.data`), so later changes to the dict change nothing sent.
        """
        if self._closed:
            raise RuntimeError("this batch was already queued; open a new one with store.batch()")
        seq = self._store._peek("seq")
        body["seq"] = seq
        body["epoch"] = self._store.epoch  # seq is unique only within one database: see store_schema _V4
        try:
            data = dumps(body)  # a body that is not JSON fails here, before the seq is taken
        except (TypeError, ValueError, RecursionError):
            del body["seq"], body["epoch"]
            raise
        self._next("seq")
        now = time.time()
        pid = None if product_id is None else int(product_id)
        type = str(type)
        notable = bool(notable)
        if replayed:
            rows = self.rows
            events = rows.get("event")
            if events is None:
                events = rows["event"] = []
            events.append((seq, type, pid, int(notable), data.decode(), now))  # orjson's bytes are UTF-8
            self.n_rows += 1
        if outbox_topic is not None:
            self._add("outbox", (seq, str(outbox_topic), data, type, len(data), now))
        event = Event(seq, type, pid, body, notable, data)
        self.events.append(event)
        return event

    def outbox_cursor(self, consumer: str, cursor: int) -> None:
        """Record an outbox consumer's new cursor (stored only if it moves forward)."""
        self._add("outbox_cursor", (str(consumer), int(cursor), time.time()))

    def outbox_hold(self, consumer: str, seq: int, kind: str) -> None:
        """Record a row the consumer still owes although its cursor is past it."""
        self._add("outbox_hold", (str(consumer), int(seq), str(kind)))

    def outbox_unhold(self, consumer: str, seq: int) -> None:
        """Record that a held row was delivered."""
        self._add("outbox_unhold", (str(consumer), int(seq)))

    def outbox_release(self, after_seq: int, upto_seq: int, kinds: list[str] | None, *,
                       holders: list[str] | None = None) -> None:
        """Record the deletion of the rows of these kinds (None: of every kind) in (after_seq, upto_seq];
        the rows these consumers hold stay (without holders the plain statements spare that check)."""
        if kinds is None and not holders:
            self._add("outbox_release_all", (int(after_seq), int(upto_seq)))
            return
        names = sorted({"alert", "violation", "capability", "measurement", "subgroup"}) if kinds is None else kinds
        params = (int(after_seq), int(upto_seq), dumps([str(k) for k in names]).decode())
        if holders:
            self._add("outbox_release_held", (*params, dumps([str(c) for c in holders]).decode()))
        else:
            self._add("outbox_release", params)

    def outbox_delete(self, seqs: list[int]) -> None:
        """Record the deletion of outbox rows the broker confirmed."""
        for seq in seqs:
            self._add("outbox_delete", (int(seq),))

    def catalog(self, products) -> None:
        """Record the products and characteristics of the configuration (upserts)."""
        now = time.time()
        for product in products:
            self._add("product", (int(product.id), str(product.code), str(product.name), now))
            for ch in product.characteristics:
                spec = getattr(ch, "spec", None)
                self._add("characteristic", (
                    int(product.id), str(ch.name), getattr(ch, "unit", None), getattr(ch, "chart", None),
                    _i(getattr(ch, "subgroup_size", None)), _f(getattr(spec, "lsl", None)),
                    _f(getattr(spec, "target", None)), _f(getattr(spec, "usl", None)), now))
