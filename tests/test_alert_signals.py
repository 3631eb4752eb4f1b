"""The words of EWMA and CUSUM signals (gateway.alerts.signals): downward as upward, the shift in sigma of
single parts for subgroups of n, and nothing for a Shewhart point. The daemon test is
tests/test_daemon_time_weighted.py."""

from __future__ import annotations

import math
from types import SimpleNamespace

from gateway.alerts.causes import spc_alerts
from gateway.alerts.signals import signal, signal_texts
from gateway.spc.charts.base import ChartParameters
from gateway.spc.engine import CharacteristicEngine, EngineSettings
from tests.test_spc_time_weighted import TABLE_9_1


def characteristic(chart: str, parameters: ChartParameters, n: int = 1) -> SimpleNamespace:
    from gateway.config.model import AlertPriority, CapabilitySettings, Rules, Spec

    return SimpleNamespace(name="bore", unit="mm", chart=chart, parameters=parameters, subgroup_size=n,
                           spec=Spec(usl=100.0), rules=Rules("nelson", (1,)), capability=CapabilitySettings(),
                           alert_priority=AlertPriority())


def first_signal(chart: str, parameters: ChartParameters, values: list[float], n: int = 1):
    engine = CharacteristicEngine(EngineSettings(chart=chart, subgroup_size=n, center=10.0, sigma=1.0,
                                                 parameters=parameters))
    for value in values:
        result = engine.ingest(value, 0.0)
        if result.is_within_control is False:
            return result
    raise AssertionError("no signal")


def test_a_downward_cusum_shift_mirrors_the_upward_one() -> None:
    parameters = ChartParameters(k=0.5, h=5.0)
    # Table 9.1 mirrored about 10: Montgomery's signal at 29 with N = 7, new mean 10 - 1.25 (11.25 upward)
    result = first_signal("cusum", parameters, [20.0 - x for x in TABLE_9_1])
    found = signal(characteristic("cusum", parameters), result.subgroup)
    assert result.subgroup.subgroup_number == 29 and found is not None and found.variant == "cusum_lower"
    words = signal_texts(found)
    assert words["en"]["message"].startswith("CUSUM downward shift: mean moved about -1.3 σ, starting 7 points ago "
                                             "(bore: estimated mean 8.74571 mm, C- 5.28 > H 5)")
    assert words["ko"]["message"].startswith("CUSUM 하향 이동 감지: 평균이 약 -1.3σ 이동 (7점 전부터)")
    assert math.isclose(found.limit, 5.0) and found.plotted > 5.0


def test_the_shift_is_in_sigma_of_single_parts_for_subgroups() -> None:
    parameters = ChartParameters(k=0.5, h=4.0)
    # subgroups of 4 (sigma_xbar 0.5) whose mean sits 1 sigma_xbar = 0.5 sigma high
    result = first_signal("cusum", parameters, [10.5] * 400, n=4)
    found = signal(characteristic("cusum", parameters, n=4), result.subgroup)
    point = result.subgroup
    expected = (point.shift - 10.0) / 1.0  # the chart's own estimate of the new mean, in sigma
    assert found is not None and found.values["shift"] == f"{expected:+.1f}" == "+0.5"
    assert found.values["run"] == str(point.run_upper)


def test_ewma_below_its_lower_limit_is_a_drift_downward_and_the_alert_carries_the_ewma() -> None:
    parameters = ChartParameters(lam=0.1, L=2.7)
    result = first_signal("ewma", parameters, [20.0 - x for x in TABLE_9_1])
    c = characteristic("ewma", parameters)
    found = signal(c, result.subgroup)
    assert found is not None and found.variant == "ewma_lower"
    assert signal_texts(found)["en"]["message"].startswith("EWMA beyond LCL: slow drift downward (bore: EWMA 9.35318 < LCL 9.38127)")
    alert = next(a for a in spc_alerts(c, result, 0.0, "ko") if a["alert_type"] == "OUT_OF_CONTROL")
    assert (alert["value"], alert["limit"]) == (result.subgroup.plotted, result.subgroup.lcl)
    assert alert["words"]()["message"].startswith("EWMA 관리 하한 미만: 평균이 서서히 아래로")


def test_a_shewhart_point_is_no_signal_of_these_kinds() -> None:
    result = first_signal("imr", ChartParameters(), [10.0, 14.0])
    assert signal(characteristic("imr", ChartParameters()), result.subgroup) is None
