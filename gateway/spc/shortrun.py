"""Short-run SPC: several part numbers on one individuals chart, each read against its own target.

A high-mix line measures the same characteristic on part A-100, then A-200, then A-100 again, a few
dozen of each: too few of one part for a chart of its own. Plotting each reading against its own part's
nominal puts them all on one chart:

- DNOM (deviation from nominal): x - target[part]. Center 0; sigma is the moving-range estimate of the
  deviations, MR-bar / d2(2), pooled over every part (learned from the baseline, or `limits.sigma` fixed).
  It assumes the parts share one spread: when they do not, use Z.
- Z (standardized, Z-MR): (x - target[part]) / sigma[part]. Center 0, sigma 1: limits +-3 and the
  moving-range UCL D4 * d2(2) = 3.267 * 1.128 = 3.686, never learned.

Both run as one point stream through the individuals engine: the moving range and the run rules run
across a changeover, as the chart shows one line. Readings while the part is unknown are not plotted
(the caller stores them, flagged: `skip`). Capability is per part, on its own readings in its own
unit, against its own spec and target (Cp/Cpk/Pp/Ppk of I-MR: sigma within from the moving range of
that part's readings in arrival order), with the characteristic's `distribution` fitted to that part's
window: its normality test beside a normal capability, the percentile indices of a lognormal, Weibull or
folded normal one, and the expected ppm (capability_percentile). A part's window is small (a few dozen
readings) and analyzed once every `capability_every` readings of that part, so the fit is done here,
with the indices, rather than deferred as the plain engine's is.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from gateway.spc import capability as _capability
from gateway.spc.capability import CapabilityResult
from gateway.spc.capability_percentile import with_distribution
from gateway.spc.charts.limits import LimitsVersion, make_limits
from gateway.spc.engine import CharacteristicEngine, EngineSettings
from gateway.spc.points import IngestResult

PLOTS = ("dnom", "z")  # the config's `short_run:` values


@dataclass(frozen=True)
class PartTarget:
    """One part number of a short-run characteristic: its nominal, spread and spec."""

    name: str
    target: float
    sigma: float | None = None  # needed by Z; DNOM plots without it
    lsl: float | None = None
    usl: float | None = None


def plotted(plot: str, part: PartTarget, x: float) -> float:
    """The value a reading of `part` is charted at."""
    deviation = x - part.target
    if plot == "z":
        assert part.sigma is not None  # the configuration requires it for Z
        return deviation / part.sigma
    return deviation


class ShortRunEngine:
    """The individuals engine fed with DNOM or Z values, spec and capability per part.

    `engine` is the inner CharacteristicEngine: its limits, numbering, rules and state are the chart's.
    """

    def __init__(self, plot: str, parts: Iterable[PartTarget], settings: EngineSettings,
                 state: dict[str, Any] | None = None):
        if plot not in PLOTS:
            raise ValueError(f"short_run {plot!r} is not one of {', '.join(PLOTS)}")
        self.plot = plot
        self.parts = {p.name: p for p in parts}
        if not self.parts:
            raise ValueError("a short-run chart needs at least one part")
        if plot == "z" and any(p.sigma is None or not p.sigma > 0 for p in self.parts.values()):
            raise ValueError("a Z chart needs every part's sigma (> 0)")
        # spec and capability are per part: the inner chart has none of its own
        inner = replace(settings, lsl=None, usl=None, target=None)
        if plot == "z":
            inner = replace(inner, center=0.0, sigma=1.0)
        elif inner.sigma is not None:
            inner = replace(inner, center=0.0)
        self.settings = settings
        # what the deviation is divided by: the part's sigma (Z) or 1 (DNOM)
        self.divisor = {p.name: (p.sigma or 1.0) if plot == "z" else 1.0 for p in self.parts.values()}
        self.engine = CharacteristicEngine(inner, state=state)
        self.window = settings.capability_window
        self.every = settings.capability_every
        self.values: dict[str, deque[float]] = {}
        self.since: dict[str, int] = {}
        kept = (state or {}).get("short_run") or {}
        for name, values in (kept.get("values") or {}).items():
            if name in self.parts:
                self.values[name] = deque((float(v) for v in values), maxlen=self.window)
                self.since[name] = int((kept.get("since") or {}).get(name, 0))

    @property
    def limits(self) -> LimitsVersion | None:
        return self.engine.limits

    def ingest(self, value: float, part: str, at: float) -> IngestResult:
        """A reading of a known part: charted at its DNOM or Z value."""
        spec = self.parts[part]
        r = self.engine.ingest((value - spec.target) / self.divisor[part], at)  # as plotted(): x / 1.0 is x
        new_limits = r.new_limits
        if new_limits is not None and self.plot == "dnom" and new_limits.source == "learned" \
                and new_limits.center != 0.0:
            # DNOM's center is 0 by definition (every part on its nominal): only sigma is learned
            new_limits = make_limits(self.engine.chart, 1, 0.0, new_limits.sigma, source=new_limits.source,
                                     effective_from=new_limits.effective_from,
                                     from_subgroup=new_limits.from_subgroup, to_subgroup=new_limits.to_subgroup)
            self.engine.adopt(new_limits)
        in_spec, capability = None, None
        if spec.lsl is not None or spec.usl is not None:
            in_spec = (spec.lsl is None or spec.lsl <= value) and (spec.usl is None or value <= spec.usl)
            capability = self._capability(spec, value)
        # written out rather than r._replace(...): this runs for every reading
        return IngestResult(r.sample_number, r.subgroup_number, in_spec, r.is_within_control, r.subgroup,
                            r.violations, new_limits, capability)

    def _capability(self, spec: PartTarget, value: float) -> CapabilityResult | None:
        values = self.values.get(spec.name)
        if values is None:
            values = self.values[spec.name] = deque(maxlen=self.window)
        values.append(value)
        since = self.since.get(spec.name, 0) + 1
        if since < self.every:
            self.since[spec.name] = since
            return None
        self.since[spec.name] = 0
        window = list(values)
        result = _capability.compute_individuals(window, spec.lsl, spec.usl, spec.target)
        return with_distribution(result, window, self.settings.distribution, spec.lsl, spec.usl)

    def recenter(self, version: LimitsVersion) -> LimitsVersion:
        """Recalculated limits as this chart uses them: DNOM keeps center 0, Z keeps 0 and 1."""
        if self.plot == "z":
            sigma = 1.0
        else:
            sigma = version.sigma
        return make_limits(self.engine.chart, 1, 0.0, sigma, source=version.source,
                           effective_from=version.effective_from, from_subgroup=version.from_subgroup,
                           to_subgroup=version.to_subgroup)

    def reading(self, value: float, part: str | None, at: float) -> IngestResult:
        """`ingest` for a known part; for an unknown one (None) the reading is counted, not charted."""
        if part is not None:
            return self.ingest(value, part, at)
        sample, subgroup = self.skip(at)
        return IngestResult(sample, subgroup, None, None, None, (), None, None)

    def skip(self, at: float) -> tuple[int, int]:
        """A reading whose part is unknown: counted, not charted. (sample number, last subgroup number)."""
        engine = self.engine
        engine.sample_number += 1
        engine.last_at = at
        return engine.sample_number, engine.subgroup_number

    def state(self) -> dict[str, Any]:
        """The inner engine's state and each part's capability window."""
        return {**self.engine.state(), "short_run": {
            "values": {name: list(v) for name, v in self.values.items()}, "since": dict(self.since)}}
