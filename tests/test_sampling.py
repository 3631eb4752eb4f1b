"""One reading per part: the sampler decides when a polled or pushed value is a new part."""

from __future__ import annotations

import math

import pytest

from gateway.sources.sampling import Sampler


def test_on_change_takes_the_first_reading_and_then_only_changes() -> None:
    s = Sampler("on_change")
    polls = [10.0, 10.0, 10.0, 10.1, 10.1, 10.0, 10.0]
    assert [s.accept(v) for v in polls] == [True, False, False, True, False, True, False]


def test_on_change_counts_a_new_source_timestamp_even_with_an_equal_value() -> None:
    s = Sampler("on_change")
    assert s.accept(5.0, source_time=100.0)
    assert not s.accept(5.0, source_time=100.0)
    assert s.accept(5.0, source_time=101.0)  # two equal parts, told apart by their timestamps


def test_on_change_sees_a_stuck_nan_once_not_every_poll() -> None:
    s = Sampler("on_change")
    assert [s.accept(v) for v in (1.0, math.nan, math.nan, 1.0)] == [True, True, False, True]


@pytest.mark.parametrize("mode", ["every_poll", "per_message"])
def test_every_poll_and_per_message_take_everything(mode: str) -> None:
    s = Sampler(mode)
    assert all(s.accept(3.0) for _ in range(5))


def test_part_counter_two_equal_consecutive_parts_both_count() -> None:
    s = Sampler("part_counter")
    assert not s.accept(9.99, counter=41)  # first look: only learns where the counter stands
    assert not s.accept(9.99, counter=41)  # polled again, same part
    assert s.accept(10.02, counter=42)
    assert not s.accept(10.02, counter=42)
    assert s.accept(10.02, counter=43)  # same value, new part: counts
    assert s.missed == 0


def test_part_counter_jump_counts_missed_parts() -> None:
    s = Sampler("part_counter")
    s.accept(1.0, counter=10)
    assert s.accept(1.0, counter=14)
    assert s.last_missed == 3 and s.missed == 3
    assert s.accept(1.0, counter=15)
    assert s.last_missed == 0 and s.missed == 3


def test_part_counter_going_back_is_a_reset_and_one_part() -> None:
    s = Sampler("part_counter")
    s.accept(1.0, counter=500)
    assert s.accept(1.0, counter=0)
    assert s.counter_reset and s.counter_resets == 1 and s.missed == 0


def test_part_counter_needs_the_counter_and_modes_are_checked() -> None:
    with pytest.raises(ValueError, match="counter"):
        Sampler("part_counter").accept(1.0)
    with pytest.raises(ValueError, match="unknown sampling mode"):
        Sampler("sometimes")
