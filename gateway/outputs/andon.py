"""Andon lights and interlocks (contract plant-integration §3): outputs on a PLC, driven by the alerts.

Each `outputs:` entry is on while at least one unresolved alert matches its `when`, and off otherwise.
It is written through the named source's own connection (`Source.write`), whenever what it should be
differs from what was last written, and again after every new connection of that source: a PLC that
restarted has lost its coils, and the andon must be back on while the alert still holds. A write that
fails is retried with the source's backoff; the third failure in a row raises OUTPUT_FAILED (a gateway
alert without a product, like STORAGE), which the gateway resolves when a write succeeds again.

Every output has its own write task, so a dead PLC delays nothing but its own outputs; the sources,
the pipeline and the screens never wait for a write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.config import Config, OutputRule
from gateway.core.backoff import Backoff
from gateway.core.model import Event
from gateway.outputs.base import Output

log = logging.getLogger("gateway.outputs.andon")

FAILURES_BEFORE_ALERT = 3  # writes failed in a row before OUTPUT_FAILED (contract §3)
TICK = 0.2  # seconds between two looks at the sources' connections when no alert changes
WRITE_TIMEOUT_MIN = 2.0  # seconds a write may take at least; else twice the source's own timeout
MAX_HOLD = 600.0  # seconds a hand-set state (`outputs test`) may hold at most


def matches(rule: OutputRule, alert: dict[str, Any]) -> bool:
    """Does this alert hold the output on? SHELVED and RESOLVED alerts never do."""
    when = rule.when
    status = alert.get("status")
    if status != "OPEN" and not (when.state == "open" and status == "ACKNOWLEDGED"):
        return False
    if alert.get("alert_type") not in when.alert_types:
        return False
    if int(alert.get("priority") or 0) < when.priority_at_least:
        return False
    return not when.products or alert.get("product_code") in when.products


@dataclass
class OutputState:
    """One output as the gateway drives it."""

    rule: OutputRule
    backoff: Backoff
    wanted: bool = False  # what the alerts say now
    written: bool | None = None  # what the device was last written (None: nothing yet since start)
    written_on: tuple[int, int] | None = None  # (source, connection) the last good write went through
    tried_on: tuple[int, int] | None = None  # (source, connection) of the last failed attempt
    retry_at: float = 0.0  # monotonic
    writes: int = 0
    write_failures: int = 0  # every failed write since start (/metrics counts them)
    in_a_row: int = 0
    last_error: str | None = None
    alerted: bool = False  # our OUTPUT_FAILED is open
    held: bool | None = None  # set by hand (`outputs test`) until held_until
    held_until: float = 0.0
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def target(self, now: float) -> bool:
        return self.held if self.held is not None and now < self.held_until else self.wanted

    def as_dict(self) -> dict[str, Any]:
        def word(value: bool | None) -> str | None:
            return None if value is None else "on" if value else "off"

        return {"source": self.rule.write.source, "state": word(self.written), "wanted": word(self.wanted),
                "held": word(self.held), "writes": self.writes, "write_failures": self.write_failures,
                "failing": self.in_a_row >= FAILURES_BEFORE_ALERT, "last_error": self.last_error}


class AndonOutputs(Output):
    """Every `outputs:` entry of the config, written through the sources of the running gateway."""

    name = "outputs"

    def __init__(self, config: Config, alerts: Any, store: Any, source_named: Callable[[str], Any]):
        self.alerts = alerts  # AlertService: unresolved() now, output_failed/output_written
        self.store = store
        self.source_named = source_named  # the running Source of a name, None while there is none
        self.states: dict[str, OutputState] = {}
        self._config = config
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.reconfigure(config)

    # ------------------------------------------------------------------ Output

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="andon-outputs")

    async def stop(self) -> None:
        tasks = [s.task for s in self.states.values() if s.task is not None]
        if self._task is not None:
            tasks.append(self._task)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None

    def publish(self, events: list[Event]) -> None:
        if any(event.type == "alert" for event in events):
            self._wake.set()

    def stats(self) -> dict[str, Any]:
        return {name: state.as_dict() for name, state in self.states.items()}

    def reconfigure(self, config: Config) -> None:
        """SIGHUP: an unchanged entry keeps its state; a new or changed one is written afresh."""
        self._config = config
        states: dict[str, OutputState] = {}
        for rule in config.outputs:
            old = self.states.get(rule.name)
            if old is not None and old.rule == rule:
                states[rule.name] = old
                continue
            if old is not None and old.task is not None:
                old.task.cancel()
            settings = getattr(config.source(rule.write.source), "backoff", None)
            states[rule.name] = OutputState(rule, Backoff(getattr(settings, "initial", 1.0),
                                                          getattr(settings, "maximum", 30.0)))
        for name, old in self.states.items():
            if name not in states and old.task is not None:
                old.task.cancel()
        self.states = states
        self._wake.set()

    # ------------------------------------------------------------------ by hand

    async def test(self, name: str, on: bool, hold: float, user: str) -> dict[str, Any]:
        """`spc-gateway outputs test NAME on|off`: write now, and keep that state for `hold` seconds
        before the alerts decide again. Raises LookupError for an unknown name, and what the write
        raised when it failed."""
        state = self.states.get(name)
        if state is None:
            raise LookupError(f"no output named {name!r} (configured: {', '.join(self.states) or 'none'})")
        hold = min(max(hold, 0.0), MAX_HOLD)
        log.warning("output %s set %s by hand by %s for %.0f s", name, "on" if on else "off", user, hold)
        if state.task is not None:
            state.task.cancel()
            with contextlib.suppress(BaseException):
                await state.task
            state.task = None
        state.held, state.held_until = on, time.monotonic() + hold
        await self._write(state, on)  # raises when it failed: the technician sees why at once
        self._wake.set()
        return {"output": name, **state.as_dict()}

    # ------------------------------------------------------------------ the loop

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            self._step()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), TICK)

    def _step(self) -> None:
        unresolved = self.alerts.unresolved() if self.states else []
        now = time.monotonic()
        for state in self.states.values():
            state.wanted = any(matches(state.rule, alert) for alert in unresolved)
            if state.held is not None and now >= state.held_until:
                state.held = None
            if state.task is not None:
                continue
            source = self.source_named(state.rule.write.source)
            if source is None or (source.connections == 0 and source.health.reconnects == 0):
                continue  # not started, or its first connection not tried yet: nothing to judge it by
            link = (id(source), source.connections)
            target = state.target(now)
            if state.written == target and state.written_on == link:
                continue
            if now < state.retry_at and state.tried_on == link:
                continue  # backing off, and the source has not connected anew since
            state.task = asyncio.create_task(self._attempt(state, target), name=f"andon:{state.rule.name}")

    async def _attempt(self, state: OutputState, on: bool) -> None:
        try:
            await self._write(state, on)
        except asyncio.CancelledError:
            raise
        except Exception:
            pass  # counted and logged by _write
        finally:
            state.task = None
            self._wake.set()

    async def _write(self, state: OutputState, on: bool) -> None:
        """One write; success and failure are counted here, and OUTPUT_FAILED raised or resolved."""
        rule = state.rule
        source = self.source_named(rule.write.source)
        if source is None:
            raise ConnectionError(f"source {rule.write.source} is not running")
        link = (id(source), source.connections)
        timeout = max(WRITE_TIMEOUT_MIN, 2 * float(getattr(source.config, "timeout", 1.0)))
        try:
            await asyncio.wait_for(source.write(rule.write.target, on), timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed(state, link, exc)
            raise
        state.written, state.written_on, state.writes = on, link, state.writes + 1
        if state.in_a_row:
            log.info("output %s written again after %d failures", rule.name, state.in_a_row)
        state.in_a_row, state.last_error = 0, None
        state.backoff.reset()
        if state.alerted:
            state.alerted = False
            with self.store.batch(on_commit=self.alerts.publish) as batch:
                self.alerts.output_written(batch, rule.name)

    def _failed(self, state: OutputState, link: tuple[int, int], exc: Exception) -> None:
        rule = state.rule
        state.written = None  # the device may hold anything now
        state.write_failures += 1
        state.in_a_row += 1
        state.tried_on = link
        state.last_error = str(exc) or type(exc).__name__
        delay = state.backoff.next_delay()
        state.retry_at = time.monotonic() + delay
        log.warning("output %s: writing to source %s failed (%d in a row): %s; retried in %.1f s", rule.name,
                    rule.write.source, state.in_a_row, state.last_error, delay)
        if state.in_a_row == FAILURES_BEFORE_ALERT and not state.alerted:
            state.alerted = True
            with self.store.batch(on_commit=self.alerts.publish) as batch:
                self.alerts.output_failed(batch, rule.name, source=rule.write.source, failures=state.in_a_row,
                                          error=state.last_error)


def build(gateway: Any) -> AndonOutputs:
    """The registry's builder: always built, so that outputs added by a reload are driven too."""
    return AndonOutputs(gateway.config, gateway.alerts, gateway.store, gateway.sources.get)
