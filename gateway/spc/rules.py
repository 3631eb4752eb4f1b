"""Run rules (Nelson tests 1-8, Western Electric rules 1-4), evaluated incrementally point by point.

Conventions (shared/contract/cli.md). z is a point's distance from the center line in standard errors
of the plotted statistic (sigma/sqrt(n_i)); point i is flagged by a test when the window of points ending
at i satisfies it; at the start of a series the count tests (5, 6) use the points there are; tests 3 and 4
look at the plotted values.

    1  point i                abs(z) > 3
    2  9 points               all z > 0, or all z < 0 (a point exactly on the center line breaks it)
    3  6 points               strictly increasing or strictly decreasing (equal neighbours break it)
    4  14 points              the 13 differences alternate in sign (a zero difference breaks it)
    5  3 points               >= 2 have z > 2 and point i has z > 2; or the same below -2
    6  5 points               >= 4 have z > 1 and point i has z > 1; or the same below -1
    7  15 points              all abs(z) <= 1
    8  8 points               all abs(z) > 1, with at least one above and one below

Western Electric numbers its rules 1..4: 1 = test 1, 2 = test 5, 3 = test 6, 4 = test 2 with 8 points.

`RuleWindow.push` keeps integer run counters and bit masks of the last few zone memberships, so each new
point costs a fixed, small amount of work and no history is ever re-scanned. The `reference_*`
functions at the end state each test plainly over a whole series (as R qcc does); the tests check
that both agree.
"""

from __future__ import annotations

from typing import Any, NamedTuple

NELSON_NAMES = {
    1: "One point beyond 3 sigma",
    2: "9 points in a row on the same side of the center line",
    3: "6 points in a row steadily increasing or decreasing",
    4: "14 points in a row alternating up and down",
    5: "2 out of 3 points beyond 2 sigma on the same side",
    6: "4 out of 5 points beyond 1 sigma on the same side",
    7: "15 points in a row within 1 sigma of the center line",
    8: "8 points in a row beyond 1 sigma, with points on both sides",
}
NELSON_NAMES_KO = {
    1: "1개 점이 3시그마 밖",
    2: "연속 9개 점이 중심선 한쪽",
    3: "연속 6개 점이 계속 증가 또는 감소",
    4: "연속 14개 점이 교대로 증감",
    5: "3개 중 2개 점이 같은 쪽 2시그마 밖",
    6: "5개 중 4개 점이 같은 쪽 1시그마 밖",
    7: "연속 15개 점이 1시그마 안",
    8: "연속 8개 점이 양쪽 1시그마 밖",
}
# Western Electric rule number -> (Nelson test it is evaluated as, run length of test 2)
WESTERN_ELECTRIC = {1: 1, 2: 5, 3: 6, 4: 2}
WE_RUN = 8
WE4_NAME = "8 points in a row on the same side of the center line"
WE4_NAME_KO = "연속 8개 점이 중심선 한쪽"
DISPERSION_NAME = "One point beyond the dispersion chart's control limits"
DISPERSION_NAME_KO = "1개 점이 산포 관리도 관리한계 밖"

# window length (points) of each Nelson test, used to name the points that form a pattern
WINDOW = {1: 1, 2: 9, 3: 6, 4: 14, 5: 3, 6: 5, 7: 15, 8: 8}
_POPCOUNT = tuple(bin(i).count("1") for i in range(256))


# z within this many standard errors of a whole number (the center line, the 1 and 2 sigma zone
# boundaries, a limit) is taken as exactly on it: a point on a limit is inside and z = 1 or 2 is not
# beyond, even when the rounding of the point's value, of the limit or of z itself put it a hair over
Z_TOLERANCE = 1e-9


def on_boundary(z: float) -> float:
    """z, or the whole number it is within Z_TOLERANCE of (only for |z| < 3.5: the boundaries are 0..3)."""
    if -3.5 < z < 3.5:
        whole = round(z)
        if -Z_TOLERANCE < z - whole < Z_TOLERANCE:
            return float(whole)
    return z


class Violation(NamedTuple):
    """A run rule that fired on a point; `points` are the subgroup numbers that form the pattern."""

    rule: int  # in the convention's own numbering (Western Electric 1..4 or Nelson 1..8)
    rule_name: str
    subgroup_number: int
    points: tuple[int, ...]
    chart: str  # "location" (Xbar / individuals) or "dispersion" (R / S / moving range)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"rule": self.rule, "rule_name": self.rule_name, "subgroup_number": self.subgroup_number,
                "points": list(self.points), "chart": self.chart}


