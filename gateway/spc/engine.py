"""The streaming SPC engine of one characteristic: one measurement in, its verdicts and events out.

The daemon calls `ingest` once per measurement; `spc-gateway analyze` runs the same code over a file.
Subgroups close when `subgroup_size` readings have arrived, or early with `close_subgroup()` (a short
subgroup gets its own limits, center +- 3 sigma/sqrt(n_i), and the rules see its z).

Limits are fixed from the configuration, or learned from the first `baseline_subgroups` subgroups and
then frozen; before limits exist points get `is_within_control = None` and no rule runs. A new limits
version applies from then on: history is never re-evaluated, and the run-rule window starts afresh.
The hot path is written for speed: precomputed per-n limits, integer run counters, few allocations.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

from gateway.spc import capability as _capability
from gateway.spc.attribute_capability import AttributeCapability, attribute_capability
from gateway.spc.capability import CapabilityResult
from gateway.spc.capability_percentile import with_distribution
from gateway.spc.charts.attribute import AttributeChart, Sample
from gateway.spc.charts.base import ChartParameters, EstimateError, PointLimits, SubgroupSummary, summarize
from gateway.spc.charts.limits import LimitsVersion, estimate_limits, make_limits
from gateway.spc.charts.registry import chart_named, default_chart
from gateway.spc.charts.weighted import TimeWeighted, Tracker
from gateway.spc.distributions import CHOICES as DISTRIBUTIONS
from gateway.spc.numeric import MAX_MAGNITUDE
from gateway.spc.points import NO_VIOLATIONS, IngestResult, SubgroupPoint
from gateway.spc.rules import DISPERSION_NAME, Z_TOLERANCE, RuleSet, RuleWindow, Violation, on_boundary

STATE_VERSION = 1
_INF = math.inf


@dataclass(frozen=True)
class EngineSettings:
    """What the engine needs of a characteristic's configuration."""

    chart: str = default_chart(1).name  # a name in charts.registry.CHARTS; the default size's default
    subgroup_size: int = 1
    lsl: float | None = None
    usl: float | None = None
    target: float | None = None
    center: float | None = None  # fixed limits: process mean ...
    sigma: float | None = None  # ... and standard deviation of individual values
    baseline_subgroups: int = 25  # learned limits: from this many first subgroups
    convention: str = "nelson"
    tests: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)
    capability_every: int = 25  # subgroups between two capability analyses
    capability_window: int = 100  # subgroups the analysis looks back over (and the memory kept)
    min_cpk: float = 1.33
    parameters: ChartParameters = ChartParameters()  # EWMA lambda, L; CUSUM k, h, fir
    distribution: str = "normal"  # capability on: a name in distributions.CHOICES

    def __post_init__(self) -> None:
        chart = chart_named(self.chart)  # UnknownChart, a ValueError, lists the known ones
        problem = self.parameters.problem()
        if problem is not None:
            raise ValueError(f"chart parameters: {problem}")
        if chart.individuals and self.subgroup_size != 1:
            raise ValueError(f"an {chart.name} chart charts individual values: subgroup_size must be 1")
        if not 1 <= self.subgroup_size <= 100:
            raise ValueError(f"subgroup_size {self.subgroup_size} is outside 1..100")
        plain_attribute = isinstance(chart, AttributeChart) and not chart.laney
        if (self.center is None) != (self.sigma is None) and not (plain_attribute and self.sigma is None):
            # an attribute chart's fixed limits are its rate alone (sigma is Laney's sigma_Z, 1 otherwise)
            raise ValueError("fixed limits need both center and sigma")
        if self.sigma is not None and not self.sigma > 0:
            raise ValueError(f"sigma must be positive, not {self.sigma}")
        if self.center is not None and (self.sigma is not None or plain_attribute):
            problem = make_limits(chart, self.subgroup_size, self.center, 1.0 if self.sigma is None else self.sigma,
                                  source="fixed",
                                  effective_from=0.0).problem()
            if problem is not None:
                raise ValueError(f"fixed limits cannot be used: {problem}")
        if self.baseline_subgroups < chart.min_baseline:
            raise ValueError(f"baseline_subgroups {self.baseline_subgroups} is too small")
        if self.lsl is not None and self.usl is not None and not self.lsl < self.usl:
            raise ValueError(f"lsl {self.lsl} must be below usl {self.usl}")
        if self.capability_every < 1 or self.capability_window < 1:
            raise ValueError("capability every_subgroups and window_subgroups must be at least 1")
        RuleSet(self.convention, self.tests)  # validates the rule numbers
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(f"distribution {self.distribution!r} is not one of {', '.join(DISTRIBUTIONS)}")

    @property
    def fixed(self) -> bool:
        """Limits come from the configuration rather than from data."""
        return self.center is not None

    @classmethod
    def from_characteristic(cls, characteristic: Any) -> EngineSettings:
        """Settings from a gateway.config.Characteristic."""
        # Any: spc imports nothing of ours outside spc (tests/test_layout.py), so not the config model
        c = characteristic
        return cls(chart=c.chart, subgroup_size=c.subgroup_size, lsl=c.spec.lsl, usl=c.spec.usl,
                   target=c.spec.target, center=c.limits.center, sigma=c.limits.sigma,
                   baseline_subgroups=c.limits.baseline_subgroups or 25, convention=c.rules.convention,
                   tests=tuple(c.rules.tests), capability_every=c.capability.every_subgroups,
                   capability_window=c.capability.window_subgroups, min_cpk=c.capability.min_cpk,
                   parameters=c.parameters, distribution=c.capability.distribution)


