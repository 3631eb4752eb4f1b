"""Fuzzing the MQTT intake of the real daemon (issue 13): arbitrary and adversarial payloads through a real
mosquitto, each batch followed by a good reading that must be stored.

One daemon serves the whole run; each Hypothesis example publishes a handful of payloads to the gauges'
topics and then a known-good reading on a topic of its own, and waits until that reading is stored. At
the end: the daemon and its MQTT worker never died, the log holds no traceback and no ERROR, every
fuzzed message is accounted for (stored, refused with a reason, or dropped as a redelivered copy), and
what was stored is consistent (finite values, storable times, sample numbers without gaps).

SPC_FUZZ_EXAMPLES sets the number of examples (default 600: about 3,300 messages in 20-30 s here).

Finite values up to the largest float are generated too: they pass the intake (they are numbers), and
the pipeline refuses those beyond gateway.spc.numeric.MAX_MAGNITUDE before SPC sees them (squaring one
would overflow the statistics), telling the MQTT source, which counts them with the other refusals.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import os
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.conftest import free_port
from tests.daemon_helpers import Daemon, write_config
from tests.test_daemon import wait_for
from tests.test_mqtt_intake import (
    JSON_TOPIC,
    PLAIN_TOPIC,
    Gauge,
    good,
    healthz_any,
    intake_config,
    rows,
    source_health,
    stored,
)

pytestmark = pytest.mark.timeout(180)

EXAMPLES = int(os.environ.get("SPC_FUZZ_EXAMPLES", "600"))
LARGEST = 1.7976931348623157e308  # the largest finite magnitude generated
ZONE = "Asia/Seoul"
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)

# Number forms Python's float() takes and a gauge never sends, and forms nobody takes.
ODD_NUMBERS = ["1_0", "1_000.5", "١٠", "٣.٥", "１０", "߁߀", "১০", "𝟏𝟎", "²", "NaN", "nan", "-nan", "Infinity",
               "-inf", "inf", "+Infinity", "1e309", "-1e309", "1e-400", "4.9e-324",
               "0x10", "0b1", "0o7", "1e", "e1", "", " ", "+", "-", ".", "1.2.3", "--1", "1 0", "10\x00",
               "\ufeff10", "\u300010", "10\u2028", "1,5", "٫5", "½", "Ⅻ", "true", "null", "1j"]
STRANGE_TIMES = [1e300, -1e300, -1e15, 1e15, 1e11, 1e11 + 1, -1, 0, -62135596800, -62135596801, 253402300799,
                 253402300800, 253402300799.9999999, 253402300799999, 4e18, -4e18, 2**63, -(2**63), 5e-324,
                 "9999-12-31T23:59:59-23:59", "9999-12-31T20:00:00Z", "9999-12-31T23:59:59.999999",
                 "0001-01-01T00:00:00+23:59", "0001-01-01T00:00:00", "0001-01-01T08:59:59+00:00",
                 "2025-02-30T00:00:00", "2025-03-01T25:00:00", "2025-W53-8", "2025-W01-1", "20250301T0800",
                 "T", "", "١٧٤٠٧٨٣٦٠٠", "1740783600", " 1740783600123 ", "1_740_783_600", "1e300", "NaN"]


def _json_text(value: object) -> str:
    return json.dumps(value, allow_nan=True, ensure_ascii=False)


def _tame(x: float) -> float:
    """Finite floats folded into +-LARGEST (see the module's docstring); NaN and infinities kept."""
    return x if not math.isfinite(x) or abs(x) <= LARGEST else math.copysign(LARGEST, x)


floats = st.floats(allow_nan=True, allow_infinity=True).map(_tame)
# Digit strings: 309 digits and more are beyond a float (refused as not finite); 300-308 are out of range.
digits = st.integers(300, 5000)


# A JSON value as text: numbers of every size (also integers beyond what float() or str() take),
# NaN and Infinity tokens, strings in odd number forms, and values of the wrong type.
json_values = st.one_of(
    floats.map(_json_text),
    st.integers(-(10**150), 10**150).map(str),
    digits.map(lambda n: "-" * (n % 2) + "9" * n),
    st.sampled_from(ODD_NUMBERS).map(_json_text),
    st.text(max_size=20).map(_json_text),
    st.sampled_from(["null", "true", "false", "[]", "{}", "[1.5]", '{"value": 1}', "NaN", "-Infinity"]),
)
timestamps = st.one_of(
    st.sampled_from(STRANGE_TIMES).map(_json_text),
    json_values,
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31, 23, 59, 59),
                 timezones=st.timezones()).map(lambda d: _json_text(d.isoformat())),
    st.floats(min_value=-1e13, max_value=1e16).map(_json_text),
)
# Plausible values half of the time, so that what follows the value (the timestamp) gets read too.
reading_documents = st.builds(
    lambda value, ts, shape: shape.format(value=value, ts=ts),
    st.one_of(json_values, st.floats(-1e6, 1e6).map(_json_text)), timestamps,
    st.sampled_from(['{{"reading": {{"value": {value}, "ts": {ts}}}}}', '{{"reading": {{"value": {value}}}}}',
                     '{{"reading": {{"ts": {ts}}}}}', '{{"reading": [{value}, {ts}]}}', "{value}",
                     '{{"reading": {{"value": {value}, "ts": {ts}, "value": {ts}}}}}']),
)

# The gauge's own shape with a plausible value and a strange time: what item 5 of the issue is about.
timed_readings = st.builds(lambda value, ts: f'{{"reading": {{"value": {value}, "ts": {ts}}}}}',
                           st.floats(-1e6, 1e6).map(_json_text), timestamps)