class RuleSet:
    """Which tests are on, in which numbering: built from a convention and a list of its rule numbers."""

    __slots__ = ("convention", "tests", "enabled_mask", "run_length", "reported", "names", "names_ko")

    def __init__(self, convention: str, tests: tuple[int, ...] | list[int]):
        if convention not in ("nelson", "western_electric"):
            raise ValueError(f"unknown rule convention {convention!r} (allowed: nelson, western_electric)")
        allowed = WESTERN_ELECTRIC if convention == "western_electric" else NELSON_NAMES
        for t in tests:
            if t not in allowed:
                raise ValueError(f"no rule {t} in the {convention} set (allowed: 1..{len(allowed)})")
        self.convention = convention
        self.tests = tuple(sorted(set(tests)))
        self.reported: dict[int, int] = {}  # Nelson test -> number reported in this convention
        self.names: dict[int, str] = {}
        self.names_ko: dict[int, str] = {}
        for t in self.tests:
            nelson = WESTERN_ELECTRIC[t] if convention == "western_electric" else t
            self.reported[nelson] = t
            we4 = convention == "western_electric" and t == 4
            self.names[nelson] = WE4_NAME if we4 else NELSON_NAMES[nelson]
            self.names_ko[nelson] = WE4_NAME_KO if we4 else NELSON_NAMES_KO[nelson]
        self.enabled_mask = sum(1 << (t - 1) for t in self.reported)
        self.run_length = WE_RUN if convention == "western_electric" else WINDOW[2]

    @property
    def dispersion_test(self) -> bool:
        """Test 1 (beyond limits) is also applied to the dispersion chart when it is on."""
        return bool(self.enabled_mask & 1)


class RuleWindow:
    """The fixed-size memory of the run rules: counters and bit masks, O(1) per point."""

    __slots__ = ("count", "side", "trend", "alternating", "previous", "above2", "below2", "above1",
                 "below1", "inner", "outer", "run_length")

    def __init__(self, run_length: int = 9):
        self.run_length = run_length
        self.reset()

    def reset(self) -> None:
        """Forget the window (new limits start a new series)."""
        self.count = 0  # points pushed since the reset
        self.side = 0  # +k: the last k points above the center line, -k: below
        self.trend = 0  # +k: the last k differences increasing, -k: decreasing
        self.alternating = 0  # differences in a row that alternate in sign
        self.previous = 0.0  # last plotted value
        self.above2 = self.below2 = 0  # bit j: point i-j beyond +2 / -2 (3 bits kept)
        self.above1 = self.below1 = 0  # bit j: point i-j beyond +1 / -1 (8 bits kept)
        self.inner = 0  # points in a row with abs(z) <= 1
        self.outer = 0  # points in a row with abs(z) > 1

    def push(self, z: float, value: float) -> int:
        """Add one point; returns a bit mask of the Nelson tests that flag it (bit t-1 for test t)."""
        fired = 1 if (z > 3.0 or z < -3.0) else 0
        count = self.count + 1
        self.count = count
        # test 2: same side of the center line; exactly on it breaks the run
        side = self.side
        if z > 0.0:
            side = side + 1 if side > 0 else 1
        elif z < 0.0:
            side = side - 1 if side < 0 else -1
        else:
            side = 0
        self.side = side
        if side >= self.run_length or -side >= self.run_length:
            fired |= 2
        # tests 3 and 4: on the plotted values; a zero difference breaks both
        if count > 1:
            trend = self.trend
            difference = value - self.previous
            if difference > 0.0:
                self.alternating = alternating = self.alternating + 1 if trend < 0 else 1
                trend = trend + 1 if trend > 0 else 1
            elif difference < 0.0:
                self.alternating = alternating = self.alternating + 1 if trend > 0 else 1
                trend = trend - 1 if trend < 0 else -1
            else:
                self.alternating = alternating = trend = 0
            self.trend = trend
            if trend >= 5 or trend <= -5:
                fired |= 4
            if alternating >= 13:
                fired |= 8
        self.previous = value
        # zones: tests 5, 6, 7, 8
        if z > 1.0:
            above1 = self.above1 = ((self.above1 << 1) | 1) & 255
            below1 = self.below1 = (self.below1 << 1) & 255
            self.inner = 0
            outer = self.outer = self.outer + 1
            self.below2 = (self.below2 << 1) & 7
            if z > 2.0:
                above2 = self.above2 = ((self.above2 << 1) | 1) & 7
                if above2 != 1:  # bit 0 is this point: one more of the other two is beyond
                    fired |= 16
            else:
                self.above2 = (self.above2 << 1) & 7
            if _POPCOUNT[above1 & 31] >= 4:
                fired |= 32
        elif z < -1.0:
            above1 = self.above1 = (self.above1 << 1) & 255
            below1 = self.below1 = ((self.below1 << 1) | 1) & 255
            self.inner = 0
            outer = self.outer = self.outer + 1
            self.above2 = (self.above2 << 1) & 7
            if z < -2.0:
                below2 = self.below2 = ((self.below2 << 1) | 1) & 7
                if below2 != 1:
                    fired |= 16
            else:
                self.below2 = (self.below2 << 1) & 7
            if _POPCOUNT[below1 & 31] >= 4:
                fired |= 32
        else:
            self.above1 = (self.above1 << 1) & 255
            self.below1 = (self.below1 << 1) & 255
            self.above2 = (self.above2 << 1) & 7
            self.below2 = (self.below2 << 1) & 7
            self.outer = 0
            inner = self.inner = self.inner + 1
            if inner >= 15:
                fired |= 64
            return fired
        if outer >= 8 and above1 and below1:
            fired |= 128
        return fired

    def points(self, test: int, number: int, z: float) -> tuple[int, ...]:
        """Subgroup numbers forming the pattern of `test` that flagged point `number` (just pushed)."""
        if test == 5 or test == 6:
            if test == 5:
                bits = self.above2 if z > 0 else self.below2
            else:
                bits = (self.above1 if z > 0 else self.below1) & 31
            return tuple(number - j for j in range(WINDOW[test] - 1, -1, -1) if bits >> j & 1)
        size = self.run_length if test == 2 else WINDOW[test]
        return tuple(range(number - size + 1, number + 1))

    def to_state(self) -> list[Any]:
        """JSON-able state."""
        return [self.count, self.side, self.trend, self.alternating, self.previous, self.above2,
                self.below2, self.above1, self.below1, self.inner, self.outer]

    def restore(self, state: list[Any]) -> None:
        """Inverse of to_state."""
        (self.count, self.side, self.trend, self.alternating, self.previous, self.above2, self.below2,
         self.above1, self.below1, self.inner, self.outer) = state


