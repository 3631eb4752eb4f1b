"""`spc-gateway analyze CSV`: offline SPC analysis of a file, with the same engine the daemon runs.

Two passes over the subgroups: the first learns the limits (from the first --phase1 subgroups, or all)
and the capability; the second evaluates every subgroup against those limits, as the daemon would once
they are frozen. Output per shared/contract/cli.md.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from gateway.core.model import finite_or_none
from gateway.spc.capability import CapabilityResult
from gateway.spc.charts.attribute import AttributeChart
from gateway.spc.charts.base import ChartParameters
from gateway.spc.charts.registry import CHARTS, DEFAULT_CHART_RULE, chart_named, default_chart
from gateway.spc.charts.weighted import TimeWeighted
from gateway.spc.distributions import CHOICES as DISTRIBUTIONS
from gateway.spc.engine import CharacteristicEngine, EngineSettings
from gateway.spc.numeric import MAX_MAGNITUDE, SMALLEST_NORMAL, reading_problem
from gateway.spc.points import SubgroupPoint
from gateway.tools.analyze_attribute import DEFAULT_RULES, SampleError, analyze_samples, read_samples
from gateway.tools.analyze_input import MAX_SUBGROUP_SIZE, InputError, Subgroup, read_subgroups
from gateway.tools.analyze_output import write_json, write_table

NEGATIVE_NUMBER = re.compile(r"^-([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$")
NUMBER_OPTIONS = frozenset({"--center", "--sigma", "--lsl", "--usl", "--target", "--lambda", "--L", "--k", "--h"})


def option_number(text: str) -> float:
    """A number option in the forms a CSV cell may take ('.' decimal point, ASCII digits; 'nan'/'inf'
    are refused later with their own reason): float() alone also reads Arabic-Indic and full-width digits."""
    if _OPTION_NUMBER.fullmatch(text.strip()) is None and text.strip().lower() not in ("nan", "inf", "-inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (like 9.5, -6e1)")
    return float(text)


_OPTION_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def join_negative_numbers(argv: list[str]) -> list[str]:
    """`--lsl -6e1` -> `--lsl=-6e1`, so argparse reads the value instead of taking it for an option.

    argparse's own negative-number pattern knows no exponent; rewriting the arguments keeps to its
    public behaviour (`--opt=value` is always a value) instead of replacing its private matcher.
    """
    joined: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] in NUMBER_OPTIONS and i + 1 < len(argv) and NEGATIVE_NUMBER.match(argv[i + 1]):
            joined.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
            continue
        joined.append(argv[i])
        i += 1
    return joined


class UsageError(Exception):
    """The options do not fit together (exit 2)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `analyze` (shared/contract/cli.md)."""
    parser.add_argument("csv", metavar="CSV", help="file with a header; column `value`, optional `subgroup`")
    parser.add_argument("--subgroup-size", type=int, default=1, metavar="N",
                        help="without a `subgroup` column: cut consecutive rows into subgroups of N (default 1)")
    parser.add_argument("--chart", choices=list(CHARTS),
                        help=f"default: {DEFAULT_CHART_RULE}")
    parser.add_argument("--rules", metavar="nelson|western_electric|LIST",
                        help="rule set (default nelson; 1,2,3,4 on attribute charts); LIST of Nelson test "
                             "numbers like 1,2,5")
    parser.add_argument("--phase1", type=int, metavar="K", help="estimate limits from the first K subgroups")
    parser.add_argument("--center", type=option_number, metavar="C", help="fixed limits: the process mean")
    parser.add_argument("--sigma", type=option_number, metavar="S",
                        help="fixed limits: the standard deviation of individual values")
    parser.add_argument("--lsl", type=option_number, metavar="X", help="lower specification limit")
    parser.add_argument("--usl", type=option_number, metavar="Y", help="upper specification limit")
    parser.add_argument("--target", type=option_number, metavar="T", help="target (for Cpm; default the midpoint)")
    parser.add_argument("--lambda", dest="lam", type=option_number, metavar="W",
                        help="ewma: weight of the newest subgroup mean, in (0, 1] (default 0.2)")
    parser.add_argument("--L", dest="L", type=option_number, metavar="L",
                        help="ewma: limits L standard errors of the EWMA wide (default 3)")
    parser.add_argument("--k", dest="k", type=option_number, metavar="K",
                        help="cusum: reference value in standard errors of the mean (default 0.5)")
    parser.add_argument("--h", dest="h", type=option_number, metavar="H",
                        help="cusum: decision interval in standard errors of the mean (default 5)")
    parser.add_argument("--fir", action="store_true", help="cusum: start both sums at H/2 (fast initial response)")
    parser.add_argument("--distribution", choices=DISTRIBUTIONS, default="normal",
                        help="capability on this distribution (percentile method unless normal; auto picks by "
                             "Anderson-Darling); default normal")
    parser.add_argument("--format", choices=("json", "table"), default="json", help="output (default json)")


def parse_rules(text: str) -> tuple[str, tuple[int, ...]]:
    """`nelson`, `western_electric` or a list of Nelson test numbers -> (convention, tests)."""
    if text in ("nelson", "western_electric"):
        return text, ((1, 2, 3, 4, 5, 6, 7, 8) if text == "nelson" else (1, 2, 3, 4))
    try:
        tests = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise UsageError(f"--rules {text!r}: use nelson, western_electric or a list like 1,2,5") from None
    if not tests or any(not 1 <= t <= 8 for t in tests):
        raise UsageError(f"--rules {text!r}: Nelson tests are numbered 1 to 8")
    return "nelson", tests


def _feed(engine: CharacteristicEngine, values: list[float]) -> SubgroupPoint:
    """One subgroup through the engine, closed early when it is shorter than the engine's size."""
    result = None
    for v in values:
        result = engine.ingest(v, 0.0)
    if engine.open_n:
        result = engine.close_subgroup(0.0)
    point = result.subgroup if result is not None else None
    assert point is not None  # a subgroup has values, and the last of them closes it
    return point


