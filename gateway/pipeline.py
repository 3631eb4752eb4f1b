"""Measurements in, numbered events out: SPC, alerts and storage for every reading, in arrival order.

One task drains a bounded queue that every source feeds. Each drained run of readings becomes one
store batch (one transaction); only after its commit do events reach the screens and the outbox
publisher, and only then is an MQTT reading acknowledged to its broker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from gateway.alerts.repeats import ViolationRepeats
from gateway.alerts.signals import signal, signal_texts
from gateway.config import Characteristic, Config, Product
from gateway.core.batchqueue import BatchQueue
from gateway.core.model import (
    INT64_MAX,
    CharacteristicKey,
    Event,
    IsoTime,
    Measurement,
    finite_or_none,
    iso_time,
)
from gateway.core.plotted import plotted_fields
from gateway.core.rejects import BAD_ATTRIBUTE, BAD_TIMESTAMP, NOT_FINITE, OUT_OF_RANGE, RejectLog
from gateway.core.texts import Refusal, text, texts
from gateway.sources.parts import (
    PART_CHANNEL,
    PartTracker,
    part_stale_after,
    short_run_engine,
    with_part_spec,
)
from gateway.sources.registry import SOURCES
from gateway.spc.attribute_capability import AttributeCapability
from gateway.spc.capability import CapabilityResult
from gateway.spc.charts.attribute import Sample
from gateway.spc.charts.base import EstimateError
from gateway.spc.engine import CharacteristicEngine, EngineSettings
from gateway.spc.numeric import bad_reading
from gateway.spc.shortrun import ShortRunEngine
from gateway.store.schema import StoreUnavailable

log = logging.getLogger("gateway.pipeline")

MEASUREMENT_QUEUE = 10_000  # readings waiting for SPC; sources block (back-pressure) beyond it
BATCH_READINGS = 500  # readings folded into one store batch at most
RECENT_SOURCE_KEYS = 20_000  # identities remembered to drop redelivered MQTT readings
STALE_CHECK_INTERVAL = 1.0
CLOCK_JUMP = 2.0  # seconds of wall-clock step against the monotonic clock worth a log line


@dataclass
class CharacteristicState:
    """What the pipeline keeps per characteristic: its engine and the age of its last good value."""

    product: Product
    characteristic: Characteristic
    engine: CharacteristicEngine
    stale_after: float | None
    last_good: float | None = None  # monotonic
    last_value: float | None = None
    stale: bool = False
    readings: int = 0
    rejected: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    limits_version: int | None = None  # the stored control-limits version in force (its id), None before any
    # short-run SPC (gateway.spc.shortrun, gateway.sources.parts): the chart over every part, and the part now running
    short_run: ShortRunEngine | None = None
    parts: PartTracker | None = None


class Pipeline:
    """Runs SPC and alerting on every reading and stores the outcome as one batch per drained run."""

    def __init__(self, config: Config, store: Any, alerts: Any, *,
                 publish: Callable[[list[Event]], None],
                 topic_for: Callable[[str, str, str | None], str | None] | None = None):
        self.config = config
        self.store = store
        self.alerts = alerts
        self.publish = publish
        self.topic_for = topic_for or (lambda _t, _p, _c: None)
        self.tz = ZoneInfo(config.gateway.timezone)
        self.iso = IsoTime(self.tz)  # iso_time(ts, self.tz), each whole second formatted once
        self._topics: dict[tuple[str, str, str], str | None] = {}  # topic_for, asked once per key
        self._repeats = ViolationRepeats()  # which violations of a rule that keeps firing the screens get
        self.queue: BatchQueue[Measurement] = BatchQueue(MEASUREMENT_QUEUE)
        self.characteristics: dict[CharacteristicKey, CharacteristicState] = {}
        self.part_channels: dict[CharacteristicKey, CharacteristicState] = {}  # key with channel "part"
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._tasks: list[asyncio.Task[None]] = []
        self.ingested = 0
        self.duplicates = 0
        self.rejected = 0
        self.clock_jumps = 0
        self.rejects = RejectLog(log, "reading refused / 측정값 거부")

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Restore engines from their stored state and start draining the queue."""
        states = await self.store.engine_states()
        self._build(self.config, states)
        # the version in force after a restart is the newest stored: limits are stored before they are adopted
        versions = await self.store.limits_versions()
        for key, state in self.characteristics.items():
            state.limits_version = versions.get((key.product_id, key.characteristic))
        for key in await self.store.recent_source_keys(RECENT_SOURCE_KEYS):
            self._remember(key)
        self._tasks = [asyncio.create_task(self._drain(), name="pipeline"),
                       asyncio.create_task(self._watch_staleness(), name="staleness")]

    async def stop(self) -> None:
        """Process what is queued, then stop."""
        deadline = time.monotonic() + 2.0
        while not self.queue.empty() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def reconfigure(self, config: Config, states: dict[tuple[int, str], str]) -> None:
        """Take a new config: characteristics whose settings changed get a fresh engine."""
        self._build(config, states, keep_unchanged=True)
        self.config = config
        self._topics.clear()

    def _build(self, config: Config, states: dict[tuple[int, str], str], keep_unchanged: bool = False) -> None:
        built: dict[CharacteristicKey, CharacteristicState] = {}
        for product in config.products:
            for characteristic in product.characteristics:
                key = CharacteristicKey(product.id, characteristic.name)
                old = self.characteristics.get(key)
                if keep_unchanged and old is not None and old.characteristic == characteristic:
                    old.product = product
                    built[key] = old
                    continue
                settings = EngineSettings.from_characteristic(characteristic)
                raw = states.get((product.id, characteristic.name))
                engine = short_run = None
                if raw is not None:
                    try:
                        short_run = short_run_engine(characteristic, settings, json.loads(raw))
                        engine = (short_run.engine if short_run is not None
                                  else CharacteristicEngine(settings, state=json.loads(raw)))
                    except Exception as exc:  # a changed chart cannot resume the old state
                        log.warning("%s/%s: starting a new chart, the stored state does not fit: %s",
                                    product.code, characteristic.name, exc)
                # a resumed engine keeps the limits (and so the version) it had; a new one has none yet
                version = old.limits_version if engine is not None and old is not None else None
                if engine is None:
                    short_run = short_run_engine(characteristic, settings, None)
                    engine = short_run.engine if short_run is not None else CharacteristicEngine(settings)
                built[key] = CharacteristicState(product, characteristic, engine,
                                                 stale_after=self._stale_after(config, characteristic),
                                                 limits_version=version, short_run=short_run)
                if short_run is not None:
                    built[key].parts = PartTracker(product, characteristic,
                                                   part_stale_after(config, characteristic))
        self.characteristics = built
        self.part_channels = {CharacteristicKey(k.product_id, k.characteristic, PART_CHANNEL): state
                              for k, state in built.items() if state.parts is not None}

    @staticmethod
    def _stale_after(config: Config, characteristic: Characteristic) -> float | None:
        """The characteristic's own stale_after, else its source's plugin's rule (gateway.sources.plugin)."""
        source = next((s for s in config.sources if s.name == characteristic.source), None)
        if source is None:
            return characteristic.stale_after
        return SOURCES[source.type].stale_after(source, characteristic)

    # ------------------------------------------------------------------ the hot path

    def sink(self, measurement: Measurement) -> Awaitable[None]:
        """Where sources hand readings; waits (back-pressure) while the queue is full. The queue's own
        put, handed back: no coroutine of ours per reading."""
        return self.queue.put(measurement)

    async def _drain(self) -> None:
        while True:
            readings = await self.queue.take(BATCH_READINGS)
            try:
                self._process(readings)
            except Exception:  # a programming error must not stop the line: log it, keep going
                log.exception("pipeline failed on a batch of %d readings", len(readings))
            self.queue.done(len(readings))
            await self.store.wait_room()
            # take() and wait_room() return at once while readings wait: without this the loop would
            # run batch after batch while committed readings' acknowledgements and the sockets wait
            await asyncio.sleep(0)

    def _process(self, readings: list[Measurement]) -> None:
        acks: list[Callable[[], None]] = []
        touched: dict[CharacteristicKey, CharacteristicState] = {}
        # One time for the batch: its readings are processed within milliseconds of each other.
        now = self.iso(time.time())
        monotonic = time.monotonic()
        with self.store.batch(on_commit=lambda events: self._committed(events, acks)) as batch:
            for reading in readings:
                if reading.on_committed is not None:
                    acks.append(reading.on_committed)
                if reading.key.channel:  # the part number of a short-run characteristic: nothing to store
                    self._part_read(reading, monotonic)
                    continue
                state = self.characteristics.get(reading.key)
                if state is None:
                    self.rejected += 1
                    continue
                if reading.source_key is not None:
                    if reading.source_key in self._recent:
                        self.duplicates += 1
                        continue
                    self._remember(reading.source_key)
                if reading.quality != "good":
                    state.rejected += 1
                    self.rejected += 1
                    continue
                bad = bad_reading(reading.value)
                if bad is not None:
                    self._refuse(state, reading, OUT_OF_RANGE if bad.finite else NOT_FINITE, bad.reason)
                    continue
                # The time is checked before the engine sees the reading: a reading the store cannot
                # hold must not be counted, charted or learned from. This is the very formatting
                # every stored measurement goes through (its measured_at in the configured zone), so
                # the check refuses exactly what storing would fail on.
                try:
                    measured_iso = self.iso(reading.measured_at)
                except (OverflowError, ValueError, OSError):
                    origin = f" ({reading.source_key})" if reading.source_key else ""
                    self._refuse(state, reading, BAD_TIMESTAMP,
                                 f"time {reading.measured_at!r} s after 1970{origin} is not a date the "
                                 f"gateway can store (years 1 to 9999 in {self.tz})")
                    continue
                if reading.count is not None or reading.sample_size is not None:
                    problem = reading.attribute_problem()
                    if problem is not None:
                        self._refuse(state, reading, BAD_ATTRIBUTE, problem)
                        continue
                attribute = state.engine.attribute
                if attribute is not None:  # a p/np/c/u chart charts the count, not the value
                    problem = (f"chart {attribute.name} charts counts: the reading has none"
                               if reading.count is None else
                               attribute.problem(Sample(reading.count, reading.sample_size or 1.0))
                               if attribute.uses_n and reading.sample_size is not None else
                               f"chart {attribute.name} needs the sample size n with each count"
                               if attribute.uses_n else None)
                    if problem is not None:
                        self._refuse(state, reading, BAD_ATTRIBUTE, problem)
                        continue
                try:
                    self._ingest(batch, state, reading, now, monotonic, measured_iso)
                except Exception:  # a programming error must not cost the other readings of the batch
                    log.exception("%s: reading %r could not be processed", reading.key, reading.value)
                touched[reading.key] = state
            for key, state in touched.items():
                batch.engine_state(key.product_id, key.characteristic, (state.short_run or state.engine).state())

    def _topic(self, event_type: str, product: Product, characteristic: Characteristic) -> str | None:
        key = (event_type, product.code, characteristic.name)
        try:
            return self._topics[key]
        except KeyError:
            topic = self._topics[key] = self.topic_for(event_type, product.code, characteristic.name)
            return topic

    def _refuse(self, state: CharacteristicState, reading: Measurement, kind: str, why: str) -> None:
        """A reading SPC must not see: counted, and told to its source (or logged here)."""
        state.rejected += 1
        self.rejected += 1
        if reading.on_rejected is None:
            self.rejects.add(str(reading.key), kind, why)
            return
        try:
            reading.on_rejected(kind, why)
        except Exception:  # the source's bookkeeping must not cost the rest of the batch
            log.exception("%s: telling the source about a refused reading failed", reading.key)

    def _part_read(self, reading: Measurement, monotonic: float) -> None:
        state = self.part_channels.get(reading.key)
        if state is None or state.parts is None or reading.quality != "good":
            return
        state.parts.read(reading.part if reading.part is not None else reading.value, monotonic)

    def _ingest(self, batch: Any, state: CharacteristicState, reading: Measurement, now: str,
                monotonic: float, measured_iso: str) -> None:
        product, characteristic = state.product, state.characteristic
        measured_at = reading.measured_at
        part = part_unknown = None
        if state.short_run is not None and state.parts is not None:
            part, part_unknown = state.parts.part_for(reading, monotonic)  # unknown: kept and flagged, not charted
            result = state.short_run.reading(reading.value, part, measured_at)
        elif state.engine.attribute is not None and reading.count is not None:
            result = state.engine.ingest_count(reading.count, reading.sample_size, measured_at)
        else:
            result = state.engine.ingest(reading.value, measured_at)
            if isinstance(result.capability, CapabilityResult):  # its distribution and test, before alerts read cpk
                result = result._replace(capability=state.engine.describe_capability(result.capability))
        state.readings += 1
        state.last_good = monotonic
        state.last_value = reading.value
        self.ingested += 1
        if result.new_limits is not None:
            limits = result.new_limits
            reason = ("fixed limits from the configuration" if limits.source == "fixed" else
                      f"learned from subgroups {limits.from_subgroup}..{limits.to_subgroup}")
            state.limits_version = self._store_limits(batch, product, characteristic, limits, who="gateway",
                                                      reason=reason)
        measurement_id = batch.measurement(
            product_id=product.id, characteristic=characteristic.name, value=reading.value,
            measured_at=measured_at, received_at=reading.received_at, sample_number=result.sample_number,
            subgroup_number=result.subgroup_number, is_within_spec=result.is_within_spec,
            is_within_control=result.is_within_control, source_key=reading.source_key, count=reading.count,
            sample_size=reading.sample_size, part=part, part_unknown=part_unknown)
        notable = result.is_within_spec is False or result.is_within_control is False
        body = {
            "id": measurement_id, "product_id": product.id, "product_code": product.code,
            "characteristic": characteristic.name, "measurement_value": reading.value,
            "sample_number": result.sample_number, "subgroup_number": result.subgroup_number,
            "is_within_spec": result.is_within_spec, "is_within_control": result.is_within_control,
            "measured_at": measured_iso, "unit": characteristic.unit,
            "part": part, "part_unknown": part_unknown,  # short-run SPC; both null without parts
        }
        if reading.count is not None:  # attribute data; a variables measurement's message is unchanged
            body["count"] = reading.count
            body["sample_size"] = reading.sample_size
        point = result.subgroup
        message: dict[str, Any] = {"type": "measurement", "measurement": body, "timestamp": now}
        # an attribute sample's count travels with the reading, not the point
        count = None if point is None or point.sample_size is None else reading.count
        charted = None if point is None else self._subgroup_body(product, characteristic, point, measured_iso, count,
                                                                 state.limits_version, part)
        if point is not None and charted is not None and point.n == 1:
            # lean frames: a point of one reading rides in its measurement's frame; its own subgroup
            # event goes northbound, but no screen is sent it (not notable) nor replays it (no events row)
            message["subgroup"] = charted
        batch.event("measurement", product.id, message,
                    notable=notable, outbox_topic=self._topic("measurement", product, characteristic))
        if charted is not None:
            self._store_subgroup(batch, product, characteristic, point, measured_at, charted, now, count, part)
        for violation in result.violations:
            repeated, to_screens = self._repeats.note(
                (product.id, characteristic.name, violation.chart, violation.rule), violation.subgroup_number,
                monotonic)
            violated = {
                "product_id": product.id, "product_code": product.code,
                "characteristic": characteristic.name, "rule": violation.rule,
                "rule_name": violation.rule_name, "chart": violation.chart,
                "subgroup_number": violation.subgroup_number,
                "points": list(violation.points), "detected_at": now,
                "count": repeated, "continuing": repeated > 1,
            }
            found = signal(characteristic, point) if point is not None and violation.rule == 1 else None
            if found is not None:  # EWMA, CUSUM: what the signal means, in every language
                worded = signal_texts(found)
                violated["message"] = worded.get(self.config.gateway.language, worded["en"])["message"]
                violated["texts"] = worded
            batch.event("violation", product.id, {"type": "violation", "violation": violated, "timestamp": now},
                        notable=to_screens, replayed=to_screens,
                        outbox_topic=self._topic("violation", product, characteristic))
        if result.capability is not None:
            self._store_capability(batch, product, characteristic, result.capability, now, part)
        if part is not None:  # the alerts judge a short-run reading against its own part's spec
            characteristic = with_part_spec(characteristic, part, state.extra)
        self.alerts.on_ingest(batch, product, characteristic, result, reading.value)

    def _store_subgroup(self, batch: Any, product: Product, characteristic: Characteristic,
                        point: Any, measured_at: float, charted: dict[str, Any], now: str,
                        count: int | None = None, part: str | None = None) -> None:
        batch.subgroup(product_id=product.id, characteristic=characteristic.name,
                       subgroup_number=point.subgroup_number, n=point.n, mean=point.mean,
                       range=point.range, stdev=point.stdev, center=point.center, ucl=point.ucl,
                       lcl=point.lcl, violations=list(point.violations), at=measured_at,
                       plotted=point.plotted, cusum_upper=point.cusum_upper, cusum_lower=point.cusum_lower,
                       run_upper=point.run_upper, run_lower=point.run_lower, count=count,
                       sample_size=point.sample_size, part=part)
        # n = 1: the screens got the point in its measurement's frame (lean frames)
        batch.event("subgroup", product.id, {"type": "subgroup", "subgroup": charted, "timestamp": now},
                    notable=point.n != 1, replayed=point.n != 1,
                    outbox_topic=self._topic("subgroup", product, characteristic))

    def _subgroup_body(self, product: Product, characteristic: Characteristic, point: Any,
                       measured_iso: str, count: int | None, limits_version: int | None,
                       part: str | None = None) -> dict[str, Any]:
        """The charted point as the `subgroup` message carries it (and, for n = 1, the measurement's)."""
        body = {
            "product_id": product.id, "product_code": product.code,
            "characteristic": characteristic.name, "subgroup_number": point.subgroup_number,
            "n": point.n, "mean": finite_or_none(point.mean), "range": finite_or_none(point.range),
            "stdev": finite_or_none(point.stdev), "value": finite_or_none(point.mean),
            "center": finite_or_none(point.center), "ucl": finite_or_none(point.ucl),
            "lcl": finite_or_none(point.lcl), "violations": list(point.violations),
            "dispersion": finite_or_none(point.dispersion),
            "dispersion_center": finite_or_none(point.dispersion_center),
            "dispersion_ucl": finite_or_none(point.dispersion_ucl),
            "dispersion_lcl": finite_or_none(point.dispersion_lcl),
            "dispersion_violations": list(point.dispersion_violations),
            "measured_at": measured_iso, "limits_version": limits_version,
            "part": part,  # short-run SPC: the point's part number, so a screen can mark part changes
        }
        # what EWMA, CUSUM and attribute charts plot (gateway.core.plotted; the history says the same)
        body.update(plotted_fields(mean=point.mean, ucl=point.ucl, plotted=point.plotted,
                                   cusum_upper=point.cusum_upper, cusum_lower=point.cusum_lower,
                                   run_upper=point.run_upper, run_lower=point.run_lower, count=count,
                                   sample_size=point.sample_size))
        return body

    def _store_capability(self, batch: Any, product: Product, characteristic: Characteristic,
                          cap: Any, now: str, part: str | None = None) -> None:
        values = {k: finite_or_none(getattr(cap, k)) for k in ("cp", "cpk", "pp", "ppk", "cpm", "cpk_lower")}
        measured = not isinstance(cap, AttributeCapability)
        # worded once: the stored row (schema 8) and the event say the same, warning and all
        distribution = self._worded(cap) if measured else None
        expected_ppm = cap.expected_ppm if measured else None
        # attribute charts: p_bar, ppm, process_z or u_bar, dpu; stored too (schema 9), under the same names
        rate = {} if measured else {k: finite_or_none(v) for k, v in cap.fields().items()}
        capability_id = batch.capability(
            product_id=product.id, characteristic=characteristic.name, n=cap.n,
            sigma_within=finite_or_none(cap.sigma_within), sigma_overall=finite_or_none(cap.sigma_overall),
            analyzed_at=time.time(), reason=cap.reason, part=part, distribution=distribution,
            expected_ppm=expected_ppm, **rate, **values)
        batch.event("capability", product.id, {
            "type": "capability",
            "capability": {
                "id": capability_id, "product_id": product.id, "product_code": product.code,
                "characteristic": characteristic.name, **values, "n": cap.n,
                "min_cpk": characteristic.capability.min_cpk, "reason": cap.reason, "analyzed_at": now,
                # attribute charts: p_bar, ppm, process_z or u_bar, dpu, as `analyze` words them; measured
                # values: the fitted distribution, its test and the expected ppm (docs/protocol.md)
                **({"distribution": distribution, "expected_ppm": expected_ppm} if measured else rate),
                **({"part": part} if characteristic.parts else {}),  # short-run: capability per part
            },
            "timestamp": now,
        }, outbox_topic=self._topic("capability", product, characteristic))

    def _worded(self, cap: Any) -> dict[str, Any] | None:
        """The capability's distribution with its warning in gateway.language, and in every language as
        `warning_texts` (null without a warning)."""
        distribution = cap.distribution
        if distribution is None:
            return None
        if cap.warning_words is None:
            return {**distribution, "warning_texts": None}
        key, values = cap.warning_words
        named = {k: (lambda language, v=v: text(language, f"distribution.{v}")) if k == "distribution" else v
                 for k, v in values.items()}
        words = texts(f"capability.warning.{key}", **named)
        return {**distribution, "warning": words.get(self.config.gateway.language, words["en"]),
                "warning_texts": words}

    def _store_limits(self, batch: Any, product: Product, characteristic: Characteristic, limits: Any,
                      *, who: str, reason: str) -> int:
        return batch.limits_version(
            product_id=product.id, characteristic=characteristic.name,
            effective_from=limits.effective_from, center=limits.center, sigma=limits.sigma,
            ucl=limits.ucl, lcl=limits.lcl, dispersion_center=limits.dispersion_center,
            dispersion_ucl=limits.dispersion_ucl, dispersion_lcl=limits.dispersion_lcl,
            source=limits.source, from_subgroup=limits.from_subgroup, to_subgroup=limits.to_subgroup,
            who=who, reason=reason)

    def _committed(self, events: list[Event], acks: list[Callable[[], None]]) -> None:
        for ack in acks:
            try:
                ack()
            except Exception:
                log.exception("acknowledging a committed reading failed")
        if events:
            self.publish(events)

    def _remember(self, source_key: str) -> None:
        self._recent[source_key] = None
        if len(self._recent) > RECENT_SOURCE_KEYS:
            self._recent.popitem(last=False)

    # ------------------------------------------------------------------ operator acts and health

    async def recalculate_limits(self, product_id: int, characteristic: str, *, user: str, reason: str,
                                 from_subgroup: int | None = None, subgroups: int = 25) -> dict[str, Any]:
        """A new limits version from stored subgroups; applies from now on, history stays as it was.

        An operator's act: refused (Refusal storage_unavailable) while the database cannot be written or
        when the writer refuses its batch, and the limits are put in force only once they are stored."""
        state = self.characteristics.get(CharacteristicKey(product_id, characteristic))
        if state is None:
            raise Refusal("not_found", texts("error.no_characteristic", product_id=product_id,
                                             characteristic=characteristic))
        if not 2 <= subgroups <= 1000:
            raise Refusal("invalid_field", texts("error.wrong", field="subgroups",
                                                 expected=texts("expect.int", lo="2", hi="1000")))
        if getattr(self.store, "failing", False):  # it would wait in memory, unanswered, and take effect after recovery
            raise Refusal("storage_unavailable", texts("error.storage_unavailable"))
        if from_subgroup is None:
            from_subgroup = max(1, state.engine.subgroup_number - subgroups + 1)
        # the store asks SQLite for from_subgroup <= n < from_subgroup + count: near the int64 end that
        # sum overflows (OverflowError, a 1011 on the operator's socket), so the range stops at int64
        count = min(subgroups, INT64_MAX - from_subgroup)
        if state.short_run is not None:  # the plotted DNOM or Z values, not the parts' own readings
            values = await self.store.subgroup_means(product_id, characteristic, from_subgroup, count)
        else:
            values = await self.store.subgroup_values(product_id, characteristic, from_subgroup, count)
        if len(values) < 2:
            raise Refusal("invalid_field", texts("error.too_few_subgroups", n=len(values),
                                                   from_subgroup=from_subgroup))
        engine = state.engine
        try:
            limits = engine.estimate(values, source="recalculated", from_subgroup=from_subgroup,
                                     to_subgroup=from_subgroup + len(values) - 1)
        except EstimateError as exc:
            raise Refusal("invalid_field", texts(f"error.estimate.{exc.reason}")) from None
        if state.short_run is not None:
            limits = state.short_run.recenter(limits)
        # stored with the limits: the engine's state once they are in force (a copy: the engine itself
        # takes them only after the commit, so a refused batch leaves it as it was)
        after = CharacteristicEngine(engine.settings, state=engine.state())
        after.adopt(limits)
        batch = self.store.batch(refusable=True)
        with batch:
            version = self._store_limits(batch, state.product, state.characteristic, limits, who=user, reason=reason)
            batch.engine_state(product_id, characteristic, after.state())
        try:
            await batch.committed
        except StoreUnavailable:
            raise Refusal("storage_unavailable", texts("error.storage_unavailable")) from None
        engine.adopt(limits)
        state.limits_version = version
        # readings charted while the batch waited stored the state they left, with the old limits, after it
        with self.store.batch() as batch:
            batch.engine_state(product_id, characteristic, (state.short_run or engine).state())
        return {
            "product_id": product_id, "characteristic": characteristic, "version": version,
            "center": limits.center, "sigma": limits.sigma, "ucl": limits.ucl, "lcl": limits.lcl,
            "from_subgroup": limits.from_subgroup, "to_subgroup": limits.to_subgroup,
            "effective_from": iso_time(limits.effective_from, self.tz), "who": user, "reason": reason,
        }

    def health(self) -> dict[str, dict[str, Any]]:
        """Per characteristic: age of the last good value, stale or not, readings counted."""
        now = time.monotonic()
        return {
            str(key): {
                "product_code": s.product.code, "characteristic": s.characteristic.name,
                "source": s.characteristic.source,
                "last_value_age_s": None if s.last_good is None else round(now - s.last_good, 3),
                "stale": s.stale, "readings": s.readings, "rejected": s.rejected,
                # short-run: the part now running, or why it is not known
                **({"part": s.parts.current, "part_unknown": s.parts.problem} if s.parts is not None else {}),
            }
            for key, s in self.characteristics.items()
        }

    async def _watch_staleness(self) -> None:
        started = time.monotonic()
        clock_offset = time.time() - started
        while True:
            await asyncio.sleep(STALE_CHECK_INTERVAL)
            now = time.monotonic()
            # wall clock against the monotonic clock: an NTP step or an RTC reset after a power cut
            offset = time.time() - now
            if abs(offset - clock_offset) > CLOCK_JUMP:
                log.warning("the wall clock jumped by %+.1f s (NTP step or RTC reset?); timestamps of "
                            "readings without a source time follow the new clock", offset - clock_offset)
                self.clock_jumps += 1
            clock_offset = offset
            changes = []
            for state in self.characteristics.values():
                if state.stale_after is None:
                    continue
                age = now - (state.last_good if state.last_good is not None else started)
                if not state.stale and age > state.stale_after:
                    state.stale = True
                    changes.append((state, True, age))
                elif state.stale and state.last_good is not None and age <= state.stale_after:
                    state.stale = False
                    changes.append((state, False, age))
            if not changes:
                continue
            with self.store.batch(on_commit=self.publish) as batch:
                for state, stale, age in changes:
                    if stale:
                        self.alerts.source_stale(batch, state.product, state.characteristic, age)
                    else:
                        self.alerts.source_fresh(batch, state.product, state.characteristic)

