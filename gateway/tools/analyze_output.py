"""`spc-gateway analyze`'s output: the table for people and the JSON of shared/contract/cli.md, both
written point by point as the points are evaluated."""

from __future__ import annotations

import io
import json
import textwrap
from collections.abc import Iterable
from typing import TextIO


def _number(x: float | None, digits: int = 6) -> str:
    return "-" if x is None else f"{x:.{digits}g}"


def format_table(result: dict, *, cpk_lower: float | None = None, reason: str | None = None) -> str:
    """The analysis for people: limits, one line per subgroup, capability."""
    out = io.StringIO()
    write_table(result, result["points"], out, cpk_lower=cpk_lower, reason=reason)
    return out.getvalue()


def write_table(head: dict, points: Iterable[dict], out: TextIO, *, cpk_lower: float | None = None,
                reason: str | None = None) -> None:
    """format_table, written line by line as the points come."""
    lim, disp = head["limits"], head["dispersion"]
    extra = "".join(f"  {key.upper()} {_number(lim[key])}" for key in ("h", "k", "sigma_z") if key in lim)
    lines = [f"chart {head['chart']}, {head['subgroups']} subgroups",
             f"location:   center {_number(lim['center'], 8)}  LCL {_number(lim['lcl'], 8)}  "
             f"UCL {_number(lim['ucl'], 8)}  sigma {_number(lim['sigma'])}{extra}"]
    if disp is not None:
        lines.append(f"{disp['chart'].upper():<10}  center {_number(disp['center'])}  LCL {_number(disp['lcl'])}  "
                     f"UCL {_number(disp['ucl'])}")
    out.write("\n".join([*lines, "", f"{'subgroup':>10} {'n':>3} {'value':>14} {'dispersion':>12}  tests  "
                         "dispersion  limits"]) + "\n")
    flagged = []
    for p in points:
        tests = ",".join(map(str, p["violations"])) or "-"
        dtests = ",".join(map(str, p["dispersion_violations"])) or "-"
        limits = f"{_number(p.get('lcl'))} .. {_number(p.get('ucl'))}"
        if "cusum_upper" in p:  # the two sums instead of a value
            limits += (f"  C+ {_number(p['cusum_upper'])} (N+ {p['run_upper']})"
                       f"  C- {_number(p['cusum_lower'])} (N- {p['run_lower']})")
        out.write(f"{p['subgroup']:>10} {p['n']:>3} {_number(p['value'], 10):>14} "
                  f"{_number(p['dispersion']):>12}  {tests:<5}  {dtests:<10}  {limits}\n")
        if p["violations"] or p["dispersion_violations"]:
            flagged.append(p["subgroup"])
    lines = ["", f"flagged subgroups: {', '.join(flagged) if flagged else 'none'}"]
    cap = head.get("capability")
    if cap is not None and "cp" not in cap:  # an attribute chart's
        lines.append("capability: " + "  ".join(f"{key} {_number(value, 6)}" for key, value in cap.items()))
    elif cap is not None:
        lines.append(f"capability (n = {cap['n']}): Cp {_number(cap['cp'], 4)}  Cpk {_number(cap['cpk'], 4)}"
                     f" (lower 95% bound {_number(cpk_lower, 4)})  Pp {_number(cap['pp'], 4)}"
                     f"  Ppk {_number(cap['ppk'], 4)}  Cpm {_number(cap['cpm'], 4)}")
        lines.append(f"  sigma within {_number(cap['sigma_within'])}, overall {_number(cap['sigma_overall'])}"
                     + (f"; {reason}" if reason else ""))
        lines += _distribution_lines(cap.get("distribution"), cap.get("expected_ppm"))
    out.write("\n".join(lines) + "\n")


def _distribution_lines(distribution: dict | None, ppm: dict | None) -> list[str]:
    """The distribution the capability is computed on, its test and the expected ppm (non-normal capability)."""
    if distribution is None:
        return []
    parameters = ", ".join(f"{key} {_number(value)}" for key, value in distribution["parameters"].items())
    test = distribution["anderson_darling"]
    lines = [f"  distribution {distribution['name']} ({parameters}), {distribution['method']} method; "
             f"Anderson-Darling A2 {_number(test['statistic'], 4)}, p {_number(test['p_value'], 3)}"]
    if ppm is not None:
        lines.append(f"  expected ppm: below LSL {_number(ppm['below'], 4)}, above USL {_number(ppm['above'], 4)}, "
                     f"total {_number(ppm['total'], 4)}")
    if distribution["warning"]:
        lines.append(f"  warning: {distribution['warning']}")
    return lines


def write_json(head: dict, points: Iterable[dict], out: TextIO) -> None:
    """json.dumps(analysis, indent=2) to the letter, written point by point."""
    text = json.dumps({**{k: v for k, v in head.items() if k != "capability"}, "points": [],
                       **({"capability": head["capability"]} if "capability" in head else {})},
                      indent=2, allow_nan=False)
    before, after = text.split('"points": []', 1)
    out.write(before + '"points": [')
    first = True
    for p in points:
        out.write(("\n" if first else ",\n") + textwrap.indent(json.dumps(p, indent=2, allow_nan=False), "    "))
        first = False
    out.write(("]" if first else "\n  ]") + after + "\n")
