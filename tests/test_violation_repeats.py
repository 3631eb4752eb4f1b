"""Which violations of a rule that keeps firing the screens get (gateway.alerts.repeats, lean frames)."""

from __future__ import annotations

from gateway.alerts.repeats import ViolationRepeats

KEY = (1, "diameter", "location", 7)


def test_a_run_is_sent_when_it_starts_then_once_a_second_with_its_count() -> None:
    repeats = ViolationRepeats(interval=1.0)
    sent = [(point, *repeats.note(KEY, point, 100.0 + (point - 15) * 0.01)) for point in range(15, 315)]
    assert sent[0] == (15, 1, True)
    updates = [(point, count) for point, count, to_screens in sent if to_screens]
    # 300 points over 3 s: the start and an update each second, counting every point of the run
    assert updates == [(15, 1), (115, 101), (215, 201)]
    assert [count for _, count, _ in sent] == list(range(1, 301))


def test_a_point_the_rule_did_not_fire_on_ends_the_run() -> None:
    repeats = ViolationRepeats(interval=1.0)
    assert repeats.note(KEY, 20, 0.0) == (1, True)
    assert repeats.note(KEY, 21, 0.1) == (2, False)
    assert repeats.note(KEY, 23, 0.2) == (1, True)  # point 22 broke the run: a new one starts, sent at once


def test_runs_are_kept_apart_per_characteristic_chart_and_rule() -> None:
    repeats = ViolationRepeats(interval=1.0)
    keys = [KEY, (1, "diameter", "dispersion", 7), (1, "diameter", "location", 2), (1, "length", "location", 7),
            (2, "diameter", "location", 7)]
    assert [repeats.note(key, 30, 5.0) for key in keys] == [(1, True)] * len(keys)
    assert [repeats.note(key, 31, 5.5) for key in keys] == [(2, False)] * len(keys)
