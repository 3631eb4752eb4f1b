"""The seed's client against the whole daemon, and a screen that survives a SIGKILL of the gateway."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import websockets

from gateway.outputs.websocket.hub import carries
from gateway.store.reads import events_after
from tests.conftest import free_port, wait_port
from tests.daemon_helpers import REPO, Daemon, write_config
from tests.test_daemon import part_counter_config


@pytest.fixture
def line(tmp_path: Path):
    """A Modbus PLC simulator whose gauge shifts, so alerts and violations come along."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gateway.sim.simulator", "--modbus-port", str(port),
                             "--gauges", "1", "--mean", "10.0", "--sigma", "0.05", "--seed", "3",
                             "--part-interval", "0.02", "--disturbance", "shift:40:400:4"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    yield port
    proc.kill()
    proc.wait(5)


async def receive_until(ws, predicate, timeout: float) -> list[dict]:
    messages: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            raw = await asyncio.wait_for(ws.recv(), max(0.05, deadline - time.monotonic()))
        except TimeoutError:
            break
        messages.append(json.loads(raw))
        if predicate(messages):
            break
    return messages


def test_seed_client_frames_against_the_daemon(tmp_path: Path, line: int) -> None:
    http_port = free_port()
    daemon = Daemon(write_config(tmp_path, part_counter_config(tmp_path, line, http_port)))
    daemon.start(wait_for_port=http_port)

    async def seed_client() -> None:
        async with websockets.connect(f"ws://127.0.0.1:{http_port}/ws/spc/notifications/") as ws:
            first = json.loads(await ws.recv())
            assert first["type"] == "connection"
            assert first["message"] == "SPC 실시간 알림에 연결되었습니다"
            assert "timestamp" in first
            snapshot = json.loads(await ws.recv())
            assert snapshot["type"] == "alerts" and snapshot["snapshot"] is True
            await ws.send(json.dumps({"type": "subscribe_product", "product_id": 1}))
            got = await receive_until(ws, lambda m: any(x["type"] == "subscribed" for x in m), 5)
            assert {"type": "subscribed", "product_id": 1}.items() <= next(
                x for x in got if x["type"] == "subscribed").items()
            # subscribed: every measurement of product 1 now arrives, with the seed's field names
            got = await receive_until(ws, lambda m: any(x["type"] == "measurement" for x in m), 10)
            measurement = next(x for x in got if x["type"] == "measurement")["measurement"]
            for field in ("id", "product_id", "product_code", "measurement_value", "sample_number",
                          "subgroup_number", "is_within_spec", "is_within_control", "measured_at"):
                assert field in measurement
            # the shift after part 40 raises alerts with the seed's fields
            got = await receive_until(ws, lambda m: any(x["type"] == "alert" for x in m), 20)
            alert = next(x for x in got if x["type"] == "alert")["alert"]
            for field in ("id", "product_code", "product_name", "alert_type", "priority", "title", "message",
                          "status", "created_at"):
                assert field in alert
            assert alert["product_code"] == "BOLT-M10" and alert["status"] == "OPEN"
            await ws.send(json.dumps({"type": "get_alerts", "limit": 10}))
            got = await receive_until(ws, lambda m: any(x["type"] == "alerts" for x in m), 5)
            reply = next(x for x in got if x["type"] == "alerts")
            assert 1 <= len(reply["alerts"]) <= 10 and reply["snapshot"] is False
            # history for a chart: measurements, the latest limits, and the points as charted with their rules
            await ws.send(json.dumps({"type": "get_measurements", "product_id": 1, "characteristic": "diameter",
                                      "limit": 500, "request_id": "h"}))
            got = await receive_until(ws, lambda m: any(x["type"] == "measurements" for x in m), 5)
            history = next(x for x in got if x["type"] == "measurements")
            assert history["request_id"] == "h" and history["measurements"]
            assert history["limits"]["center"] == 10.0 and history["limits"]["sigma"] == 0.1
            assert any(point["violations"] for point in history["subgroups"])  # the shift broke rules
            await ws.send(json.dumps({"type": "unsubscribe_product", "product_id": 1}))
            got = await receive_until(ws, lambda m: any(x["type"] == "unsubscribed" for x in m), 5)
            assert any(x["type"] == "unsubscribed" and x["product_id"] == 1 for x in got)
            # the seed's third way to make a test alert: its curl command, as written
            curl = await asyncio.create_subprocess_exec(
                "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                f"http://localhost:{http_port}/api/spc/alerts/", "-H", "Content-Type: application/json", "-d",
                '{"product": 1, "alert_type": "OUT_OF_SPEC", "priority": 4, "title": "Test Alert", '
                '"message": "WebSocket test alert"}', stdout=asyncio.subprocess.PIPE)
            assert (await curl.communicate())[0] == b"201"
            got = await receive_until(
                ws, lambda m: any(x["type"] == "alert" and x["alert"]["title"] == "Test Alert" for x in m), 5)
            assert any(x["type"] == "alert" and x["alert"]["message"] == "WebSocket test alert" for x in got)

    try:
        asyncio.run(seed_client())
    finally:
        assert daemon.stop() == 0