def analyze(subgroups: list[tuple[str, list[float]]], **options) -> dict:
    """The analysis as the JSON-able dict of cli.md (options as the command line's, by name)."""
    return analyze_full(subgroups, **options)[0]


def analyze_full(subgroups: list[tuple[str, list[float]]], **options) -> tuple[dict, CapabilityResult | None]:
    """The analysis dict and the full capability result (with Bissell's bound and the reason for nulls)."""
    head, points, capability = analyze_stream(subgroups, **options)
    out = {**head, "points": list(points)}
    if "capability" in head:  # after the points, as it always was
        out["capability"] = out.pop("capability")
    return out, capability


def analyze_stream(subgroups: Sequence[Subgroup], *, chart: str | None = None,
                   rules: str = "nelson", phase1: int | None = None, center: float | None = None,
                   sigma: float | None = None, lsl: float | None = None, usl: float | None = None,
                   target: float | None = None, lam: float | None = None, L: float | None = None,
                   k: float | None = None, h: float | None = None, fir: bool = False,
                   distribution: str = "normal") -> tuple[dict, Iterator[dict], CapabilityResult | None]:
    """The analysis without its points, the points one by one, and the capability result.

    The points are evaluated as they are taken: a file of millions of rows is written point by point
    instead of holding every charted point, its dict and its JSON text at once (gigabytes)."""
    convention, tests = parse_rules(rules)
    if (center is None) != (sigma is None):
        raise UsageError("--center and --sigma go together (fixed limits need both)")
    if center is not None and phase1 is not None:
        raise UsageError("--phase1 estimates limits; it cannot be combined with fixed --center/--sigma")
    if sigma is not None and not sigma > 0:
        raise UsageError(f"--sigma must be positive, not {sigma}")
    if lsl is not None and usl is not None and not lsl < usl:
        raise UsageError(f"--lsl {lsl} must be below --usl {usl}")
    if phase1 is not None and phase1 < 1:
        raise UsageError(f"--phase1 {phase1}: at least 1 subgroup")
    for option, number in (("--center", center), ("--lsl", lsl), ("--usl", usl), ("--target", target)):
        if number is not None and reading_problem(number) is not None:
            raise UsageError(f"{option} {number!r}: give a finite number within +-{MAX_MAGNITUDE:g}")
    if sigma is not None and not SMALLEST_NORMAL <= sigma <= MAX_MAGNITUDE:
        raise UsageError(f"--sigma {sigma!r}: give a positive number from {SMALLEST_NORMAL:.4g} to "
                         f"{MAX_MAGNITUDE:g}")
    sizes = Counter(len(v) for _, v in subgroups)
    nominal = max(sizes, key=lambda n: (sizes[n], n))  # the most common size; ties: the larger
    largest = max(sizes)
    try:
        chart_type = default_chart(nominal) if chart is None else chart_named(chart)
    except ValueError as e:  # UnknownChart: only from a caller in code, the command line offers CHARTS
        raise InputError(str(e)) from None
    parameters = _parameters(chart_type, {"--lambda": lam, "--L": L, "--k": k, "--h": h, "--fir": fir})
    weighted = chart_type if isinstance(chart_type, TimeWeighted) else None
    if weighted is not None and len(sizes) > 1:
        odd = next(label for label, v in subgroups if len(v) != nominal)
        raise InputError(f"an {chart_type.name} chart needs subgroups of one size: subgroup {odd!r} has "
                         f"{len(subgroups[[lb for lb, _ in subgroups].index(odd)][1])} values, most have {nominal}")
    if chart_type.individuals and largest > 1:
        raise InputError(f"an {chart_type.name} chart takes one value per subgroup; subgroup "
                         f"{next(label for label, v in subgroups if len(v) > 1)!r} has more")
    phases = len(subgroups) if phase1 is None else phase1
    if phases > len(subgroups):
        raise InputError(f"--phase1 {phase1}: the file has only {len(subgroups)} subgroups")
    if (chart_type.individuals or weighted is not None and largest == 1) and center is None \
            and phases < chart_type.min_baseline:
        # sigma of an individuals chart comes from moving ranges: one value has none
        raise InputError(f"--phase1 {phase1}: an {chart_type.name} chart estimates sigma from moving ranges "
                         "and needs at least 2 subgroups" if phase1 is not None else
                         f"the file has only 1 value: an {chart_type.name} chart needs at least 2 to estimate limits "
                         "(or give fixed limits with --center and --sigma)")
    common: dict[str, Any] = {"chart": chart_type.name, "subgroup_size": largest, "lsl": lsl, "usl": usl,
                              "target": target, "convention": convention, "tests": tests, "parameters": parameters}
    k = phases
    try:
        # pass 1: learn the limits (unless fixed) and the capability from the phase-I subgroups
        learner = CharacteristicEngine(EngineSettings(
            **common, baseline_subgroups=k if center is None else len(subgroups) + 1,
            capability_window=k, capability_every=len(subgroups) + 1, distribution=distribution))
        learned = None
        for i in range(k):
            _feed(learner, subgroups[i][1])
        if center is None:
            learned = learner.limits
            if learned is None or learned.source != "learned":
                raise InputError(f"{k} subgroups are too few to estimate limits")
            center, sigma = learned.center, learned.sigma
            if not sigma > 0.0:
                raise InputError(f"the first {k} subgroups show no variation: sigma is zero, "
                                 "so no control limits can be drawn")
            if sigma < SMALLEST_NORMAL:
                # subnormal: 1/sigma overflows and every z is infinite or NaN
                raise InputError(f"the variation of the first {k} subgroups is too small to chart: sigma "
                                 f"{sigma!r} is below {SMALLEST_NORMAL:.4g}, the smallest normal float; "
                                 "give the values in a smaller unit")
        capability = learner.capability_now()
        del learner  # its baseline and capability window hold every phase-I subgroup
        # pass 2: every subgroup against the frozen limits
        evaluator = CharacteristicEngine(EngineSettings(**{**common, "lsl": None, "usl": None},
                                                        center=center, sigma=sigma))
    except ValueError as e:  # EstimateError, or settings the engine refuses: never a traceback
        raise InputError(str(e)) from None
    assert center is not None and sigma is not None  # both given (the settings check it) or learned
    location = chart_type.point_limits(center, sigma, nominal)
    if weighted is not None:
        limits: dict[str, Any] = {"center": center, "lcl": None, "ucl": None, "sigma": sigma,
                                  **weighted.overall_limits(center, sigma, nominal, parameters)}
        dispersion: dict[str, Any] | None = None  # time-weighted charts draw no dispersion chart
    else:
        limits = {"center": center, "lcl": location.lcl, "ucl": location.ucl, "sigma": sigma}
        dispersion = {"chart": chart_type.dispersion_name, "center": location.dispersion_center,
                      "lcl": location.dispersion_lcl, "ucl": location.dispersion_ucl}
    head = _clean({"chart": chart_type.name, "subgroups": len(subgroups), "limits": limits,
                   "dispersion": dispersion})
    if (lsl is not None or usl is not None) and capability is not None:  # a spec gives a capability
        head["capability"] = _clean(_capability_json(capability))

    def points() -> Iterator[dict]:
        for label, values in subgroups:
            p = _feed(evaluator, values)
            point = {"subgroup": label, "n": p.n,
                     "value": finite_or_none(p.mean if weighted is None else p.plotted),
                     "dispersion": None if p.dispersion is None else finite_or_none(p.dispersion),
                     "violations": list(p.violations), "dispersion_violations": list(p.dispersion_violations),
                     "center": _float(p.center), "lcl": _float(p.lcl), "ucl": _float(p.ucl)}
            if p.cusum_upper is not None:
                point.update(cusum_upper=_float(p.cusum_upper), cusum_lower=_float(p.cusum_lower),
                             run_upper=p.run_upper, run_lower=p.run_lower)
            yield point

    return head, points(), capability


