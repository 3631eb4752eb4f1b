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

from gateway.alerts.causes import spc_alerts, stale_alert, storage_alert
from gateway.config import Characteristic, Config, Product
from gateway.core.model import Event, finite_or_none, iso_time
from gateway.core.texts import text, texts
from gateway.store.schema import StoreUnavailable

# The screen an operator act came through (its server.auth name, else its address); the WebSocket handler
# sets it for its connection, and every transition it causes records it as `via` beside the typed `user`.
ACTING_CLIENT: contextvars.ContextVar[str | None] = contextvars.ContextVar("acting_client", default=None)

log = logging.getLogger("gateway.alerts")

MAX_SHELVE_S = 8 * 3600.0
OCCURRENCE_EMIT_INTERVAL = 1.0  # seconds: a chattering rule sends its updated alert at most this often
UNRESOLVED = ("OPEN", "ACKNOWLEDGED", "SHELVED")

Key = tuple[int | None, str | None, str, int | None]  # product, characteristic, alert_type, rule
Publish = Callable[[list[Event]], None]
Saved = tuple[dict[str, Any], bool, "Key | None", "str | None"]  # an alert as it was before an operator's act


class AlertError(Exception):
    """An operator act that cannot be done; `code` is a protocol error code (not_found, invalid_field).
    `texts` has the message in every language ({language: text}) for the error reply."""

    def __init__(self, code: str, message: str, texts: dict[str, str] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.texts = texts or {}


class AlertService:
    """The alert lifecycle of one gateway: OPEN -> ACKNOWLEDGED -> RESOLVED, SHELVED for a while."""

    def __init__(self, store: Any, config: Config, clock: Callable[[], float] = time.time):
        self.store = store
        self.config = config
        self.clock = clock
        self.publish: Publish | None = None
        self._unresolved: dict[int, dict[str, Any]] = {}
        self._by_key: dict[Key, int] = {}
        self._keys: dict[int, Key] = {}
        self._shelved_from: dict[int, str] = {}
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._last_emit: dict[int, float] = {}
        self._dirty: set[int] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._flusher: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self, publish: Publish | None = None) -> None:
        """Load the unresolved alerts, re-arm shelve timers, start the occurrence flusher."""
        self.publish = publish
        for alert in await self.store.unresolved_alerts():
            self._remember(alert, self._key_of(alert))
            if alert["status"] == "SHELVED":
                # only acknowledge sets acknowledged_by, so it tells which state the shelve returns to
                self._shelved_from[alert["id"]] = "ACKNOWLEDGED" if alert.get("acknowledged_by") else "OPEN"
                self._arm(alert["id"], _epoch(alert.get("shelved_until")))
        self._flusher = asyncio.create_task(self._flush_loop(), name="alert-occurrences")

    async def stop(self) -> None:
        """Store pending occurrence counts; cancel timers (shelves are re-armed at the next start)."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(BaseException):
                await self._flusher
            self._flusher = None
        self._flush()
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    # ------------------------------------------------------------------ raising (hot path, synchronous)

    def raise_alert(self, batch: Any, *, product: Product | None, characteristic: Characteristic | str | None,
                    alert_type: str, priority: int, title: str = "", message: str = "", rule: int | None = None,
                    value: float | None = None, limit: float | None = None, chart: str | None = None,
                    words: Callable[[], dict[str, Any]] | None = None) -> dict[str, Any]:
        """Raise an alert in `batch`, or count one more occurrence of the unresolved one with the same key.

        `words()` (alert_causes) gives `title`, `message` in `gateway.language` and `texts` ({language:
        {title, message}}), which lets a screen in the other language show the alert in its own. It is
        called for a new alert only; a repeat is counted, not reworded."""
        name = characteristic.name if isinstance(characteristic, Characteristic) else characteristic
        key: Key = (product.id if product else None, name, alert_type, rule)
        now = self.clock()
        existing = self._by_key.get(key)
        if existing is not None:
            alert = self._unresolved[existing]
            alert["occurrences"] = int(alert.get("occurrences") or 1) + 1
            if value is not None:
                alert["value"] = finite_or_none(value)
            if limit is not None:
                alert["limit"] = finite_or_none(limit)
            if chart is not None:  # the latest value's chart (location or dispersion), shown beside it
                alert["chart"] = chart
            if now - self._last_emit.get(existing, 0.0) >= OCCURRENCE_EMIT_INTERVAL:
                self._emit(batch, alert, now)
                self._dirty.discard(existing)
            else:
                self._dirty.add(existing)
            return alert
        wording = words() if words is not None else {"title": title, "message": message}
        alert = self._new_alert(product, name, alert_type, priority, wording["title"], wording["message"], now)
        if "texts" in wording:
            alert["texts"] = wording["texts"]
        for field, x in (("rule", rule), ("value", finite_or_none(value)), ("limit", finite_or_none(limit)), ("chart", chart)):
            if x is not None:
                alert[field] = x
        batch.alert(alert)
        batch.alert_transition(alert_id=alert["id"], at=now, who="gateway", action="raise", from_status=None,
                               to_status="OPEN", details={"rule": rule, "value": alert.get("value"),
                                                          "limit": alert.get("limit")})
        self._remember(alert, key)
        self._emit(batch, alert, now, record=False)
        return alert

    def on_ingest(self, batch: Any, product: Product, characteristic: Characteristic, result: Any,
                  value: float) -> None:
        """Raise the alerts one SPC result calls for (alert_causes.spc_alerts)."""
        for fields in spc_alerts(characteristic, result, value, self.config.gateway.language):
            self.raise_alert(batch, product=product, characteristic=characteristic, **fields)

    def source_stale(self, batch: Any, product: Product, characteristic: Characteristic, age: float) -> None:
        """No good value for too long: a SOURCE_STALE alert for the characteristic."""
        self.raise_alert(batch, product=product, characteristic=characteristic,
                         **stale_alert(characteristic, age, self.config.gateway.language))

    def source_fresh(self, batch: Any, product: Product, characteristic: Characteristic) -> None:
        """Values arrive again: the gateway resolves its own SOURCE_STALE alert."""
        alert_id = self._by_key.get((product.id, characteristic.name, "SOURCE_STALE", None))
        if alert_id is not None:
            cause = text(self.config.gateway.language, "alert.SOURCE_STALE.fresh")
            self._resolve_now(batch, self._unresolved[alert_id], "gateway", cause, None)

    def storage_problem(self, batch: Any, kind: str, **values: Any) -> None:
        """Storage or outbox trouble: a STORAGE alert, one per kind while open. `kind` is store_failing,
        store_lost, outbox_high or outbox_dropped; `values` fill its text (alert.STORAGE.<kind>)."""
        self.raise_alert(batch, product=None, characteristic=kind,
                         **storage_alert(kind, self.config.gateway.language, **values))

    # ------------------------------------------------------------------ operator acts

    async def acknowledge(self, alert_id: int, user: str, comment: str | None = None) -> dict[str, Any]:
        """OPEN -> ACKNOWLEDGED (a SHELVED one returns to ACKNOWLEDGED when its shelve ends)."""
        self.refuse_if_unwritable()
        alert = await self._unresolved_or_fail(alert_id, "acknowledged")
        shelved = alert["status"] == "SHELVED"
        if (self._shelved_from.get(alert_id) if shelved else alert["status"]) != "OPEN":
            raise self._state_error(alert, "acknowledged")
        saved = self._save(alert)
        now = self.clock()
        alert.update(acknowledged_by=user, acknowledged_at=self._iso(now))
        if comment:
            alert["comment"] = comment
        if shelved:
            self._shelved_from[alert_id] = "ACKNOWLEDGED"
        return await self._commit(alert, now, user, "acknowledge", alert["status"] if shelved else "ACKNOWLEDGED",
                                  comment, saved=saved)

    async def comment(self, alert_id: int, user: str, comment: str) -> dict[str, Any]:
        """Add a comment (any state, resolved ones included); the status does not change."""
        self.refuse_if_unwritable()
        alert = self._unresolved.get(alert_id) or await self.store.alert(alert_id)
        if alert is None:
            raise self._error("not_found", "error.no_alert", alert_id=alert_id)
        saved = self._save(alert)
        alert["comment"] = comment
        return await self._commit(alert, self.clock(), user, "comment", alert["status"], comment, saved=saved)

    async def shelve(self, alert_id: int, user: str, duration_s: float, reason: str) -> dict[str, Any]:
        """Hide an alert for `duration_s` (at most 8 h); it then returns to the state it had."""
        if not (isinstance(duration_s, int | float) and 0 < duration_s <= MAX_SHELVE_S):
            raise self._error("invalid_field", "error.wrong", field="duration_s",
                              expected=texts("expect.number", lo="0", hi=f"{MAX_SHELVE_S:g}"))
        self.refuse_if_unwritable()
        alert = await self._unresolved_or_fail(alert_id, "shelved")
        saved = self._save(alert)
        now = self.clock()
        from_status = alert["status"]
        if from_status != "SHELVED":
            self._shelved_from[alert_id] = from_status
        until = now + float(duration_s)
        alert.update(status="SHELVED", shelved_until=self._iso(until), shelved_by=user, shelve_reason=reason)
        self._arm(alert_id, until)
        return await self._commit(alert, now, user, "shelve", "SHELVED", reason,
                                  details={"duration_s": duration_s, "returns_to": self._shelved_from[alert_id]},
                                  from_status=from_status, saved=saved)

    async def unshelve(self, alert_id: int, user: str = "gateway") -> dict[str, Any]:
        """End a shelve now: the alert returns to the state it had before."""
        self.refuse_if_unwritable()
        alert = await self._unresolved_or_fail(alert_id, "unshelved")
        if alert["status"] != "SHELVED":
            raise self._state_error(alert, "unshelved")
        saved = self._save(alert)
        return await self._commit(alert, self.clock(), user, "unshelve", self._end_shelve(alert), None, saved=saved)

    async def resolve(self, alert_id: int, user: str, cause: str, action: str | None = None) -> dict[str, Any]:
        """Close an alert with its cause and the corrective action taken."""
        self.refuse_if_unwritable()
        alert = await self._unresolved_or_fail(alert_id, "resolved")
        saved = self._save(alert)
        batch = self.store.batch(on_commit=self._published, refusable=True)
        with batch:
            self._resolve_now(batch, alert, user, cause, action)
        await self._stored(batch, alert, saved)
        return alert

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
        alert = self._new_alert(product, characteristic, alert_type, priority, title, message, now)
        batch = self.store.batch(on_commit=self._published, refusable=True)
        with batch:
            batch.alert(alert)
            via = ACTING_CLIENT.get()  # the screen, token or address it came through, as for every transition
            batch.alert_transition(alert_id=alert["id"], at=now, who=user or "unknown", action="create",
                                   from_status=None, to_status="OPEN",
                                   details={"via": via} if via is not None else None)
            self._remember(alert, None)
            self._emit(batch, alert, now, record=False)
        await self._stored(batch, alert, None)
        return alert

    def unresolved(self) -> list[dict[str, Any]]:
        """The alerts not yet resolved, newest first (a copy)."""
        return [dict(a) for a in sorted(self._unresolved.values(), key=lambda a: a["id"], reverse=True)]

    def stats(self) -> dict[tuple[str, str], int]:
        """Unresolved alerts by (state, type), for /metrics."""
        counts: dict[tuple[str, str], int] = {}
        for alert in self._unresolved.values():
            key = (alert["status"], alert["alert_type"])
            counts[key] = counts.get(key, 0) + 1
        return counts

    # ------------------------------------------------------------------ internals

    def _new_alert(self, product: Product | None, characteristic: str | None, alert_type: str, priority: int,
                   title: str, message: str, now: float) -> dict[str, Any]:
        return {
            "id": None, "product_id": product.id if product else None,
            "product_code": product.code if product else None, "product_name": product.name if product else None,
            "characteristic": characteristic, "alert_type": alert_type, "priority": int(priority),
            "title": title, "message": message, "status": "OPEN", "created_at": self._iso(now), "occurrences": 1,
        }

    def _remember(self, alert: dict[str, Any], key: Key | None) -> None:
        self._unresolved[alert["id"]] = alert
        if key is not None:
            self._by_key[key] = alert["id"]
            self._keys[alert["id"]] = key

    def _forget(self, alert_id: int) -> None:
        self._unresolved.pop(alert_id, None)
        key = self._keys.pop(alert_id, None)
        if key is not None and self._by_key.get(key) == alert_id:
            del self._by_key[key]
        self._shelved_from.pop(alert_id, None)
        self._last_emit.pop(alert_id, None)
        self._dirty.discard(alert_id)
        handle = self._timers.pop(alert_id, None)
        if handle is not None:
            handle.cancel()

    def _key_of(self, alert: dict[str, Any]) -> Key | None:
        if alert.get("alert_type") in ("MANUAL",) or alert.get("characteristic") is None:
            return None
        return (alert.get("product_id"), alert.get("characteristic"), alert["alert_type"], alert.get("rule"))

    def _emit(self, batch: Any, alert: dict[str, Any], now: float, *, record: bool = True) -> None:
        if record:
            batch.alert(alert)
        self._last_emit[alert["id"]] = now
        topic = self._topic(alert)
        batch.event("alert", alert.get("product_id"),
                    {"type": "alert", "alert": dict(alert), "timestamp": self._iso(now)}, outbox_topic=topic)

    def _topic(self, alert: dict[str, Any]) -> str | None:
        northbound = self.config.northbound
        if northbound is None:
            return None
        from gateway.config.topics import topic_for

        return topic_for(northbound.mqtt, "alert", alert.get("product_code") or self.config.gateway.name,
                         alert.get("characteristic"))

    async def _commit(self, alert: dict[str, Any], now: float, who: str, action: str, to_status: str,
                      comment: str | None, details: dict[str, Any] | None = None,
                      from_status: str | None = None, saved: Saved | None = None) -> dict[str, Any]:
        """Store one transition. `saved` (the alert before an operator's act) makes it refusable: while
        the database cannot be written the act is undone and refused rather than applied later."""
        from_status = from_status or alert["status"]
        alert["status"] = to_status
        via = ACTING_CLIENT.get()
        if via is not None:
            details = {**(details or {}), "via": via}
        batch = self.store.batch(on_commit=self._published, refusable=saved is not None)
        with batch:
            batch.alert_transition(alert_id=alert["id"], at=now, who=who, action=action, from_status=from_status,
                                   to_status=to_status, comment=comment, details=details)
            self._emit(batch, alert, now)
        if saved is None:
            await batch.committed
        else:
            await self._stored(batch, alert, saved)
        return dict(alert)

    # ------------------------------------------------------------------ refusing acts the disk cannot keep

    def refuse_if_unwritable(self) -> None:
        """Refuse an operator's act at once while the database cannot be written: it would otherwise wait
        in memory, unanswered, and take effect after recovery, when its sender has retried (duplicates)."""
        if getattr(self.store, "failing", False):
            raise self._unavailable()

    def _unavailable(self) -> AlertError:
        return self._error("storage_unavailable", "error.storage_unavailable")

    def _save(self, alert: dict[str, Any]) -> Saved:
        alert_id = alert["id"]
        return dict(alert), alert_id in self._unresolved, self._keys.get(alert_id), self._shelved_from.get(alert_id)

    async def _stored(self, batch: Any, alert: dict[str, Any], saved: Saved | None) -> None:
        """Wait for a refusable batch; when the writer refused it, put the alert back as it was (None: it
        was new) and refuse the act: it never reached the disk, screens or plant, and never will."""
        try:
            await batch.committed
        except StoreUnavailable:
            if saved is None:
                self._forget(alert["id"])
            else:
                self._undo(alert, saved)
            raise self._unavailable() from None

    def _undo(self, alert: dict[str, Any], saved: Saved) -> None:
        before, unresolved, key, shelved_from = saved
        alert.clear()
        alert.update(before)
        alert_id = alert["id"]
        if not unresolved:  # a comment on a resolved alert: nothing of it is kept in memory
            return
        self._remember(alert, key)
        if shelved_from is None:
            self._shelved_from.pop(alert_id, None)
        else:
            self._shelved_from[alert_id] = shelved_from
        handle = self._timers.pop(alert_id, None)
        if handle is not None:
            handle.cancel()
        if alert["status"] == "SHELVED":
            self._arm(alert_id, _epoch(alert.get("shelved_until")))

    def _resolve_now(self, batch: Any, alert: dict[str, Any], who: str, cause: str, action: str | None) -> None:
        now = self.clock()
        from_status = alert["status"]
        alert.update(status="RESOLVED", resolved_by=who, resolved_at=self._iso(now), cause=cause)
        if action:
            alert["action"] = action
        alert.pop("shelved_until", None)
        batch.alert_transition(alert_id=alert["id"], at=now, who=who, action="resolve", from_status=from_status,
                               to_status="RESOLVED", comment=cause, details={"action": action})
        self._emit(batch, alert, now)
        self._forget(alert["id"])

    def _end_shelve(self, alert: dict[str, Any]) -> str:
        handle = self._timers.pop(alert["id"], None)
        if handle is not None:
            handle.cancel()
        alert.pop("shelved_until", None)
        return self._shelved_from.pop(alert["id"], "OPEN")

    def _arm(self, alert_id: int, until: float | None) -> None:
        old = self._timers.pop(alert_id, None)
        if old is not None:
            old.cancel()
        delay = max(0.0, (until if until is not None else 0.0) - self.clock())
        loop = asyncio.get_running_loop()
        self._timers[alert_id] = loop.call_later(delay, self._shelve_due, alert_id)

    def _shelve_due(self, alert_id: int) -> None:
        self._timers.pop(alert_id, None)
        alert = self._unresolved.get(alert_id)
        if alert is None or alert["status"] != "SHELVED":
            return
        task = asyncio.get_running_loop().create_task(
            self._commit(alert, self.clock(), "gateway", "shelve_expired", self._end_shelve(alert), None))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _unresolved_or_fail(self, alert_id: int, action: str) -> dict[str, Any]:
        alert = self._unresolved.get(alert_id)
        if alert is not None:
            return alert
        stored = await self.store.alert(alert_id)
        if stored is None:
            raise self._error("not_found", "error.no_alert", alert_id=alert_id)
        raise self._state_error(stored, action)

    def _state_error(self, alert: dict[str, Any], action: str) -> AlertError:
        return self._error("invalid_field", "error.state", alert_id=alert["id"],
                           status=texts(f"status.{alert['status']}"), action=texts(f"action.{action}"))

    def _error(self, code: str, key: str, **values: Any) -> AlertError:
        """An AlertError worded in every language; its message in the gateway's."""
        words = texts(key, **values)
        return AlertError(code, words.get(self.config.gateway.language, words["en"]), words)

    def _published(self, events: list[Event]) -> None:
        if self.publish is not None and events:
            self.publish(events)

    def _flush(self) -> None:
        dirty = [self._unresolved[i] for i in self._dirty if i in self._unresolved]
        self._dirty.clear()
        if not dirty:
            return
        now = self.clock()
        with self.store.batch(on_commit=self._published) as batch:
            for alert in dirty:
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