def test_a_screen_misses_nothing_across_a_sigkill_of_the_gateway(tmp_path: Path, line: int) -> None:
    """seq continues after the restart; a client resuming with ?since= gets every event, none twice."""
    http_port = free_port()
    path = write_config(tmp_path, part_counter_config(tmp_path, line, http_port))
    daemon = Daemon(path).start(wait_for_port=http_port)
    url = f"ws://127.0.0.1:{http_port}/ws/spc/product/1/"
    seqs: list[int] = []

    async def listen(ws, duration: float) -> None:
        for message in await receive_until(ws, lambda m: False, duration):
            if "seq" in message and message["type"] not in ("connection", "alerts", "replay_complete"):
                seqs.append(message["seq"])

    async def before() -> None:
        async with websockets.connect(url) as ws:
            await listen(ws, 2.0)

    async def after(since: int) -> dict:
        async with websockets.connect(f"{url}?since={since}") as ws:
            messages = await receive_until(ws, lambda m: any(x["type"] == "replay_complete" for x in m), 10)
            for message in messages:
                if "seq" in message and message["type"] not in ("connection", "alerts", "replay_complete"):
                    seqs.append(message["seq"])
            await listen(ws, 1.5)
            return next(x for x in messages if x["type"] == "replay_complete")

    try:
        asyncio.run(before())
        assert len(seqs) > 20
        last_seen = seqs[-1]
        daemon.kill()  # events committed after the client's last frame are on disk, unseen
        daemon = Daemon(path).start(wait_for_port=http_port)
        done = asyncio.run(after(last_seen))
        assert done["complete"] is True and done["from_seq"] == last_seen  # the events after from_seq
    finally:
        daemon.stop()
    # exactly the stored events the product endpoint carries, in order: a point of n = 1 and a firing
    # rule's repeats are stored but not sent (lean frames), so the seqs a screen sees are not contiguous
    with sqlite3.connect(tmp_path / "spc.sqlite3") as conn:
        stored = [e.seq for e in events_after(conn, seqs[0] - 1, 1_000_000) if carries(1, set(), e)]
    assert seqs == [s for s in stored if s <= seqs[-1]], "a gap or a repeat in what the screen saw"


def test_general_feed_resume_with_subscribe_replays_that_products_measurements(tmp_path: Path, line: int) -> None:
    """?since=SEQ&subscribe=1: the replay carries every measurement of product 1, not only notable ones."""
    http_port = free_port()
    daemon = Daemon(write_config(tmp_path, part_counter_config(tmp_path, line, http_port)))
    daemon.start(wait_for_port=http_port)
    base = f"ws://127.0.0.1:{http_port}/ws/spc/notifications/"
    samples: list[int] = []

    def keep(messages: list[dict]) -> None:
        samples.extend(m["measurement"]["sample_number"] for m in messages if m["type"] == "measurement")

    async def scenario() -> None:
        async with websockets.connect(f"{base}?subscribe=1") as ws:
            messages = await receive_until(ws, lambda m: sum(x["type"] == "measurement" for x in m) >= 10, 10)
            keep(messages)
            last_seq = max(m["seq"] for m in messages if "seq" in m and m["type"] != "connection")
        await asyncio.sleep(1.0)  # measurements go on while this screen is away
        async with websockets.connect(f"{base}?since={last_seq}&subscribe=1") as ws:
            keep(await receive_until(ws, lambda m: any(x["type"] == "replay_complete" for x in m), 10))
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(f"{base}?subscribe=1,99"):
                pass
        assert refused.value.response.status_code == 400

    try:
        asyncio.run(scenario())
    finally:
        daemon.stop()
    assert len(samples) > 20
    assert samples == list(range(samples[0], samples[0] + len(samples))), "a measurement was missed"
