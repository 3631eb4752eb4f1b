"""Which SPC results, source states and storage troubles raise which alerts, worded in every language.

Pure functions: each returns the fields of the alerts to raise (`alert_type`, `priority`, `words` from
the type's entry in `alerts.types`, and `rule`/`value`/`limit`/`chart` where they apply; `chart` is
location or dispersion); the AlertService raises them, counts repeats as occurrences and keeps their
lifecycle. `words()` gives `title` and `message` in the gateway's language and `texts`
in both, for a screen switched to the other one. It is called only for a new alert: a repeat is
counted, never reworded, so a chattering rule costs no string formatting.
"""

from __future__ import annotations

import functools
import math
from typing import Any

from gateway.alerts.signals import signal
from gateway.alerts.types import ALERT_TYPES
from gateway.config import Characteristic
from gateway.core.texts import number, rule_description


def spc_alerts(characteristic: Characteristic, result: Any, value: float, language: str) -> list[dict[str, Any]]:
    """OUT_OF_SPEC / OUT_OF_CONTROL / RUN_RULE_VIOLATION / CAPABILITY_LOW for one SPC result."""
    common = {"characteristic": characteristic.name, "unit": characteristic.unit}
    alerts = []
    if result.is_within_spec is False:
        spec = characteristic.spec
        upper = spec.usl is not None and value > spec.usl
        limit = spec.usl if upper else spec.lsl
        alerts.append({**ALERT_TYPES["OUT_OF_SPEC"].fields(characteristic, language, "upper" if upper else "lower",
                                                         value=number(value), limit=number(limit), **common),
                       "value": value, "limit": limit})
    point = result.subgroup
    found = signal(characteristic, point) if result.is_within_control is False and point is not None else None
    if found is not None:  # EWMA or CUSUM: what the signal means, not only its numbers
        alerts.append({**ALERT_TYPES["OUT_OF_CONTROL"].fields(characteristic, language, found.variant,
                                                            **found.values),
                       "value": found.plotted, "limit": found.limit, "chart": "location"})
    elif result.is_within_control is False and point is not None:
        plotted, limit, which = _beyond(point)
        # `chart` says which chart the value and limit belong to: one alert counts the repeats of both
        alerts.append({**ALERT_TYPES["OUT_OF_CONTROL"].fields(characteristic, language, which,
                                                            value=number(plotted), limit=number(limit), **common),
                       "value": plotted, "limit": limit, "chart": "dispersion" if which == "dispersion" else "location"})
    for violation in result.violations:
        if violation.rule == 1:  # a point beyond the limits is the OUT_OF_CONTROL alert above
            continue
        description = functools.partial(_rule_words, characteristic.rules.convention, violation)
        alerts.append({**ALERT_TYPES["RUN_RULE_VIOLATION"].fields(
                           characteristic, language, rule=violation.rule, description=description,
                           points=", ".join(str(p) for p in violation.points[-15:]), **common),
                       "rule": violation.rule, "value": _plotted(point), "chart": getattr(violation, "chart", "location")})
    capability = result.capability
    cpk = getattr(capability, "cpk", None) if capability is not None else None
    min_cpk = characteristic.capability.min_cpk
    if cpk is not None and math.isfinite(cpk) and cpk < min_cpk:
        alerts.append({**ALERT_TYPES["CAPABILITY_LOW"].fields(characteristic, language, cpk=f"{cpk:.2f}",
                                                            min_cpk=f"{min_cpk:.2f}", **common),
                       "value": cpk, "limit": min_cpk})
    return alerts


def stale_alert(characteristic: Characteristic, age: float, language: str) -> dict[str, Any]:
    """SOURCE_STALE: no good value for `age` seconds."""
    return {**ALERT_TYPES["SOURCE_STALE"].fields(characteristic, language, characteristic=characteristic.name,
                                                 age=f"{age:.0f}", source=characteristic.source),
            "value": round(age, 1)}


def storage_alert(kind: str, language: str, **values: Any) -> dict[str, Any]:
    """STORAGE: `kind` is store_failing, store_lost, outbox_high or outbox_dropped; `values` fill alert.STORAGE.<kind>."""
    return ALERT_TYPES["STORAGE"].fields(None, language, kind, **values)


def output_alert(output: str, language: str, **values: Any) -> dict[str, Any]:
    """OUTPUT_FAILED: an andon or interlock output that failed `failures` writes in a row."""
    return ALERT_TYPES["OUTPUT_FAILED"].fields(None, language, output=output, **values)


def _plotted(point: Any) -> float | None:
    """The charted location value: the subgroup mean, or the individual value."""
    if point is None:
        return None
    value = getattr(point, "value", None)
    return value if value is not None else getattr(point, "mean", None)


def _beyond(point: Any) -> tuple[float | None, float | None, str]:
    """Which limit a charted point crossed: (plotted value, limit, upper|lower|dispersion)."""
    value, ucl, lcl = _plotted(point), point.ucl, point.lcl
    if value is not None and ucl is not None and value > ucl:
        return value, ucl, "upper"
    if value is not None and lcl is not None and value < lcl:
        return value, lcl, "lower"
    dispersion = getattr(point, "dispersion", None)
    d_ucl, d_lcl = getattr(point, "dispersion_ucl", None), getattr(point, "dispersion_lcl", None)
    if dispersion is not None and d_lcl is not None and dispersion < d_lcl:
        return dispersion, d_lcl, "dispersion"
    return dispersion, d_ucl, "dispersion"


def _rule_words(convention: str, violation: Any, lang: str) -> str:
    """What the broken rule detects, in `lang`; a rule broken on the dispersion chart says so."""
    words = rule_description(lang, convention, violation.rule, violation.rule_name)
    return words + " (R/S/MR)" if getattr(violation, "chart", "location") == "dispersion" else words
