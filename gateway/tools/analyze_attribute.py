"""`spc-gateway analyze --chart p|np|c|u|laney_p|laney_u`: attribute charts from counts.

One row per sample: column `count` (nonconforming parts for p/np, defects for c/u) and column `n`
(parts inspected for p/np, inspection units for u; c takes none). Labels from a `subgroup` or `sample`
column, else the row number. Output per shared/contract/cli.md, "Version 2 of analyze"; the points
come from the same engine the daemon runs (CharacteristicEngine.ingest_count).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from typing import Any, TextIO

from gateway.core.model import finite_or_none
from gateway.spc.attribute_capability import attribute_capability
from gateway.spc.charts.attribute import AttributeChart, Sample
from gateway.spc.charts.base import EstimateError
from gateway.spc.engine import CharacteristicEngine, EngineSettings
from gateway.spc.numeric import MAX_MAGNITUDE
from gateway.tools.analyze_input import DecimalMarks, NumberError, open_table

DEFAULT_RULES = "1,2,3,4"  # Minitab applies tests 1 to 4 to attribute charts


class SampleError(ValueError):
    """The file cannot be charted: the message names the line and row."""


def read_samples(stream: TextIO, name: str, chart: AttributeChart) -> list[tuple[str, Sample]]:
    """Rows -> [(label, Sample)]; SampleError names the line and row of a refused one."""
    table = open_table(stream)
    if table is None:
        raise SampleError(f"{name}: the file is empty (a header with a `count` column is needed)")
    reader, columns, separator, blank = table
    needed = ("count", "n") if chart.uses_n else ("count",)
    missing = [c for c in needed if c not in columns]
    if missing:
        raise SampleError(f"{name}:{blank + 1}: a {chart.name} chart needs the column"
                          f"{'s' if len(missing) > 1 else ''} {' and '.join(f'`{c}`' for c in missing)} "
                          f"(found: {', '.join(columns) or 'nothing'})")
    count_at = columns.index("count")
    n_at = columns.index("n") if chart.uses_n else None
    label_at = next((columns.index(c) for c in ("subgroup", "sample") if c in columns), None)
    marks = DecimalMarks(separator)
    samples: list[tuple[str, Sample]] = []
    first_n: tuple[float, int] | None = None
    rows = 0
    for row in reader:
        line = reader.line_num + blank
        if not any(cell.strip() for cell in row):
            continue
        rows += 1
        where = f"{name}:{line}: row {rows}"

        def cell(at: int, column: str, row: list[str] = row, where: str = where, rows: int = rows) -> float:
            text = row[at].strip() if at < len(row) else ""
            if not text:
                raise SampleError(f"{where} has no {column}")
            try:
                number = marks.number(text, rows)
            except NumberError as e:
                raise SampleError(f"{where}: {str(e).replace('value', column, 1)}") from None
            if not -MAX_MAGNITUDE <= number <= MAX_MAGNITUDE:
                raise SampleError(f"{where}: {column} {text!r} is not a finite number within +-{MAX_MAGNITUDE:g}")
            return number

        count = cell(count_at, "count")
        if count < 0 or count != math.floor(count):
            raise SampleError(f"{where}: count {row[count_at].strip()!r} is not a whole number >= 0")
        n = cell(n_at, "n") if n_at is not None else 1.0
        sample = Sample(int(count), n)
        problem = chart.problem(sample)
        if problem is not None:
            raise SampleError(f"{where}: {problem}")
        if chart.equal_n:
            if first_n is None:
                first_n = (n, rows)
            elif n != first_n[0]:
                raise SampleError(f"{where}: n {n:g} differs from row {first_n[1]}'s {first_n[0]:g}: an {chart.name} "
                                  "chart needs one sample size (the p chart takes varying n)")
        label = row[label_at].strip() if label_at is not None and label_at < len(row) else ""
        samples.append((label or str(rows), sample))
    if not samples:
        raise SampleError(f"{name}: no data rows after the header")
    return samples


def capability(chart: AttributeChart, rate: float) -> dict[str, float | None]:
    """p-bar with ppm and process Z (p, np); u-bar with DPU (c, u): the live engine's words for them."""
    return attribute_capability(chart, [], rate).fields()


def analyze_samples(samples: list[tuple[str, Sample]], chart: AttributeChart, *, convention: str,
                    tests: tuple[int, ...], phase1: int | None = None, center: float | None = None
                    ) -> tuple[dict[str, Any], Iterator[dict[str, Any]]]:
    """The analysis without its points, and the points one by one. ValueError (EstimateError) when the
    samples give no limits; the caller has checked the options."""
    k = len(samples) if phase1 is None else phase1
    if k > len(samples):
        raise SampleError(f"--phase1 {phase1}: the file has only {len(samples)} samples")
    baseline = [s for _, s in samples[:k]]
    rate, sigma_z = chart.estimate(baseline, rate=center)
    if not math.isfinite(rate) or not math.isfinite(sigma_z):
        raise EstimateError("no limits can be drawn from these samples", "not_finite")
    sizes = Counter(s.n for _, s in samples)
    nominal = max(sizes, key=lambda n: (sizes[n], n))
    at_nominal = chart.limits(rate, sigma_z, nominal)
    limits: dict[str, Any] = {"center": at_nominal.center, "lcl": at_nominal.lcl, "ucl": at_nominal.ucl,
                              "sigma": None}
    if chart.laney:
        limits["sigma_z"] = sigma_z
    head = {"chart": chart.name, "subgroups": len(samples), "limits": limits, "dispersion": None,
            "capability": capability(chart, rate)}
    evaluator = CharacteristicEngine(EngineSettings(chart=chart.name, convention=convention, tests=tests,
                                                    center=rate, sigma=sigma_z))

    def points() -> Iterator[dict[str, Any]]:
        for label, sample in samples:
            p = evaluator.ingest_count(sample.count, sample.n, 0.0).subgroup
            assert p is not None  # every sample is a point
            yield {"subgroup": label, "n": sample.n if sample.n != int(sample.n) else int(sample.n),
                   "value": finite_or_none(p.mean), "dispersion": None, "violations": list(p.violations),
                   "dispersion_violations": [], "center": _finite(p.center), "lcl": _finite(p.lcl),
                   "ucl": _finite(p.ucl)}

    return {key: _clean(value) for key, value in head.items()}, points()


def _finite(x: float | None) -> float | None:
    return None if x is None else finite_or_none(x)


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return finite_or_none(value) if isinstance(value, float) else value
