"""Alerts: raise and deduplicate, acknowledge, comment, shelve (timed, server side), resolve, with history.

Every change is recorded in a store batch as the alert row, one history row (who, when, from, to) and
one numbered `alert` event, so what a screen sees is already on disk. Unresolved alerts are kept in
memory (they are few) so that the hot path can deduplicate without reading SQLite: a rule that keeps
firing on a characteristic while its alert is unresolved increments `occurrences` on that alert.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from gateway.alerts.alert import Alert, Key
from gateway.alerts.causes import output_alert, spc_alerts, stale_alert, storage_alert
from gateway.alerts.types import alert_type as type_of
from gateway.config import Characteristic, Config, Product
from gateway.core.model import Event, finite_or_none, iso_time
from gateway.core.texts import Refusal, text, texts
from gateway.store.schema import StoreUnavailable

# The screen an operator act came through (its server.auth name, else its address); the WebSocket handler
# sets it for its connection, and every transition it causes records it as `via` beside the typed `user`.
ACTING_CLIENT: contextvars.ContextVar[str | None] = contextvars.ContextVar("acting_client", default=None)

log = logging.getLogger("gateway.alerts")

MAX_SHELVE_S = 8 * 3600.0
OCCURRENCE_EMIT_INTERVAL = 1.0  # seconds: a chattering rule sends its updated alert at most this often
UNRESOLVED = ("OPEN", "ACKNOWLEDGED", "SHELVED")

Publish = Callable[[list[Event]], None]


class AlertService:
    """The alert lifecycle of one gateway: OPEN -> ACKNOWLEDGED -> RESOLVED, SHELVED for a while."""

    def __init__(self, store: Any, config: Config, clock: Callable[[], float] = time.time):
        self.store = store
        self.config = config
        self.clock = clock
        self.publish: Publish | None = None
        # the outbox topic of an alert event (None: no outbox row); given by the app, which knows every
        # output that reads the outbox (the JSON northbound's publish list is not the only reader)
        self.topic_for: Callable[[str, str, str | None], str | None] | None = None
        self._unresolved: dict[int, Alert] = {}
        self._by_key: dict[Key, Alert] = {}
        # One act at a time: an act is checked against the state the previous one left, which is in
        # memory only once that one is stored (a refused act never touches the alert).
        self._acting = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._flusher: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self, publish: Publish | None = None,
                    topic_for: Callable[[str, str, str | None], str | None] | None = None) -> None:
        """Load the unresolved alerts, re-arm shelve timers, start the occurrence flusher."""
        self.publish = publish
        self.topic_for = topic_for
        for body in await self.store.unresolved_alerts():
            alert = Alert(body)
            self._remember(alert, self._key_of(body))
            if alert.status == "SHELVED":
                # only acknowledge sets acknowledged_by, so it tells which state the shelve returns to
                alert.shelved_from = "ACKNOWLEDGED" if body.get("acknowledged_by") else "OPEN"
                self._arm(alert, _epoch(body.get("shelved_until")))
        self._flusher = asyncio.create_task(self._flush_loop(), name="alert-occurrences")

    async def stop(self) -> None:
        """Store pending occurrence counts; cancel timers (shelves are re-armed at the next start)."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(BaseException):
                await self._flusher
            self._flusher = None
        self._flush()
        for alert in self._unresolved.values():
            alert.cancel_timer()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    # ------------------------------------------------------------------ raising (hot path, synchronous)

    def raise_alert(self, batch: Any, *, product: Product | None, characteristic: Characteristic | str | None,
                    alert_type: str, priority: int, title: str = "", message: str = "", rule: int | None = None,
                    value: float | None = None, limit: float | None = None, chart: str | None = None,
                    words: Callable[[], dict[str, Any]] | None = None) -> dict[str, Any]:
        """Raise an alert in `batch`, or count one more occurrence of the unresolved one with the same key.

        `words()` (AlertType.fields) gives `title`, `message` in `gateway.language` and `texts` ({language:
        {title, message}}), which lets a screen in the other language show the alert in its own. It is
        called for a new alert only; a repeat is counted, not reworded."""
        name = characteristic.name if isinstance(characteristic, Characteristic) else characteristic
        key: Key = (product.id if product else None, name, alert_type, rule)
        now = self.clock()
        alert = self._by_key.get(key)
        if alert is not None:
            body = alert.body
            body["occurrences"] = int(body.get("occurrences") or 1) + 1
            if value is not None:
                body["value"] = finite_or_none(value)
            if limit is not None:
                body["limit"] = finite_or_none(limit)
            if chart is not None:  # the latest value's chart (location or dispersion), shown beside it
                body["chart"] = chart
            if now - alert.last_emit >= OCCURRENCE_EMIT_INTERVAL:
                self._emit(batch, alert, now)
                alert.dirty = False
            else:
                alert.dirty = True
            return body
        wording = words() if words is not None else {"title": title, "message": message}
        alert = Alert.new(product, name, alert_type, priority, wording["title"], wording["message"], self._iso(now))
        body = alert.body
        if "texts" in wording:
            body["texts"] = wording["texts"]
        for field, x in (("rule", rule), ("value", finite_or_none(value)), ("limit", finite_or_none(limit)), ("chart", chart)):
            if x is not None:
                body[field] = x
        batch.alert(body)
        batch.alert_transition(alert_id=alert.id, at=now, who="gateway", action="raise", from_status=None,
                               to_status="OPEN", details={"rule": rule, "value": body.get("value"),
                                                          "limit": body.get("limit")})
        self._remember(alert, key)
        self._emit(batch, alert, now, record=False)
        return body

    def on_ingest(self, batch: Any, product: Product, characteristic: Characteristic, result: Any,
                  value: float) -> None:
        """Raise the alerts one SPC result calls for (alerts.causes.spc_alerts)."""
        for fields in spc_alerts(characteristic, result, value, self.config.gateway.language):
            self.raise_alert(batch, product=product, characteristic=characteristic, **fields)

    def source_stale(self, batch: Any, product: Product, characteristic: Characteristic, age: float) -> None:
        """No good value for too long: a SOURCE_STALE alert for the characteristic."""
        self.raise_alert(batch, product=product, characteristic=characteristic,
                         **stale_alert(characteristic, age, self.config.gateway.language))

    def source_fresh(self, batch: Any, product: Product, characteristic: Characteristic) -> None:
        """Values arrive again: the gateway resolves its own SOURCE_STALE alert."""
        alert = self._by_key.get((product.id, characteristic.name, "SOURCE_STALE", None))
        if alert is not None:
            cause = text(self.config.gateway.language, "alert.SOURCE_STALE.fresh")
            changes, drop = self._record_resolve(batch, alert, "gateway", cause, None)
            self._resolved(alert, changes, drop)

    def storage_problem(self, batch: Any, kind: str, **values: Any) -> None:
        """Storage or outbox trouble: a STORAGE alert, one per kind while open. `kind` is store_failing,
        store_lost, outbox_high or outbox_dropped; `values` fill its text (alert.STORAGE.<kind>)."""
        self.raise_alert(batch, product=None, characteristic=kind,
                         **storage_alert(kind, self.config.gateway.language, **values))

    def output_failed(self, batch: Any, output: str, **values: Any) -> None:
        """An andon or interlock output that keeps failing: OUTPUT_FAILED, one per output while open."""
        self.raise_alert(batch, product=None, characteristic=output,
                         **output_alert(output, self.config.gateway.language, **values))

    def output_written(self, batch: Any, output: str) -> bool:
        """The output is written again: the gateway resolves its OUTPUT_FAILED alert (False: none open)."""
        alert = self._by_key.get((None, output, "OUTPUT_FAILED", None))
        if alert is None:
            return False
        cause = text(self.config.gateway.language, "alert.OUTPUT_FAILED.written")
        changes, drop = self._record_resolve(batch, alert, "gateway", cause, None)
        self._resolved(alert, changes, drop)
        return True

    # ------------------------------------------------------------------ operator acts
    #
    # Each act builds the alert's new state on a copy, stores it in a refusable batch, and applies it to
    # the alert only once that batch is committed: an act the store refuses (disk full, file lost) has
    # changed nothing, in memory or on disk.

    async def acknowledge(self, alert_id: int, user: str, comment: str | None = None) -> dict[str, Any]:
        """OPEN -> ACKNOWLEDGED (a SHELVED one returns to ACKNOWLEDGED when its shelve ends)."""
        self.refuse_if_unwritable()
        async with self._acting:
            alert = await self._unresolved_or_fail(alert_id, "acknowledged")
            shelved = alert.status == "SHELVED"
            if (alert.shelved_from if shelved else alert.status) != "OPEN":
                raise self._state_error(alert.body, "acknowledged")
            now = self.clock()
            changes: dict[str, Any] = {"acknowledged_by": user, "acknowledged_at": self._iso(now)}
            if comment:
                changes["comment"] = comment
            changes["status"] = alert.status if shelved else "ACKNOWLEDGED"
            await self._act(alert, now, user, "acknowledge", changes, comment=comment)
            if shelved:
                alert.shelved_from = "ACKNOWLEDGED"
            return alert.message()

    async def comment(self, alert_id: int, user: str, comment: str) -> dict[str, Any]:
        """Add a comment (any state, resolved ones included); the status does not change."""
        self.refuse_if_unwritable()
        async with self._acting:
            alert = self._unresolved.get(alert_id)
            if alert is None:
                stored = await self.store.alert(alert_id)
                if stored is None:
                    raise self._error("not_found", "error.no_alert", alert_id=alert_id)
                alert = Alert(stored)  # a resolved one: nothing of it is kept in memory
            await self._act(alert, self.clock(), user, "comment", {"comment": comment}, comment=comment)
            return alert.message()

    async def shelve(self, alert_id: int, user: str, duration_s: float, reason: str) -> dict[str, Any]:
        """Hide an alert for `duration_s` (at most 8 h); it then returns to the state it had."""
        if not (isinstance(duration_s, int | float) and 0 < duration_s <= MAX_SHELVE_S):
            raise self._error("invalid_field", "error.wrong", field="duration_s",
                              expected=texts("expect.number", lo="0", hi=f"{MAX_SHELVE_S:g}"))
        self.refuse_if_unwritable()
        async with self._acting:
            alert = await self._unresolved_or_fail(alert_id, "shelved")
            now = self.clock()
            from_status = alert.status
            returns_to = alert.shelved_from if from_status == "SHELVED" else from_status
            until = now + float(duration_s)
            changes = {"status": "SHELVED", "shelved_until": self._iso(until), "shelved_by": user,
                       "shelve_reason": reason}
            await self._act(alert, now, user, "shelve", changes, comment=reason,
                             details={"duration_s": duration_s, "returns_to": returns_to})
            alert.shelved_from = returns_to
            self._arm(alert, until)
            return alert.message()

    async def unshelve(self, alert_id: int, user: str = "gateway") -> dict[str, Any]:
        """End a shelve now: the alert returns to the state it had before."""
        self.refuse_if_unwritable()
        async with self._acting:
            alert = await self._unresolved_or_fail(alert_id, "unshelved")
            if alert.status != "SHELVED":
                raise self._state_error(alert.body, "unshelved")
            await self._act(alert, self.clock(), user, "unshelve", {"status": alert.shelved_from or "OPEN"},
                             drop=("shelved_until",))
            self._end_shelve(alert)
            return alert.message()

    async def resolve(self, alert_id: int, user: str, cause: str, action: str | None = None) -> dict[str, Any]:
        """Close an alert with its cause and the corrective action taken."""
        self.refuse_if_unwritable()
        async with self._acting:
            alert = await self._unresolved_or_fail(alert_id, "resolved")
            batch = self.store.batch(on_commit=self._published, refusable=True)
            with batch:
                changes, drop = self._record_resolve(batch, alert, user, cause, action)
            await self._stored(batch)
            self._resolved(alert, changes, drop)
            return alert.message()

    async def create(self, product_id: int, alert_type: str, priority: int, title: str, message: str, *,
                     user: str | None = None, characteristic: str | None = None) -> dict[str, Any]:
        """An alert from a person or another system: the seed's POST /api/spc/alerts/ body."""
        product = next((p for p in self.config.products if p.id == product_id), None)
        if product is None:
            raise self._error("not_found", "error.no_product", product_id=product_id)
        if not (isinstance(priority, int) and 1 <= priority <= 5):
            raise self._error("invalid_field", "error.wrong", field="priority",
                              expected=texts("expect.int", lo="1", hi="5"))
        self.refuse_if_unwritable()
        now = self.clock()
        alert = Alert.new(product, characteristic, alert_type, priority, title, message, self._iso(now))
        batch = self.store.batch(on_commit=self._published, refusable=True)
        with batch:
            batch.alert(alert.body)
            via = ACTING_CLIENT.get()  # the screen, token or address it came through, as for every transition
            batch.alert_transition(alert_id=alert.id, at=now, who=user or "unknown", action="create",
                                   from_status=None, to_status="OPEN",
                                   details={"via": via} if via is not None else None)
            self._emit(batch, alert, now, record=False)
        await self._stored(batch)
        self._remember(alert, None)
        return alert.message()

    def unresolved(self) -> list[dict[str, Any]]:
        """The alerts not yet resolved, newest first (a copy)."""
        return [a.message() for a in sorted(self._unresolved.values(), key=lambda a: a.id, reverse=True)]

    def stats(self) -> dict[tuple[str, str], int]:
        """Unresolved alerts by (state, type), for /metrics."""
        counts: dict[tuple[str, str], int] = {}
        for alert in self._unresolved.values():
            key = (alert.status, alert.body["alert_type"])
            counts[key] = counts.get(key, 0) + 1
        return counts

    # ------------------------------------------------------------------ internals

    def _remember(self, alert: Alert, key: Key | None) -> None:
        self._unresolved[alert.id] = alert
        alert.key = key
        if key is not None:
            self._by_key[key] = alert

    def _forget(self, alert: Alert) -> None:
        if self._unresolved.get(alert.id) is alert:
            del self._unresolved[alert.id]
        if alert.key is not None and self._by_key.get(alert.key) is alert:
            del self._by_key[alert.key]
        alert.shelved_from = None
        alert.dirty = False
        alert.cancel_timer()

    def _key_of(self, body: dict[str, Any]) -> Key | None:
        kind = type_of(body["alert_type"])
        if (kind is not None and not kind.counts_repeats) or body.get("characteristic") is None:
            return None
        return (body.get("product_id"), body.get("characteristic"), body["alert_type"], body.get("rule"))

    def _emit(self, batch: Any, alert: Alert, now: float, *, record: bool = True,
              body: dict[str, Any] | None = None) -> None:
        """Record the alert row (unless just inserted) and its numbered `alert` event; `body` is the state
        an act is about to store, when it differs from the alert's own until then."""
        message = dict(body) if body is not None else alert.message()
        if record:
            batch.alert(message)
        alert.last_emit = now
        batch.event("alert", message.get("product_id"),
                    {"type": "alert", "alert": message, "timestamp": self._iso(now)}, outbox_topic=self._topic(message))

    def _topic(self, alert: dict[str, Any]) -> str | None:
        if self.topic_for is None:
            return None
        return self.topic_for("alert", alert.get("product_code") or self.config.gateway.name,
                              alert.get("characteristic"))

    def _record(self, batch: Any, alert: Alert, now: float, who: str, action: str, body: dict[str, Any],
                comment: str | None = None, details: dict[str, Any] | None = None) -> None:
        """One transition into `batch`: its history row, the alert row and its event, as `body`."""
        via = ACTING_CLIENT.get()
        if via is not None:
            details = {**(details or {}), "via": via}
        batch.alert_transition(alert_id=alert.id, at=now, who=who, action=action, from_status=alert.status,
                               to_status=body["status"], comment=comment, details=details)
        self._emit(batch, alert, now, body=body)

    async def _act(self, alert: Alert, now: float, who: str, action: str, changes: dict[str, Any], *,
                   drop: tuple[str, ...] = (), comment: str | None = None,
                   details: dict[str, Any] | None = None) -> None:
        """Store an operator's act in a refusable batch, then apply it: refused, it changed nothing."""
        batch = self.store.batch(on_commit=self._published, refusable=True)
        with batch:
            self._record(batch, alert, now, who, action, alert.changed(changes, drop), comment, details)
        await self._stored(batch)
        alert.apply(changes, drop)

    # ------------------------------------------------------------------ refusing acts the disk cannot keep

    def refuse_if_unwritable(self) -> None:
        """Refuse an operator's act at once while the database cannot be written: it would otherwise wait
        in memory, unanswered, and take effect after recovery, when its sender has retried (duplicates)."""
        if getattr(self.store, "failing", False):
            raise self._unavailable()

    def _unavailable(self) -> Refusal:
        return self._error("storage_unavailable", "error.storage_unavailable")

    async def _stored(self, batch: Any) -> None:
        """Wait for a refusable batch; when the writer refused it, refuse the act: it never reached the
        disk, screens or plant, and never will (and the alert was not touched)."""
        try:
            await batch.committed
        except StoreUnavailable:
            raise self._unavailable() from None

    def _record_resolve(self, batch: Any, alert: Alert, who: str, cause: str,
                        action: str | None) -> tuple[dict[str, Any], tuple[str, ...]]:
        """Record a resolve in `batch`; returns the changes for `_resolved` to apply."""
        now = self.clock()
        changes: dict[str, Any] = {"status": "RESOLVED", "resolved_by": who, "resolved_at": self._iso(now),
                                   "cause": cause}
        if action:
            changes["action"] = action
        drop = ("shelved_until",)
        batch.alert_transition(alert_id=alert.id, at=now, who=who, action="resolve", from_status=alert.status,
                               to_status="RESOLVED", comment=cause, details={"action": action})
        self._emit(batch, alert, now, body=alert.changed(changes, drop))
        return changes, drop

    def _resolved(self, alert: Alert, changes: dict[str, Any], drop: tuple[str, ...]) -> None:
        alert.apply(changes, drop)
        self._forget(alert)

    def _end_shelve(self, alert: Alert) -> None:
        alert.cancel_timer()
        alert.shelved_from = None

    def _arm(self, alert: Alert, until: float | None) -> None:
        alert.cancel_timer()
        delay = max(0.0, (until if until is not None else 0.0) - self.clock())
        alert.timer = asyncio.get_running_loop().call_later(delay, self._shelve_due, alert)

    def _shelve_due(self, alert: Alert) -> None:
        alert.timer = None
        task = asyncio.get_running_loop().create_task(self._shelve_expired(alert))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _shelve_expired(self, alert: Alert) -> None:
        """The gateway ends a shelve: after any act under way, and only if it is still shelved."""
        async with self._acting:
            if self._unresolved.get(alert.id) is not alert or alert.status != "SHELVED" or alert.timer is not None:
                return  # resolved, unshelved or shelved anew meanwhile
            changes = {"status": alert.shelved_from or "OPEN"}
            drop = ("shelved_until",)
            now = self.clock()
            with self.store.batch(on_commit=self._published) as batch:
                self._record(batch, alert, now, "gateway", "shelve_expired", alert.changed(changes, drop))
            # the gateway's own act is not refusable: it holds from now on and waits for the disk, outside
            # the lock, so that operators' acts meanwhile are answered (refused while the disk is full)
            alert.apply(changes, drop)
            self._end_shelve(alert)
        await batch.committed

    async def _unresolved_or_fail(self, alert_id: int, action: str) -> Alert:
        alert = self._unresolved.get(alert_id)
        if alert is not None:
            return alert
        stored = await self.store.alert(alert_id)
        if stored is None:
            raise self._error("not_found", "error.no_alert", alert_id=alert_id)
        raise self._state_error(stored, action)

    def _state_error(self, alert: dict[str, Any], action: str) -> Refusal:
        return self._error("invalid_field", "error.state", alert_id=alert["id"],
                           status=texts(f"status.{alert['status']}"), action=texts(f"action.{action}"))

    def _error(self, code: str, key: str, **values: Any) -> Refusal:
        """A refusal worded in every language (text `key` filled with `values`)."""
        return Refusal(code, texts(key, **values))

    def _published(self, events: list[Event]) -> None:
        if self.publish is not None and events:
            self.publish(events)

    def _flush(self) -> None:
        dirty = [a for a in self._unresolved.values() if a.dirty]
        if not dirty:
            return
        now = self.clock()
        with self.store.batch(on_commit=self._published) as batch:
            for alert in dirty:
                alert.dirty = False
                self._emit(batch, alert, now)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(OCCURRENCE_EMIT_INTERVAL)
            try:
                self._flush()
            except Exception:
                log.exception("storing alert occurrences failed")

    def _iso(self, ts: float) -> str:
        return iso_time(ts, ZoneInfo(self.config.gateway.timezone))


def _epoch(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        return dt.datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return None
