"""The producing gateway SIGKILLed while the plant broker is away: after a restart, nothing is lost."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_northbound_harness import Harness, Subscriber, check_delivery, persistent_broker

mosquitto = pytest.fixture(persistent_broker, name="mosquitto")


def test_sigkill_during_outage_then_restart_delivers_everything(tmp_path: Path, mosquitto):
    subscriber = Subscriber(mosquitto.port).start()
    subscriber.wait_for(lambda s: s.client.is_connected(), 5, "subscriber connected")
    db = tmp_path / "gateway.db"
    first = Harness(db, mosquitto.port, count=6000, rate=4000).start()
    second = Harness(db, mosquitto.port, count=6000, rate=4000)
    try:
        first.wait(lambda h: h.connected and h.committed >= 1000, 10, "live production")
        mosquitto.stop()
        first.wait(lambda h: h.committed >= 3500, 10, "production during the outage")
        first.kill()  # no clean shutdown: whatever was only in memory is gone
        assert 3500 <= first.committed < 6000
        second.start()  # the same SQLite file: it continues at the store's last seq
        second.wait(lambda h: h.committed >= 6000, 15, "the rest of the production")
        mosquitto.start()
        subscriber.wait_for(lambda s: len(s.seqs()) >= 6000, 20, "all 6,000 events")
        second.wait(lambda h: h.connected, 5, "the restarted gateway connected")
    finally:
        first.terminate()
        second.terminate()
        subscriber.stop()
    events = subscriber.events()
    check_delivery(events, range(1, 6001))
    # everything the restarted process sent was history
    assert all(m.body.get("replayed") for m in events if m.body["seq"] > 3500)