def _nested(depth: int, kind: int) -> str:
    if kind == 0:
        return "[" * depth + "]" * depth
    if kind == 1:
        return '{"reading":' * depth + "1" + "}" * depth
    return '{"reading": {"value": ' + "[" * depth + "1" + "]" * depth + ', "ts": 1740783600}}'


payloads = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=60).map(str.encode),
    st.sampled_from(ODD_NUMBERS).map(str.encode),
    floats.map(lambda x: repr(x).encode()),
    digits.map(lambda n: b"1" + b"0" * n),
    st.builds(_nested, st.integers(1, 10_800), st.integers(0, 2)).map(str.encode),
    reading_documents.map(str.encode),
    timed_readings.map(str.encode),
    st.sampled_from([b"1" * (64 * 1024), b"1" * (64 * 1024 + 1), b" " * 70_000, b"\xff" * 1000, b"\x00"]),
)
messages = st.lists(st.tuples(st.sampled_from([JSON_TOPIC, PLAIN_TOPIC]), payloads), min_size=1, max_size=10)


def _storable(ts: float, zone: ZoneInfo) -> bool:
    try:
        dt.datetime.fromtimestamp(ts, zone)
    except (OverflowError, ValueError, OSError):
        return False
    return True


def test_fuzzed_payloads_never_stop_the_daemon(tmp_path: Path, mosquitto) -> None:
    http_port = free_port()
    db = tmp_path / "spc.sqlite3"
    config = intake_config(tmp_path, mosquitto.port, http_port, timezone=ZONE)
    daemon = Daemon(write_config(tmp_path, config)).start(wait_for_port=http_port)
    gauge: Gauge | None = None
    counter = itertools.count()
    published = 0
    base = time.time() - 86_400
    try:
        wait_for(lambda: source_health(http_port)["state"] == "connected", 15, "the MQTT source to connect")
        time.sleep(0.3)  # SUBACK
        worker = source_health(http_port)["worker_pid"]
        gauge = Gauge(mosquitto.port)

        # No shrinking: the daemon carries its state from one example to the next (a dead worker stays
        # dead), so a smaller example run later proves nothing, and each try would wait out the timeout.
        # The failing batch is in the failure message instead.
        @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=NO_SHRINK,
                  suppress_health_check=list(HealthCheck))
        @given(messages)
        def one_batch(batch: list[tuple[str, bytes]]) -> None:
            nonlocal published
            i = next(counter)
            assert gauge is not None
            gauge.send([*batch, good(i, base)])
            published += len(batch)
            wait_for(lambda: len(stored(db, "diameter")) == i + 1, 10,
                     f"the good reading after {[(t, p[:80]) for t, p in batch]}; log:\n{daemon.log()[-3000:]}",
                     interval=0.005)

        started = time.monotonic()
        one_batch()
        elapsed = time.monotonic() - started
    finally:
        if gauge is not None:
            gauge.close()
    try:
        assert daemon.proc is not None and daemon.proc.poll() is None, "the daemon died"
        report = healthz_any(http_port)  # still serving
        health = report["sources"]["line-broker"]
        assert health["worker_pid"] == worker and health["reconnects"] == 0, "the MQTT worker died"
        log = daemon.log()
        assert "Traceback" not in log and " ERROR " not in log, log[-5000:]

        # Every fuzzed message is accounted for: stored, refused with a reason, or a redelivered copy.
        fuzzed = len(stored(db, "runout")) + len(stored(db, "length"))
        refused = health["bad_readings"]
        assert sum(health["malformed_reasons"].values()) == refused
        assert fuzzed + refused + report["pipeline"]["duplicates"] == published, (fuzzed, refused, report)

        # What was stored is consistent: SPC saw exactly the stored readings.
        zone = ZoneInfo(ZONE)
        for name in ("runout", "length", "diameter"):
            got = stored(db, name)
            assert [n for _, _, n in got] == list(range(1, len(got) + 1)), f"{name}: phantom samples"
            assert all(math.isfinite(v) and _storable(at, zone) for v, at, _ in got), name
        assert not rows(db, "SELECT 1 FROM control_limits WHERE NOT (center BETWEEN -1e308 AND 1e308)")
    finally:
        daemon.stop()
    print(f"\n{published} fuzzed messages and {next(counter)} good readings in {elapsed:.1f} s; "
          f"refused {refused} ({health['malformed_reasons']}), stored {fuzzed}, "
          f"duplicates {report['pipeline']['duplicates']}")


KINDS = {"too large", "not UTF-8", "not JSON", "missing field", "not a number", "not finite", "bad timestamp"}


@settings(max_examples=3000, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(payloads, st.booleans())
def test_the_parser_refuses_with_a_named_reason_and_nothing_else(payload: bytes, json_address: bool) -> None:
    """The worker's parser alone, fast: a reading with finite numbers, or MalformedPayload with one of
    the named reasons. ("unreadable", the worker's catch-all, would mean a gap in the parser.)"""
    from gateway.sources.mqtt.settings import MqttAddress
    from gateway.sources.mqtt.worker import MalformedPayload, parse_payload

    address = MqttAddress("t", value="reading.value", timestamp="reading.ts") if json_address else MqttAddress("t")
    try:
        value, at, stamp = parse_payload(payload, address)
    except MalformedPayload as refused:
        assert refused.kind in KINDS and str(refused)
        return
    assert math.isfinite(value)
    assert (at is None) == (stamp is None) == (not json_address)
    assert at is None or math.isfinite(at)
