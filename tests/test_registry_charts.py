"""Chart types live in gateway/spc/charts/ and nowhere else: the rest of the gateway asks the registry.

A fake chart type registered from the test (and taken out again after it) is charted by the engine,
offered by `analyze --chart` and accepted by the configuration, with no other change to the code.
"""

from __future__ import annotations

import argparse
import math
import random
import re
from pathlib import Path

import pytest

from gateway.config import ConfigError
from gateway.sources.registry import load_config
from gateway.spc.charts.base import ChartType, SubgroupSummary, summarize
from gateway.spc.charts.registry import CHARTS, chart_named, default_chart
from gateway.spc.engine import CharacteristicEngine, EngineSettings
from gateway.tools import analyze
from tests.test_config import MINIMAL

GATEWAY = Path(__file__).resolve().parent.parent / "gateway"
CHART_PACKAGE = GATEWAY / "spc" / "charts"


class PooledXbar(ChartType):
    """Xbar with the pooled standard deviation as sigma (no c4): a chart type the gateway does not have."""

    name = "pooled"
    sizes = (2, 8)
    dispersion_name = "sp"

    def estimate_sigma(self, summaries: list[SubgroupSummary]) -> float:
        usable = [s for s in summaries if s.n >= 2]
        return math.sqrt(math.fsum(s.m2 for s in usable) / sum(s.n - 1 for s in usable))

    def dispersion_limits(self, sigma: float, n: int) -> tuple[float, float, float] | None:
        return CHARTS["xbar_s"].dispersion_limits(sigma, n)

    def dispersion(self, subgroup_range: float, stdev: float) -> float:
        return stdev


@pytest.fixture
def pooled(monkeypatch: pytest.MonkeyPatch) -> PooledXbar:
    chart = PooledXbar()
    monkeypatch.setitem(CHARTS, chart.name, chart)  # taken out again after the test
    return chart


def subgroups(k: int, n: int, seed: int = 7) -> list[list[float]]:
    rng = random.Random(seed)
    return [[rng.gauss(10.0, 0.5) for _ in range(n)] for _ in range(k)]


def pooled_sigma(groups: list[list[float]]) -> float:
    return PooledXbar().estimate_sigma([summarize(g) for g in groups])


# a chart name written as a string: with one-letter names (p, c, u) a bare word would match every variable
NAMES = re.compile(r"""(?<![A-Za-z0-9_])["'](""" + "|".join(map(re.escape, CHARTS)) + r""")["']""")


def test_no_chart_name_in_python_code_outside_spc_charts() -> None:
    names = NAMES
    found = [f"{path.relative_to(GATEWAY.parent)}:{number}: {line.strip()}"
             for path in sorted(GATEWAY.rglob("*.py")) if CHART_PACKAGE not in path.parents
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if names.search(line.replace('find_library("c")', ""))]  # the C library is not the c chart
    assert not found, "chart names outside gateway/spc/charts/ (ask spc.charts.registry):\n" + "\n".join(found)


def test_the_check_above_would_see_a_chart_name() -> None:
    assert NAMES.search('chart = "xbar_r" if n > 1 else "imr"') and NAMES.search("kind = 'cusum'")
    assert not NAMES.search("ximr = xbar_rs = 1") and not NAMES.search('p = "pareto"; c = u + 1')


def test_default_chart_rule_and_unknown_names() -> None:
    assert [default_chart(n).name for n in (1, 2, 10, 11, 25, 100)] == \
        ["imr", "xbar_r", "xbar_r", "xbar_s", "xbar_s", "xbar_s"]
    known = ", ".join(CHARTS)
    assert known.startswith("imr, xbar_r, xbar_s, ewma, cusum")
    with pytest.raises(ValueError, match=rf"unknown chart 'pareto' \(known: {known}\)"):
        chart_named("pareto")
    with pytest.raises(ValueError, match=f"known: {known}"):
        EngineSettings(chart="pareto")


def test_a_registered_chart_type_runs_through_the_engine(pooled: PooledXbar) -> None:
    groups = subgroups(30, 4)
    engine = CharacteristicEngine(EngineSettings(chart="pooled", subgroup_size=4, baseline_subgroups=20,
                                                 lsl=8.0, usl=12.0, capability_every=25))
    learned = capability = None
    for number, group in enumerate(groups, 1):
        for value in group:
            result = engine.ingest(value, float(number))
        assert result.subgroup is not None
        assert result.subgroup.dispersion == pytest.approx(summarize(group).stdev, rel=1e-12)
        learned = learned or result.new_limits
        capability = capability or result.capability
    assert learned is not None and learned.chart == "pooled" and learned.to_subgroup == 20
    assert learned.sigma == pytest.approx(pooled_sigma(groups[:20]), rel=1e-12)
    s_center, s_ucl, s_lcl = CHARTS["xbar_s"].dispersion_limits(learned.sigma, 4) or (0.0, 0.0, 0.0)
    assert (learned.dispersion_center, learned.dispersion_ucl, learned.dispersion_lcl) == (s_center, s_ucl, s_lcl)
    assert capability is not None and capability.sigma_within == pytest.approx(pooled_sigma(groups[:25]))
    shifted = [x + 10 * learned.sigma for x in groups[0]]
    for value in shifted:
        result = engine.ingest(value, 99.0)
    assert 1 in [v.rule for v in result.violations] and result.is_within_control is False
    restored = CharacteristicEngine(engine.settings, engine.state())  # the state names the chart too
    assert restored.limits == engine.limits


def test_a_registered_chart_type_in_analyze(pooled: PooledXbar, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    groups = subgroups(25, 5)
    out = analyze.analyze([(str(i), g) for i, g in enumerate(groups, 1)], chart="pooled")
    assert out["chart"] == "pooled" and out["dispersion"]["chart"] == "sp"
    assert out["limits"]["sigma"] == pytest.approx(pooled_sigma(groups), rel=1e-12)
    csv = tmp_path / "data.csv"
    csv.write_text("value\n" + "".join(f"{x!r}\n" for g in groups for x in g), encoding="utf-8")
    parser = argparse.ArgumentParser(prog="spc-gateway analyze")
    analyze.add_arguments(parser)  # --chart choices are read from the registry
    code = analyze.run(parser.parse_args([str(csv), "--subgroup-size", "5", "--chart", "pooled"]))
    assert code == 0 and '"chart": "pooled"' in capsys.readouterr().out


CONFIG = MINIMAL.replace("spec: {lsl: 1, usl: 2}}", "spec: {lsl: 1, usl: 2}, chart: pooled, subgroup_size: SIZE}")


def test_a_registered_chart_type_in_the_configuration(pooled: PooledXbar, tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(CONFIG.replace("SIZE", "4"), encoding="utf-8")
    config, _ = load_config(str(path))
    assert config.products[0].characteristics[0].chart == "pooled"
    path.write_text(CONFIG.replace("SIZE", "9"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"subgroup_size 9 does not fit chart pooled \(pooled: 2 to 8; "
                                          r"use xbar_r for 9 to 10, xbar_s for 9 to 25\)"):
        load_config(str(path))