def _float(x: float | None) -> float | None:
    return None if x is None else finite_or_none(x)


# the options of the time-weighted charts -> ChartParameters fields
PARAMETER_OPTIONS = {"--lambda": "lam", "--L": "L", "--k": "k", "--h": "h", "--fir": "fir"}


def _parameters(chart_type: Any, given: dict[str, Any]) -> ChartParameters:
    """The chart's parameters from the options given (option -> value, None or False when not given);
    UsageError for an option the chart does not take, InputError naming one out of its range."""
    chosen = {}
    for option, value in given.items():
        if value is None or value is False:
            continue
        field = PARAMETER_OPTIONS[option]
        if field not in chart_type.parameters:
            owners = " or ".join(c.name for c in CHARTS.values() if field in c.parameters)
            raise UsageError(f"{option} applies to --chart {owners}, not {chart_type.name}")
        chosen[field] = value
    parameters = ChartParameters()._replace(**chosen)
    for field, reason in parameters.problems().items():
        option = next(o for o, f in PARAMETER_OPTIONS.items() if f == field)
        raise InputError(f"{option} {getattr(parameters, field)!r}: {reason}")
    return parameters


def _capability_json(c: CapabilityResult) -> dict:
    return {"cp": c.cp, "cpk": c.cpk, "pp": c.pp, "ppk": c.ppk, "cpm": c.cpm, "cpk_lower": c.cpk_lower,
            "sigma_within": c.sigma_within, "sigma_overall": c.sigma_overall, "n": c.n,
            "distribution": c.distribution, "expected_ppm": c.expected_ppm}