class CharacteristicEngine:
    """Streaming SPC for one characteristic; `state()` / `state=` carry it across restarts."""

    def __init__(self, settings: EngineSettings, state: dict[str, Any] | None = None):
        s = self.settings = settings
        self.chart = chart_named(s.chart)
        self.size = s.subgroup_size
        self.individuals = self.chart.individuals
        self.has_spec = s.lsl is not None or s.usl is not None
        self.lsl = s.lsl if s.lsl is not None else -_INF
        self.usl = s.usl if s.usl is not None else _INF
        self.rule_set = RuleSet(s.convention, s.tests)
        self.enabled = self.rule_set.enabled_mask
        self.dispersion_test = self.rule_set.dispersion_test
        self.window = RuleWindow(self.rule_set.run_length)
        self.sample_number = 0
        self.subgroup_number = 0
        self.last_at = 0.0
        self._reset_open()
        self.previous: float | None = None  # last individual (I-MR moving range)
        self.baseline: list[SubgroupSummary] = []
        # I-MR: plain values; subgroup charts: SubgroupSummary
        self.capability_window: deque[Any] = deque(maxlen=s.capability_window)
        # subgroup charts: each subgroup's values beside its summary, for the distribution's fit and test
        self.capability_values: deque[list[float]] = deque(maxlen=s.capability_window)
        self.since_capability = 0
        self.capability_every = s.capability_every
        self._limits: LimitsVersion | None = None
        self._table: list[PointLimits] = []
        self.tracker: Tracker | None = None  # EWMA/CUSUM statistic under the limits in force
        self._announce = False  # fixed limits not yet reported as a version
        self.refused_baselines = 0  # baselines whose limits were not finite, so never put in force
        self.attribute = self.chart if isinstance(self.chart, AttributeChart) else None
        self.samples: list[Sample] = []  # attribute charts: the baseline's samples
        # attribute charts: the samples capability looks back over (capability_window of them)
        self.capability_samples: deque[Sample] = deque(maxlen=s.capability_window)
        if state is not None and self._restore(state):
            return
        if s.center is not None:  # s.fixed (sigma with it, or an attribute chart's rate alone)
            self._install(make_limits(self.chart, self.size, s.center, 1.0 if s.sigma is None else s.sigma,
                                      source="fixed", effective_from=0.0))
            self._announce = True

    # ------------------------------------------------------------ limits

    @property
    def limits(self) -> LimitsVersion | None:
        """The limits version in force (None while the baseline is collected)."""
        return self._limits

    def _install(self, version: LimitsVersion) -> None:
        self._limits = version
        table = [self.chart.point_limits(version.center, version.sigma, n) for n in range(1, self.size + 1)]
        # indexed by subgroup size; index 0 is never read (a subgroup has n >= 1) and repeats n = 1 so
        # that the table holds one type
        self._table = [table[0], *table]
        self.window.reset()
        if isinstance(self.chart, TimeWeighted):  # a new limits version starts a new statistic
            self.tracker = self.chart.start_tracker(version.center, version.sigma, self.size,
                                                    self.settings.parameters)
        self.baseline = []

    def recalculate(self, subgroups: list[list[float]], *, source: str = "recalculated",
                    at: float | None = None, from_subgroup: int | None = None,
                    to_subgroup: int | None = None) -> LimitsVersion:
        """Estimate new limits from the given subgroups' values; they apply from now on.

        EstimateError (a ValueError), and the limits in force stay, when the values give no finite limits.
        """
        version = self.estimate(subgroups, source=source, at=at, from_subgroup=from_subgroup,
                                to_subgroup=to_subgroup)
        self.adopt(version)
        return version

    def estimate(self, subgroups: list[list[float]], *, source: str = "recalculated", at: float | None = None,
                 from_subgroup: int | None = None, to_subgroup: int | None = None) -> LimitsVersion:
        """New limits from the given subgroups' values, not yet in force: a caller that must store them
        first puts them in force with `adopt` once they are stored. EstimateError as `recalculate`."""
        summaries = [summarize(list(v)) for v in subgroups if len(v) > 0]
        return estimate_limits(self.chart, self.size, summaries, source=source,
                               effective_from=self.last_at if at is None else at,
                               from_subgroup=from_subgroup, to_subgroup=to_subgroup)

    def adopt(self, version: LimitsVersion) -> None:
        """Put `version` in force from now on (the rule windows start afresh)."""
        self._install(version)
        self._announce = False

    # ------------------------------------------------------------ the hot path

    def _reset_open(self) -> None:
        self.open_n = 0
        # the open subgroup's values (at most 100): summarized when it closes, in an order-independent
        # way (charts.base.summarize), so two subgroups holding the same values plot the same mean
        self.open_values: list[float] = []

    def ingest(self, value: float, at: float) -> IngestResult:
        """One measurement: spec verdict, and when it completes a subgroup, the chart's verdicts."""
        sample = self.sample_number = self.sample_number + 1
        self.last_at = at
        in_spec = (self.lsl <= value <= self.usl) if self.has_spec else None
        if self.individuals:
            return self._individual(value, at, sample, in_spec)
        self.open_values.append(value)
        n = self.open_n = self.open_n + 1
        if n < self.size:
            return IngestResult(sample, self.subgroup_number + 1, in_spec, None, None, NO_VIOLATIONS,
                                None, None)
        return self._close(at, sample, in_spec)

    def _individual(self, x: float, at: float, sample: int, in_spec: bool | None) -> IngestResult:
        """I-MR with limits in force: the steps of _close, written out for speed (the common case)."""
        limits = self._limits
        if limits is None or self._announce:
            self.open_n = 1
            self.open_values = [x]
            return self._close(at, sample, in_spec)
        previous = self.previous
        self.previous = x
        moving_range = None if previous is None else abs(x - previous)
        number = self.subgroup_number = self.subgroup_number + 1
        capability = None
        if self.has_spec:
            self.capability_window.append(x)
            since = self.since_capability + 1
            if since >= self.capability_every:
                since = 0
                capability = self._indices_now()
            self.since_capability = since
        p = self._table[1]
        z = (x - limits.center) * p.inverse_se
        if -3.5 < z < 3.5:  # rules.on_boundary, inline on the hot path
            whole = round(z)
            if -Z_TOLERANCE < z - whole < Z_TOLERANCE:
                z = float(whole)
        within = -3.0 <= z <= 3.0
        # an I-MR table always has the moving range's UCL; its LCL is 0
        beyond = (moving_range is not None and p.dispersion_ucl is not None
                  and moving_range > p.dispersion_ucl)
        if beyond:
            within = False
        fired = self.window.push(z, x) & self.enabled
        if fired or (beyond and self.dispersion_test):
            violations, rules, dispersion_rules = self._violations(fired, number, z, beyond)
        else:
            violations, rules, dispersion_rules = NO_VIOLATIONS, (), ()
        point = SubgroupPoint(number, 1, x, moving_range, None, limits.center, p.ucl, p.lcl, rules,
                              moving_range, p.dispersion_center, p.dispersion_ucl, p.dispersion_lcl,
                              dispersion_rules, z, within, at)
        return IngestResult(sample, number, in_spec, within, point, violations, None, capability)

    def close_subgroup(self, at: float | None = None) -> IngestResult | None:
        """Close the open subgroup now, short as it is (e.g. closed by time); None when it is empty."""
        if self.open_n == 0:
            return None
        return self._close(self.last_at if at is None else at, self.sample_number, None)

    def _close(self, at: float, sample: int, in_spec: bool | None) -> IngestResult:
        number = self.subgroup_number = self.subgroup_number + 1
        n = self.open_n
        values = self.open_values
        self._reset_open()
        if self.individuals:
            mean = values[0]
            previous = self.previous
            dispersion = rng = None if previous is None else abs(mean - previous)
            self.previous = mean
            stdev = None
            summary: SubgroupSummary | float = mean  # the capability window of an I-MR chart keeps plain values
        else:
            summary = summarize(values)
            mean, rng = summary.mean, summary.range
            if n == 1:
                stdev = dispersion = None
            else:
                stdev = math.sqrt(summary.m2 / (n - 1))
                dispersion = self.chart.dispersion(rng, stdev)
        new_limits = None
        if self._announce and self._limits is not None:  # announced limits are always installed
            self._announce = False
            new_limits = self._limits = self._limits._replace(effective_from=at)
        capability = None
        if self.has_spec:
            self.capability_window.append(summary)
            if not self.individuals:
                self.capability_values.append(values)
            self.since_capability += 1
            if self.since_capability >= self.capability_every:
                self.since_capability = 0
                capability = self._indices_now()
        limits = self._limits
        if limits is None:
            # I-MR keeps a plain value (== mean) as its summary; the baseline holds SubgroupSummary only
            self.baseline.append(summary if isinstance(summary, SubgroupSummary)
                                 else SubgroupSummary(1, mean, 0.0, 0.0))
            if len(self.baseline) >= self.settings.baseline_subgroups:
                k = len(self.baseline)
                try:
                    new_limits = estimate_limits(self.chart, self.size, self.baseline, source="learned",
                                                 effective_from=at, from_subgroup=number - k + 1,
                                                 to_subgroup=number)
                    self._install(new_limits)
                except EstimateError:
                    # NaN/infinite limits would be frozen and stop all detection: learn afresh instead
                    self.baseline = []
                    self.refused_baselines += 1
            point = SubgroupPoint(number, n, mean, rng, stdev, None, None, None, (), dispersion, None,
                                  None, None, (), None, None, at)
            return IngestResult(sample, number, in_spec, None, point, NO_VIOLATIONS, new_limits, capability)
        p = self._table[n]
        z = (mean - limits.center) * p.inverse_se
        if self.tracker is not None:  # its own limits and test; z only for the record
            return self._tracked(number, n, mean, rng, stdev, z, at, sample, in_spec, new_limits, capability)
        if -3.5 < z < 3.5:  # rules.on_boundary, inline on the hot path
            whole = round(z)
            if -Z_TOLERANCE < z - whole < Z_TOLERANCE:
                z = float(whole)
        within = -3.0 <= z <= 3.0
        # a dispersion value exists only where the table has its limits (n >= 2, or I-MR)
        dispersion_beyond = (dispersion is not None and p.dispersion_ucl is not None
                             and p.dispersion_lcl is not None
                             and (dispersion > p.dispersion_ucl or dispersion < p.dispersion_lcl))
        if dispersion_beyond:
            within = False
        fired = self.window.push(z, mean) & self.enabled
        if fired or (dispersion_beyond and self.dispersion_test):
            violations, rules, dispersion_rules = self._violations(fired, number, z, dispersion_beyond)
        else:
            violations, rules, dispersion_rules = NO_VIOLATIONS, (), ()
        point = SubgroupPoint(number, n, mean, rng, stdev, limits.center, p.ucl, p.lcl, rules, dispersion,
                              p.dispersion_center, p.dispersion_ucl, p.dispersion_lcl, dispersion_rules, z,
                              within, at)
        return IngestResult(sample, number, in_spec, within, point, violations, new_limits, capability)

    def _tracked(self, number: int, n: int, mean: float, rng: float | None, stdev: float | None, z: float,
                 at: float, sample: int, in_spec: bool | None, new_limits: LimitsVersion | None,
                 capability: CapabilityResult | None) -> IngestResult:
        """A subgroup on an EWMA or CUSUM chart: only the beyond-limits test, reported as rule 1."""
        assert self.tracker is not None and self._limits is not None and isinstance(self.chart, TimeWeighted)
        center = self._limits.center
        # a short subgroup's mean rescaled to the nominal size (charts/weighted.py)
        t = self.tracker.push(mean if n == self.size else center + (mean - center) * math.sqrt(n / self.size))
        violations: list[Violation] | tuple[Violation, ...] = NO_VIOLATIONS
        rules: tuple[int, ...] = ()
        if t.beyond:
            violations, rules = [Violation(1, self.chart.beyond_name, number, (number,), "location")], (1,)
        point = SubgroupPoint(number, n, mean, rng, stdev, t.center, t.ucl, t.lcl, rules, None, None, None,
                              None, (), z, not t.beyond, at, t.value, t.upper, t.lower, t.run_upper,
                              t.run_lower, t.shift)
        return IngestResult(sample, number, in_spec, not t.beyond, point, violations, new_limits, capability)

    def ingest_count(self, count: int, n: float | None, at: float) -> IngestResult:
        """One attribute sample (count nonconforming parts or defects in n parts or units): one point.

        The caller has checked it (core.model.Measurement.attribute_problem, and
        AttributeChart.problem for count <= n). A c chart takes no n (one inspection unit)."""
        chart = self.attribute
        if chart is None:
            raise TypeError(f"chart {self.chart.name} charts measured values, not counts")
        sample = self.sample_number = self.sample_number + 1
        self.last_at = at
        number = self.subgroup_number = self.subgroup_number + 1
        size = float(n) if n is not None and chart.uses_n else 1.0
        taken = Sample(count, size)
        value = chart.value(taken)
        capability = self._attribute_capability(chart, taken)
        new_limits = None
        if self._announce and self._limits is not None:
            self._announce = False
            new_limits = self._limits = self._limits._replace(effective_from=at)
        limits = self._limits
        if limits is None:
            self.samples.append(taken)
            if len(self.samples) >= self.settings.baseline_subgroups:
                k = len(self.samples)
                try:
                    rate, sigma_z = chart.estimate(self.samples)
                    new_limits = make_limits(chart, max(1, round(math.fsum(s.n for s in self.samples) / k)), rate,
                                             sigma_z, source="learned", effective_from=at,
                                             from_subgroup=number - k + 1, to_subgroup=number)
                    if new_limits.problem() is not None:
                        raise EstimateError(new_limits.problem() or "", "not_finite")
                    self._install(new_limits)
                except EstimateError:
                    new_limits = None
                    self.samples = []
                    self.refused_baselines += 1
            point = SubgroupPoint(number, 1, value, None, None, None, None, None, (), None, None, None, None,
                                  (), None, None, at, sample_size=size)
            return IngestResult(sample, number, None, None, point, NO_VIOLATIONS, new_limits, capability)
        p = chart.limits(limits.center, limits.sigma, size)
        z = on_boundary((value - p.center) * p.inverse_sd)
        within = -3.0 <= z <= 3.0
        fired = self.window.push(z, value) & self.enabled
        violations, rules, _ = (self._violations(fired, number, z, False) if fired
                                else (NO_VIOLATIONS, (), ()))
        point = SubgroupPoint(number, 1, value, None, None, p.center, p.ucl, p.lcl, rules, None, None, None,
                              None, (), z, within, at, sample_size=size)
        return IngestResult(sample, number, None, within, point, violations, new_limits, capability)

    def _attribute_capability(self, chart: AttributeChart, taken: Sample) -> AttributeCapability | None:
        """Every `capability_every` samples, the rate over the last `capability_window` of them (with or
        without a spec: counts are compared with none)."""
        self.capability_samples.append(taken)
        self.since_capability += 1
        if self.since_capability < self.capability_every:
            return None
        self.since_capability = 0
        return attribute_capability(chart, list(self.capability_samples))

    def _violations(self, fired: int, number: int, z: float, dispersion_beyond: bool
                    ) -> tuple[list[Violation] | tuple[Violation, ...], tuple[int, ...], tuple[int, ...]]:
        """(violations, location rule numbers, dispersion rule numbers) in the convention's numbering."""
        reported = self.rule_set.reported
        names = self.rule_set.names
        violations = []
        for test in range(1, 9):
            if fired >> (test - 1) & 1:
                violations.append(Violation(reported[test], names[test], number,
                                            self.window.points(test, number, z), "location"))
        violations.sort(key=lambda v: v.rule)
        rules = tuple(v.rule for v in violations)
        dispersion_rules: tuple[int, ...] = ()
        if dispersion_beyond and self.dispersion_test:
            dispersion_rules = (1,)
            violations.append(Violation(1, DISPERSION_NAME, number, (number,), "dispersion"))
        return violations, rules, dispersion_rules

    # ------------------------------------------------------------ capability

    def capability_now(self) -> CapabilityResult | None:
        """Capability over the last `capability_window` subgroups (None without a spec), with its
        distribution (describe_capability)."""
        result = self._indices_now()
        return None if result is None else self.describe_capability(result)

    def _indices_now(self) -> CapabilityResult | None:
        """The normal indices only: what `ingest` reports on the hot path (their distribution, fits and
        tests cost about 30 µs per 100 values, more than the rest of an analysis)."""
        if not self.has_spec:
            return None
        s = self.settings
        if self.individuals:
            return _capability.compute_individuals(list(self.capability_window), s.lsl, s.usl, s.target)
        return _capability.compute(self.chart, list(self.capability_window), s.lsl, s.usl, s.target)

    def describe_capability(self, result: CapabilityResult) -> CapabilityResult:
        """`result` from `ingest` with the characteristic's distribution, its Anderson-Darling test and the
        expected ppm, and for a non-normal distribution its percentile indices (capability_percentile).
        Call it before the next reading moves the window: the pipeline does, before alerts read cpk."""
        s = self.settings
        values = (list(self.capability_window) if self.individuals
                  else [x for subgroup in self.capability_values for x in subgroup])
        return with_distribution(result, values, s.distribution, s.lsl, s.usl)

    # ------------------------------------------------------------ restart

    def _fingerprint(self) -> list[object]:
        s = self.settings
        fingerprint: list[object] = [s.chart, s.subgroup_size, s.center, s.sigma, s.convention, list(s.tests)]
        if isinstance(self.chart, TimeWeighted):  # other charts take no parameters: their states stay valid
            fingerprint.append(list(s.parameters))
        return fingerprint

    def state(self) -> dict[str, Any]:
        """Small JSON-able dict from which `CharacteristicEngine(settings, state)` continues exactly."""
        return {
            "version": STATE_VERSION,
            "settings": self._fingerprint(),
            "sample_number": self.sample_number,
            "subgroup_number": self.subgroup_number,
            "last_at": self.last_at,
            "open": None,  # before the open subgroup's values were kept: [n, mean, m2, low, high]
            "open_values": list(self.open_values),
            "previous": self.previous,
            "limits": self._limits.to_dict() if self._limits is not None else None,
            "announce": self._announce,
            "rules": self.window.to_state(),
            "tracker": self.tracker.to_state() if self.tracker is not None else None,
            "baseline": [list(b) for b in self.baseline],
            "capability": list(self.capability_window) if self.individuals
            else [list(b) for b in self.capability_window],
            **({} if self.individuals else {"capability_values": [list(v) for v in self.capability_values]}),
            "since_capability": self.since_capability,
            **({"samples": [[s.count, s.n] for s in self.samples]} if self.attribute is not None else {}),
            **({"capability_samples": [[s.count, s.n] for s in self.capability_samples]}
               if self.attribute is not None else {}),
        }

    def _numbers_fit(self, state: dict[str, Any]) -> bool:
        """Whether the kept values are all ones a reading within +-MAX_MAGNITUDE can produce."""
        spread = 2.0 * MAX_MAGNITUDE

        def fits(n: float, mean: float, m2: float, rng: float, *error: float) -> bool:
            # m2 may come out a rounding error below zero, never above what bounded readings give
            return abs(mean) <= MAX_MAGNITUDE and 0.0 <= rng <= spread and abs(m2) <= n * spread * spread

        summaries = list(state["baseline"])
        if not self.individuals:
            summaries += state["capability"]
        if state["open"]:
            n, mean, m2, low, high = state["open"]
            summaries.append([n, mean, m2, high - low])
        singles = list(state["capability"]) if self.individuals else []
        singles += [x for subgroup in state.get("capability_values", ()) for x in subgroup]
        singles += state.get("open_values", [])
        if state["previous"] is not None:
            singles.append(state["previous"])
        return (all(abs(x) <= MAX_MAGNITUDE for x in singles)
                and all(fits(*b) for b in summaries))

    def _restore(self, state: dict[str, Any]) -> bool:
        """Continue from a saved state; returns False when the settings changed so only numbering survives."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unknown engine state version {state.get('version')!r}")
        self.sample_number = int(state["sample_number"])
        self.subgroup_number = int(state["subgroup_number"])
        self.last_at = float(state["last_at"])
        if state["settings"] != self._fingerprint():
            return False  # the chart, size, fixed limits or rules were changed: start afresh
        restored = LimitsVersion.from_dict(state["limits"]) if state["limits"] is not None else None
        if (restored is not None and restored.problem() is not None) or not self._numbers_fit(state):
            # NaN/infinite limits frozen by an earlier version, or readings beyond +-1e100 kept from
            # before they were rejected (capability over them overflows): only numbering survives, and
            # the limits are learned again (fixed ones are put in force again) from new data
            return False
        if restored is not None:
            self._install(restored)
        # a state written before the values were kept has "open": [n, mean, m2, low, high] instead: a
        # subgroup cannot be continued from its summary alone, so those few readings (stored, and counted
        # in sample_number) are not charted
        self.open_values = [float(x) for x in state.get("open_values", ())]
        self.open_n = len(self.open_values)
        self.previous = state["previous"]
        self._announce = bool(state["announce"])
        self.window.restore(state["rules"])
        if self.tracker is not None and state.get("tracker") is not None:
            self.tracker.restore(state["tracker"])
        self.baseline = [SubgroupSummary(*b) for b in state["baseline"]]
        self.capability_window.extend(state["capability"] if self.individuals
                                      else (SubgroupSummary(*b) for b in state["capability"]))
        # a state from before the values were kept has none: the distribution is fitted to the values
        # kept since (the normal indices still cover the whole window)
        self.capability_values.extend([float(x) for x in v] for v in state.get("capability_values", ()))
        self.since_capability = int(state["since_capability"])
        self.samples = [Sample(*s) for s in state.get("samples", ())]
        self.capability_samples.extend(Sample(*s) for s in state.get("capability_samples", ()))
        return True
