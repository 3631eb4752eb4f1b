"""The outbox's consumers: one cursor per output, and which rows every consumer is done with.

An output (the MQTT northbound today; Sparkplug and the OPC UA server later) registers once at start with
the kinds of event it takes and gets an `OutboxConsumer`. Its cursor means: every row of its kinds with
seq <= cursor is delivered, except the rows it holds (a broker refused them; they go again later). Cursors and held rows are stored (tables outbox_cursors and outbox_held, schema version 5),
so each consumer resumes where it stopped after a restart.

A row is deleted once every registered consumer that takes its kind is past it and none holds it; a
consumer that does not take a kind holds none of its rows back (a kind no consumer takes, left from an
earlier configuration, goes once every consumer is past it). The work per event does not grow with the number
of consumers: an advance writes one cursor row and deletes a range of rows per kind
(`seq > released AND seq <= bound AND kind IN (...)`, one statement for the kinds released up to the
same point), and `released` remembers how far each kind was deleted, so a range is walked once whatever
a slow consumer of another kind still holds.

Every consumer registers before any of them starts: a consumer stored by an earlier run but not
registered in this one (an output removed from the configuration) holds no row back.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.core.model import EVENT_TYPES
from gateway.store.batch import Batch
from gateway.store.reads import OutboxRow

# The kinds of event the outbox may hold (Event.type); a consumer's kinds may add others.
EVENT_KINDS = EVENT_TYPES


@dataclass(slots=True)
class _State:
    kinds: frozenset[str] | None  # None: every kind
    cursor: int
    held: dict[int, str] = field(default_factory=dict)  # seq -> kind

    def takes(self, kind: str) -> bool:
        return self.kinds is None or kind in self.kinds


class Consumers:
    """The registered consumers of one store, kept on the event loop (the rows it records are the truth
    once committed)."""

    def __init__(self) -> None:
        self.states: dict[str, _State] = {}
        self._released: dict[str, int] = {}  # kind -> rows of that kind up to here are deleted (this run)

    def register(self, name: str, kinds: frozenset[str] | None, cursor: int, held: dict[int, str]) -> _State:
        if name in self.states:
            raise ValueError(f"outbox consumer {name!r} is registered twice")
        state = self.states[name] = _State(kinds, cursor, held)
        return state

    def bound(self, kind: str) -> int:
        """Rows of this kind up to here are delivered to every consumer that takes it."""
        cursors = [s.cursor for s in self.states.values() if s.takes(kind)]
        if not cursors:  # a kind no consumer takes goes with the slowest, so it shares the others' walk
            cursors = [s.cursor for s in self.states.values()]
        return min(cursors, default=0)

    def _held_elsewhere(self, name: str, seq: int) -> bool:
        return any(seq in s.held for n, s in self.states.items() if n != name)

    def advance(self, batch: Batch, name: str, cursor: int, hold: Iterable[tuple[int, str]],
                done: Iterable[int]) -> None:
        """Record in batch: the consumer's new cursor, rows it now holds, held rows it delivered, and the
        deletion of every row no consumer needs any more."""
        state = self.states[name]
        for seq, kind in hold:
            if seq not in state.held:
                state.held[seq] = kind
                batch.outbox_hold(name, seq, kind)
        if cursor > state.cursor:
            state.cursor = cursor
            batch.outbox_cursor(name, cursor)
        for seq in done:
            held_kind = state.held.pop(seq, None)
            if held_kind is None:
                continue
            batch.outbox_unhold(name, seq)
            if seq <= self.bound(held_kind) and not self._held_elsewhere(name, seq):
                batch.outbox_delete([seq])
        kinds = set(EVENT_KINDS)
        for s in self.states.values():
            kinds.update(s.kinds or ())
        ranges: dict[tuple[int, int], list[str]] = {}  # kinds released over the same range: one walk
        for kind in sorted(kinds):
            high = self.bound(kind)
            low = self._released.get(kind, 0)
            if high > low:
                ranges.setdefault((low, high), []).append(kind)
                self._released[kind] = high
        # only registered consumers hold rows back (one stored by an earlier run may be gone for good)
        holders = sorted(n for n, s in self.states.items() if s.held)
        for (low, high), same in ranges.items():
            # every kind up to the same point (no consumer takes a kind the others do not): no kind check
            every = len(same) == len(kinds) and kinds == set(EVENT_KINDS)
            batch.outbox_release(low, high, None if every else same, holders=holders)


class ConsumerStore(Protocol):
    """What a consumer needs of the Store that made it (gateway.store.store.Store is the one), written out
    so that this module need not import the store module, which imports this one."""

    _consumers: Consumers

    async def outbox_fetch(self, after_seq: int, limit: int,
                           kinds: frozenset[str] | None = None) -> list[OutboxRow]: ...

    async def _read(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any: ...

    def batch(self, on_commit: Callable[..., Any] | None = None, *, refusable: bool = False) -> Batch: ...


class OutboxConsumer:
    """One output's view of the outbox: its rows in seq order, its held rows, and `advance`."""

    def __init__(self, store: ConsumerStore, name: str, state: _State):
        self.store = store
        self.name = name
        self._state = state

    @property
    def kinds(self) -> frozenset[str] | None:
        return self._state.kinds

    @property
    def cursor(self) -> int:
        """Every row of this consumer's kinds up to here is delivered (or held)."""
        return self._state.cursor

    @property
    def held(self) -> dict[int, str]:
        """Rows delivered to no one yet although the cursor is past them: seq -> kind."""
        return dict(self._state.held)

    async def fetch(self, after_seq: int, limit: int) -> list[OutboxRow]:
        """This consumer's rows after after_seq, in seq order."""
        kinds = self._state.kinds
        if kinds is not None and kinds.issuperset(EVENT_KINDS):
            kinds = None  # every kind there is: no check per row
        return await self.store.outbox_fetch(after_seq, limit, kinds=kinds)

    async def fetch_held(self, seqs: Iterable[int] | None = None) -> list[OutboxRow]:
        """The held rows (or these seqs: what the consumer holds but has not advanced yet) still in the
        outbox, in seq order; buffer_limit may have dropped some."""
        return await self.store._read(fetch_seqs, sorted(self._state.held if seqs is None else seqs))

    def advance(self, cursor: int, *, hold: Iterable[tuple[int, str]] = (),
                done: Iterable[int] = ()) -> asyncio.Future[Any]:
        """Store the new cursor (it never goes back), rows now held, held rows delivered; rows no consumer
        needs any more are deleted in the same transaction. Returns the batch's `committed` future."""
        with self.store.batch() as batch:
            self.store._consumers.advance(batch, self.name, int(cursor), hold, done)
        return batch.committed


# -- reads (reader thread) ------------------------------------------------------------------------
def load(conn: sqlite3.Connection, name: str) -> tuple[int, dict[int, str]]:
    """A consumer's stored cursor (0 when new) and held rows."""
    row = conn.execute("SELECT cursor FROM outbox_cursors WHERE consumer = ?", (name,)).fetchone()
    held = {s: k for s, k in conn.execute("SELECT seq, kind FROM outbox_held WHERE consumer = ?", (name,))}
    return (int(row[0]) if row else 0), held


def fetch_seqs(conn: sqlite3.Connection, seqs: list[int]) -> list[OutboxRow]:
    """The outbox rows of these seqs that are still there, in seq order."""
    rows: list[OutboxRow] = []
    for start in range(0, len(seqs), 500):  # bound the number of SQL variables
        part = seqs[start:start + 500]
        rows += [OutboxRow(s, t, bytes(p), k) for s, t, p, k in conn.execute(
            f"SELECT seq, topic, payload, kind FROM outbox WHERE seq IN ({','.join('?' * len(part))}) "
            "ORDER BY seq", part)]
    return rows