def _clean(value):
    """Plain JSON numbers only: NaN/infinity become null."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, float):
        return finite_or_none(value)
    return value


def run(args: argparse.Namespace) -> int:
    """Entry point of `spc-gateway analyze`: 0 done, 1 bad input, 2 bad usage."""
    chart = chart_named(args.chart) if args.chart is not None else None
    if isinstance(chart, AttributeChart):
        return _run_attribute(args, chart)
    if args.rules is None:
        args.rules = "nelson"
    try:
        if args.subgroup_size < 1 or args.subgroup_size > MAX_SUBGROUP_SIZE:
            raise UsageError(f"--subgroup-size {args.subgroup_size} is outside 1..{MAX_SUBGROUP_SIZE}")
        parse_rules(args.rules)
        try:
            with open(args.csv, newline="", encoding="utf-8-sig") as f:
                subgroups = read_subgroups(f, args.csv, args.subgroup_size)
        except OSError as e:
            raise InputError(f"{args.csv}: cannot read the file: {e.strerror}") from None
        except UnicodeDecodeError as e:
            raise InputError(f"{args.csv}: not a UTF-8 text file ({e.reason})") from None
        options = {"chart": args.chart, "rules": args.rules, "phase1": args.phase1, "center": args.center,
                   "sigma": args.sigma, "lsl": args.lsl, "usl": args.usl, "target": args.target,
                   "lam": args.lam, "L": args.L, "k": args.k, "h": args.h, "fir": args.fir,
                   "distribution": args.distribution}
        head, points, capability = analyze_stream(subgroups, **options)
    except (UsageError, InputError) as e:
        return _refused(e)
    if args.format == "table":
        extra: dict[str, Any] = {"cpk_lower": capability.cpk_lower, "reason": capability.reason} if capability else {}
        write_table(head, points, sys.stdout, **extra)
    else:
        write_json(head, points, sys.stdout)
    return 0


def _refused(error: UsageError | InputError) -> int:
    """Print why `analyze` stops; the exit status: 2 for a usage error, 1 for input that is wrong."""
    if isinstance(error, UsageError):
        print(f"spc-gateway analyze: error: {error}", file=sys.stderr)
        return 2
    print(f"spc-gateway analyze: {error}", file=sys.stderr)
    return 1


def _run_attribute(args: argparse.Namespace, chart: AttributeChart) -> int:
    """`analyze --chart p|np|c|u|laney_p|laney_u`: counts per sample (analyze_attribute.py)."""
    try:
        convention, tests = parse_rules(args.rules or DEFAULT_RULES)
        for option, given in (("--sigma", args.sigma), ("--lsl", args.lsl), ("--usl", args.usl),
                              ("--target", args.target)):
            if given is not None:
                raise UsageError(f"{option} does not apply to a {chart.name} chart (--center is the known "
                                 f"{'fraction nonconforming p-bar' if chart.defectives else 'rate c-bar or u-bar'})")
        _parameters(chart, {"--lambda": args.lam, "--L": args.L, "--k": args.k, "--h": args.h, "--fir": args.fir})
        if args.distribution != "normal":
            raise UsageError(f"--distribution applies to measured values, not to the counts of a {chart.name} chart")
        if args.phase1 is not None and args.phase1 < 1:
            raise UsageError(f"--phase1 {args.phase1}: at least 1 sample")
        if args.center is not None and (args.center < 0 or chart.defectives and args.center > 1):
            raise UsageError(f"--center {args.center!r}: a {'fraction from 0 to 1' if chart.defectives else 'rate >= 0'}")
        try:
            with open(args.csv, newline="", encoding="utf-8-sig") as f:
                samples = read_samples(f, args.csv, chart)
        except OSError as e:
            raise InputError(f"{args.csv}: cannot read the file: {e.strerror}") from None
        except UnicodeDecodeError as e:
            raise InputError(f"{args.csv}: not a UTF-8 text file ({e.reason})") from None
        except SampleError as e:
            raise InputError(str(e)) from None
        try:
            head, points = analyze_samples(samples, chart, convention=convention, tests=tests,
                                           phase1=args.phase1, center=args.center)
        except ValueError as e:  # SampleError, EstimateError, settings the engine refuses
            raise InputError(str(e)) from None
    except (UsageError, InputError) as e:
        return _refused(e)
    if args.format == "table":
        write_table(head, points, sys.stdout)
    else:
        write_json(head, points, sys.stdout)
    return 0