# ---------------------------------------------------------------- the tests stated plainly (an oracle)

def beyond_limits(z: list[float], i: int) -> bool:
    """Test 1: point i more than 3 standard errors from the center line."""
    return abs(z[i]) > 3


def run_same_side(z: list[float], i: int, length: int = 9) -> bool:
    """Test 2 (Western Electric 4 with length 8): `length` points in a row on one side."""
    if i + 1 < length:
        return False
    window = z[i - length + 1:i + 1]
    return all(v > 0 for v in window) or all(v < 0 for v in window)


def trend(x: list[float], i: int, length: int = 6) -> bool:
    """Test 3: `length` points in a row strictly increasing or strictly decreasing."""
    if i + 1 < length:
        return False
    window = x[i - length + 1:i + 1]
    steps = [b - a for a, b in zip(window, window[1:], strict=False)]
    return all(s > 0 for s in steps) or all(s < 0 for s in steps)


def alternating(x: list[float], i: int, length: int = 14) -> bool:
    """Test 4: `length` points whose successive differences alternate in sign (none zero)."""
    if i + 1 < length:
        return False
    window = x[i - length + 1:i + 1]
    steps = [b - a for a, b in zip(window, window[1:], strict=False)]
    return all(s != 0 for s in steps) and all(a * b < 0 for a, b in zip(steps, steps[1:], strict=False))


def count_beyond(z: list[float], i: int, limit: float, needed: int, window: int) -> bool:
    """Tests 5 and 6: point i beyond `limit` and `needed` of the last `window` points beyond, same side."""
    recent = z[max(0, i - window + 1):i + 1]
    if z[i] > limit:
        return sum(v > limit for v in recent) >= needed
    if z[i] < -limit:
        return sum(v < -limit for v in recent) >= needed
    return False


def within_one_sigma(z: list[float], i: int, length: int = 15) -> bool:
    """Test 7: `length` points in a row with abs(z) <= 1."""
    return i + 1 >= length and all(abs(v) <= 1 for v in z[i - length + 1:i + 1])


def beyond_one_sigma_both_sides(z: list[float], i: int, length: int = 8) -> bool:
    """Test 8: `length` points in a row with abs(z) > 1, at least one above and one below."""
    if i + 1 < length:
        return False
    window = z[i - length + 1:i + 1]
    return all(abs(v) > 1 for v in window) and any(v > 1 for v in window) and any(v < -1 for v in window)


def reference_tests(z: list[float], x: list[float], i: int, run_length: int = 9) -> list[int]:
    """Nelson tests flagging point i of a whole series, each stated plainly."""
    checks = {
        1: beyond_limits(z, i), 2: run_same_side(z, i, run_length), 3: trend(x, i), 4: alternating(x, i),
        5: count_beyond(z, i, 2.0, 2, 3), 6: count_beyond(z, i, 1.0, 4, 5), 7: within_one_sigma(z, i),
        8: beyond_one_sigma_both_sides(z, i),
    }
    return [t for t, hit in checks.items() if hit]
