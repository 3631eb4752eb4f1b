"""A characteristic's chart parameters: `lambda` and `L` (EWMA), `k`, `h` and `fir` (CUSUM).

They sit on the characteristic beside `chart:`, spelled as `spc-gateway analyze` spells its options
(`--lambda 0.1 --L 2.7` is `lambda: 0.1, L: 2.7`), because a technician who tried a chart with
`analyze` first writes the same words in the file. Which chart takes which parameter is the chart
type's own `parameters` (gateway.spc.charts): no chart is named here. The ranges are
`ChartParameters.problems()`, the same rule the engine and `analyze` apply.
"""

from __future__ import annotations

from typing import Any

from yaml.nodes import Node

from gateway.config.kinds import and_list
from gateway.config.loader import BAD, Convert, Reader
from gateway.config.values import boolean, number
from gateway.spc.charts.base import ChartParameters
from gateway.spc.charts.registry import CHARTS

# config key -> ChartParameters field (`lambda` is a Python keyword, so the field is `lam`)
KEYS: dict[str, str] = {"lambda": "lam", "L": "L", "k": "k", "h": "h", "fir": "fir"}
FIELDS = {field: key for key, field in KEYS.items()}
# what each key means, for the message when a value is out of range
ALLOWED: dict[str, str] = {
    "lambda": "more than 0 and at most 1; 0.05 to 0.25 is usual, default 0.2",
    "L": "more than 0; about 2.7 to 3 is usual, default 3",
    "k": "0 or more, in standard errors of the mean; half the shift to detect, default 0.5",
    "h": "more than 0, in standard errors of the mean; 4 or 5 is usual, default 5",
}
CONVERTERS: dict[str, Convert] = {"lambda": number(), "L": number(), "k": number(), "h": number(),
                                  "fir": boolean}


def charts_taking(field: str) -> list[str]:
    """The chart names whose type takes this ChartParameters field, in the registry's order."""
    return [name for name, chart in CHARTS.items() if field in chart.parameters]


def chart_parameters(r: Reader, items: dict[str, Node], good: dict[str, Any], chart: str,
                     path: str) -> Any:
    """The ChartParameters of one characteristic (defaults where a key is absent), or BAD with every
    problem recorded: a key for a chart that does not take it, a value out of its range. The keys are
    taken out of `good`."""
    given = {key: good.pop(key) for key in KEYS if key in good}
    takes = CHARTS[chart].parameters
    problems = len(r.problems)
    for key in KEYS:
        if key in items and KEYS[key] not in takes:
            owners = charts_taking(KEYS[key])
            own = (f"chart {chart} takes {and_list(FIELDS[f] for f in takes)}" if takes
                   else f"chart {chart} takes no parameters")
            r.at(f"{path}.{key}", f"{key} is a parameter of chart {and_list(owners)}; {own}",
                 f"remove {key}, or set chart: {owners[0]}" if owners else f"remove {key}")
    if len(r.problems) != problems:
        return BAD
    # a value of the wrong type was reported by its converter; the others are still range-checked
    parameters = ChartParameters(**{KEYS[key]: value for key, value in given.items()})
    for field, reason in parameters.problems().items():
        key = FIELDS[field]
        if key in given:
            r.at(f"{path}.{key}", f"{key} {given[key]:g} is out of range: it must {reason.partition(' must ')[2]}",
                 ALLOWED[key])
    if any(key in items and key not in given for key in KEYS):
        return BAD
    return parameters if len(r.problems) == problems else BAD

