"""Counter pairs without I/O (gateway.sources.counting): samples, wraps and restarts."""

from __future__ import annotations

import pytest

from gateway.sources.counting import PairCounter, PairSample, increase


def test_increase_wraps_only_from_the_top_to_the_bottom_of_the_data_type() -> None:
    assert increase(10, 15, 16) == (5, False)
    assert increase(65_530, 4, 16) == (10, True)  # uint16 wrapped: 6 parts to 65,535, 0, then 4 more
    assert increase(32_767, -32_768, 16) == (1, False)  # int16 past its top: seen as 16 unsigned bits
    assert increase(-3, 2, 16) == (5, True)  # int16 from -3 (65,533) through -1 and 0 to 2
    assert increase(40_000, 0, 16) == (None, False)  # from the middle of the range: a restart
    assert increase(65_530, 9_000, 16) == (None, False)  # to the middle: a restart
    assert increase(4_294_967_290, 3, 32) == (9, True)
    assert increase(70_000, 3, 32) == (None, False)  # a uint32 at 70,000 is far from its top
    assert increase(5, 3, None) == (None, False)  # no width (a float node): every decrease is a restart


def test_sample_every_n_parts_counts_the_bad_increase_among_both() -> None:
    pair = PairCounter(sample_every=50, every=None)
    assert pair.accept(1000, 20, 0.0) is None  # the first look learns where the counters stand
    assert pair.accept(1030, 22, 1.0) is None  # 32 parts
    assert pair.accept(1046, 23, 2.0) is None  # 49
    assert pair.accept(1047, 25, 3.0) == PairSample(count=5, n=52, started=0.0, ended=3.0)  # overshoot kept
    assert pair.filling == (0, 0)
    assert pair.accept(1097, 25, 4.0) == PairSample(0, 50, 3.0, 4.0)


def test_every_period_ends_a_sample_and_an_empty_period_makes_none() -> None:
    pair = PairCounter(sample_every=None, every=60.0)
    pair.accept(0, 0, 0.0)
    assert pair.accept(10, 1, 30.0) is None
    assert pair.accept(20, 2, 60.0) == PairSample(2, 22, 0.0, 60.0)
    assert pair.accept(20, 2, 120.0) is None  # the line stood: no sample of n = 0
    assert pair.accept(25, 3, 150.0) is None
    assert pair.accept(30, 3, 180.0) == PairSample(1, 11, 120.0, 180.0)


def test_a_counter_that_goes_back_is_a_restart_never_a_negative_sample() -> None:
    pair = PairCounter(sample_every=10, every=None)
    pair.accept(100, 5, 0.0)
    assert pair.accept(104, 6, 1.0) is None
    assert pair.accept(0, 0, 2.0) is None  # PLC restart: the partial sample (5 parts) is dropped
    assert pair.restarted and pair.dropped == 5 and pair.restarts == 1
    assert pair.accept(8, 2, 3.0) == PairSample(2, 10, 2.0, 3.0)  # counted from the new values
    assert not pair.restarted
    assert pair.accept(8, 1, 4.0) is None  # only the bad counter went back: a restart all the same
    assert pair.restarts == 2


def test_a_wrap_is_counted_as_parts() -> None:
    pair = PairCounter(sample_every=16, every=None)
    pair.accept(65_530, 100, 0.0, 16, 16)
    sample = pair.accept(5, 105, 1.0, 16, 16)  # good wrapped: 11 parts; bad +5
    assert sample == PairSample(5, 11 + 5, 0.0, 1.0) and pair.wraps == 1 and pair.restarts == 0


def test_exactly_one_way_to_end_a_sample() -> None:
    with pytest.raises(ValueError):
        PairCounter(None, None)
    with pytest.raises(ValueError):
        PairCounter(5, 60.0)


def test_a_counter_pair_is_stale_after_three_periods_or_never_by_parts() -> None:
    from gateway.config import Characteristic
    from gateway.sources.counter_pair import CounterPair
    from gateway.sources.modbus.settings import ModbusAddress, ModbusSettings
    from gateway.sources.registry import SOURCES

    plugin, settings = SOURCES["modbus"], ModbusSettings("plc", host="10.0.0.1", poll_interval=0.5)
    counters = ModbusAddress(200, data_type="uint32"), ModbusAddress(202, data_type="uint32")
    hourly = Characteristic("a", "plc", address=CounterPair(*counters, every=3600.0), chart="p")
    by_parts = Characteristic("b", "plc", address=CounterPair(*counters, sample_every=50), chart="p")
    assert plugin.stale_after(settings, hourly) == 3 * 3600.0
    assert plugin.stale_after(settings, by_parts) is None  # a stopped line makes no samples
    assert plugin.stale_after(settings, Characteristic("c", "plc", address=counters[0])) == 5.0
