"""Storage faults under the real daemon: the database folder deleted while MQTT readings flow, and a
full disk (a real tmpfs filled to the last page) while operators act on alerts."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import shutil
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets

from tests.conftest import free_port
from tests.daemon_helpers import Daemon, write_config
from tests.test_daemon import count, wait_for
from tests.test_mqtt_e2e import mqtt_config, publish
from tests.test_ws_e2e import receive_until


def healthz(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def post_alert(port: int, title: str) -> tuple[int, dict]:
    body = json.dumps({"product": 2, "alert_type": "MANUAL", "priority": 3, "title": title,
                       "message": "checked by hand", "user": "kim"}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/spc/alerts/", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def epochs(db: Path) -> set[str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return {json.loads(body)["epoch"] for (body,) in conn.execute("SELECT body FROM events")}


def storage_alerts(messages: list[dict]) -> list[dict]:
    return [m["alert"] for m in messages if m.get("type") == "alert" and m["alert"]["alert_type"] == "STORAGE"]


def test_a_deleted_database_folder_raises_storage_stops_acknowledging_and_starts_a_new_epoch(
        tmp_path: Path, mosquitto) -> None:
    http_port = free_port()
    folder = tmp_path / "data"
    db = folder / "spc.sqlite3"
    config = mqtt_config(tmp_path, mosquitto.port, http_port)
    config["storage"]["path"] = str(db)
    path = write_config(tmp_path, config)
    daemon = Daemon(path).start(wait_for_port=http_port)
    base_ts = time.time() - 3600

    async def scenario() -> tuple[list[dict], tuple[int, dict]]:
        async with websockets.connect(f"ws://127.0.0.1:{http_port}/ws/spc/notifications/") as screen:
            await receive_until(screen, lambda m: m[-1]["type"] == "alerts", 5)  # connection, snapshot
            shutil.rmtree(folder)  # what a cleanup script or a technician did on the line
            await asyncio.to_thread(publish, mosquitto.port, 200, 300, base_ts)
            messages = await receive_until(screen, lambda m: bool(storage_alerts(m)), 15)
            return messages, await asyncio.to_thread(healthz, http_port)

    try:
        wait_for(lambda: "subscribed" in daemon.log().lower() or db.exists(), 10, "the source to subscribe")
        time.sleep(0.5)
        publish(mosquitto.port, 0, 200, base_ts)
        wait_for(lambda: count(db, "select count(*) from measurements") == 200, 20, "the first 200 readings")
        (old_epoch,) = epochs(db)
        messages, (status, health) = asyncio.run(scenario())
        (alert,) = storage_alerts(messages)  # shown on the screen although it cannot be stored
        assert alert["status"] == "OPEN" and "deleted" in alert["texts"]["en"]["message"], alert
        assert status == 503 and health["ok"] is False, health
        assert health["store"]["failing"] and health["store"]["file_lost"], health["store"]
        assert "was deleted" in health["store"]["last_error"]
        assert not db.exists()  # nothing was quietly written into a new file at the old path
        daemon.stop()
        # not acknowledged: the broker redelivers all 300 to the restarted gateway, which stores them
        daemon = Daemon(path).start(wait_for_port=http_port)
        wait_for(lambda: db.exists() and count(db, "select count(*) from measurements") >= 300, 30,
                 "the 300 unacknowledged readings redelivered into the new database")
        time.sleep(1.0)
        assert count(db, "select count(*) from measurements") == 300
        assert count(db, "select count(distinct measured_at) from measurements") == 300
        new = epochs(db)
        assert len(new) == 1 and new != {old_epoch}  # seq starts again at 1, under a new epoch
        assert healthz(http_port)[0] in (200, 503) and not healthz(http_port)[1]["store"]["failing"]

        async def live_epoch() -> str:
            async with websockets.connect(f"ws://127.0.0.1:{http_port}/ws/spc/product/2/") as screen:
                await receive_until(screen, lambda m: m[-1]["type"] == "alerts", 5)
                await asyncio.to_thread(publish, mosquitto.port, 500, 1, base_ts)
                got = await receive_until(screen, lambda m: m[-1]["type"] == "measurement", 10)
                return got[-1]["epoch"]

        assert asyncio.run(live_epoch()) == next(iter(new))
    finally:
        daemon.stop()


@contextlib.contextmanager
def small_disk(where: Path, size: str = "4m") -> Iterator[Path]:
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"a small tmpfs cannot be mounted here (needs root): {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path) -> Path:
    """Fill the disk to its last page; returns the filler file."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        for block in (1 << 16, 4096, 512):
            try:
                while f.write(b"\0" * block):
                    pass
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    return filler


def daemon_on_disk(tmp_path: Path, db: Path, broker_port: int, http_port: int) -> Daemon:
    """The MQTT daemon with its database at `db` (on the small disk), once it listens."""
    config = mqtt_config(tmp_path, broker_port, http_port)
    config["storage"]["path"] = str(db)
    return Daemon(write_config(tmp_path, config)).start(wait_for_port=http_port)


def test_a_full_disk_shows_storage_on_screens_and_refuses_writes_at_once(tmp_path: Path, mosquitto) -> None:
    http_port = free_port()
    with small_disk(tmp_path / "disk") as disk:
        db = disk / "spc.sqlite3"
        daemon = daemon_on_disk(tmp_path, db, mosquitto.port, http_port)
        try:
            status, before = post_alert(http_port, "before the disk filled")
            assert status == 201, before

            async def scenario() -> dict:
                async with websockets.connect(f"ws://127.0.0.1:{http_port}/ws/spc/notifications/") as screen:
                    await receive_until(screen, lambda m: m[-1]["type"] == "alerts", 5)
                    filler = fill(disk)
                    # nothing else writes: this acknowledge is the first write to meet the full disk
                    started = time.monotonic()
                    await screen.send(json.dumps({"type": "acknowledge_alert", "alert_id": before["id"],
                                                  "user": "kim", "request_id": "ack-1"}))
                    got = await receive_until(screen, lambda m: m[-1].get("request_id") == "ack-1", 10)
                    first = got[-1]
                    first_s = time.monotonic() - started
                    got += await receive_until(screen, lambda m: bool(storage_alerts(m)), 10)
                    started = time.monotonic()
                    await screen.send(json.dumps({"type": "acknowledge_alert", "alert_id": before["id"],
                                                  "user": "kim", "request_id": "ack-2"}))
                    second = (await receive_until(screen, lambda m: m[-1].get("request_id") == "ack-2", 5))[-1]
                    second_s = time.monotonic() - started
                    await screen.send(json.dumps({"type": "recalculate_limits", "product_id": 2,
                                                  "characteristic": "runout", "user": "qe", "reason": "new gauge",
                                                  "request_id": "limits-1"}))
                    limits = (await receive_until(screen, lambda m: m[-1].get("request_id") == "limits-1", 5))[-1]
                    async with websockets.connect(f"ws://127.0.0.1:{http_port}/ws/spc/product/2/") as late:
                        # a screen that connects during the fault sees STORAGE in its snapshot
                        snapshot = (await receive_until(late, lambda m: m[-1]["type"] == "alerts", 5))[-1]
                    started = time.monotonic()
                    posted = await asyncio.to_thread(post_alert, http_port, "while the disk is full")
                    post_s = time.monotonic() - started
                    health = await asyncio.to_thread(healthz, http_port)
                    filler.unlink()  # the disk has room again
                    wait_for(lambda: not healthz(http_port)[1]["store"]["failing"], 15, "storage to work again")
                    await screen.send(json.dumps({"type": "acknowledge_alert", "alert_id": before["id"],
                                                  "user": "kim", "request_id": "ack-3"}))
                    third = (await receive_until(screen, lambda m: m[-1].get("request_id") == "ack-3", 10))[-1]
                    return {"first": first, "first_s": first_s, "alerts": storage_alerts(got), "second": second,
                            "second_s": second_s, "posted": posted, "post_s": post_s, "health": health,
                            "third": third, "snapshot": snapshot, "limits": limits}

            r = asyncio.run(scenario())
            assert r["first"]["type"] == "error" and r["first"]["code"] == "storage_unavailable", r["first"]
            assert r["first_s"] < 5.0, r  # answered, not left waiting for the disk
            (alert,) = r["alerts"]  # every screen sees STORAGE while the disk is still full
            assert alert["priority"] == 4 and "cannot be written" in alert["texts"]["en"]["message"], alert
            assert [a["alert_type"] for a in r["snapshot"]["alerts"]] == ["MANUAL", "STORAGE"], r["snapshot"]
            assert r["second"]["code"] == "storage_unavailable" and r["second_s"] < 1.0, r
            assert r["limits"]["type"] == "error" and r["limits"]["code"] == "storage_unavailable", r["limits"]
            (status, body) = r["posted"]
            assert status == 503 and body["code"] == "storage_unavailable" and r["post_s"] < 2.0, r
            assert r["health"][0] == 503 and r["health"][1]["store"]["failing"]
            assert r["third"]["type"] == "result" and r["third"]["alert"]["status"] == "ACKNOWLEDGED", r["third"]
            time.sleep(1.0)  # anything refused but kept would be written by now
        finally:
            daemon.stop()
        with sqlite3.connect(db) as conn:
            acts = [r[0] for r in conn.execute("SELECT action FROM alert_history WHERE alert_id = ? ORDER BY id",
                                               (before["id"],))]
            titles = [json.loads(r[0])["title"] for r in conn.execute("SELECT body FROM alerts")]
            storage = conn.execute("SELECT COUNT(*) FROM alerts WHERE alert_type = 'STORAGE'").fetchone()[0]
            recalculated = conn.execute("SELECT COUNT(*) FROM control_limits WHERE source = 'recalculated'").fetchone()[0]
        assert acts == ["create", "acknowledge"], acts  # the refused acknowledges were never applied
        assert "while the disk is full" not in titles, titles  # nor the refused POST
        assert storage == 1  # the STORAGE alert is stored once the disk has room
        assert recalculated == 0  # the refused recalculation was never stored, nor applied later


def numbered_storage(message: dict) -> bool:
    return bool(storage_alerts([message])) and "seq" in message


def test_the_early_storage_alert_has_no_seq_and_every_numbered_event_arrives_in_order(
        tmp_path: Path, mosquitto) -> None:
    """Readings wait in memory while the disk is full; STORAGE reaches the screens at once, but without a
    `seq`: the readings numbered before it reach them first after recovery, then STORAGE with its `seq`,
    so a screen's last `seq` never skips an event that was still waiting."""
    http_port = free_port()
    base_ts = time.time()
    with small_disk(tmp_path / "disk") as disk:
        db = disk / "spc.sqlite3"
        daemon = daemon_on_disk(tmp_path, db, mosquitto.port, http_port)
        try:
            wait_for(lambda: "subscribed" in daemon.log().lower() or db.exists(), 10, "the source to subscribe")
            time.sleep(0.5)
            publish(mosquitto.port, 0, 10, base_ts)
            wait_for(lambda: count(db, "select count(*) from measurements") == 10, 20, "the first readings")

            async def scenario() -> tuple[list[dict], list[dict], list[dict]]:
                async with websockets.connect(f"ws://127.0.0.1:{http_port}/ws/spc/product/2/") as screen:
                    await receive_until(screen, lambda m: m[-1]["type"] == "alerts", 5)
                    filler = fill(disk)
                    await asyncio.to_thread(publish, mosquitto.port, 100, 20, base_ts)  # they wait in memory
                    during = await receive_until(screen, lambda m: bool(storage_alerts(m)), 15)
                    filler.unlink()  # the disk has room again
                    after = await receive_until(screen, lambda m: numbered_storage(m[-1]), 20)
                async with websockets.connect(f"ws://127.0.0.1:{http_port}/ws/spc/product/2/?since=0") as late:
                    replay = await receive_until(late, lambda m: m[-1]["type"] == "replay_complete", 10)
                return during, after, replay

            during, after, replay = asyncio.run(scenario())
        finally:
            daemon.stop()
    (early,) = [m for m in during if m.get("type") == "alert"]
    assert early["alert"]["alert_type"] == "STORAGE" and "seq" not in early and "epoch" not in early, early
    numbered = [m["seq"] for m in during + after if "seq" in m]
    assert numbered == sorted(numbered) and len(set(numbered)) == len(numbered), numbered  # in order, once each
    stored = [m for m in after if m.get("type") == "alert" and "seq" in m]
    assert stored and stored[-1]["alert"]["id"] == early["alert"]["id"] and stored[-1]["epoch"]
    measurements = [m["seq"] for m in after if m.get("type") == "measurement"]
    assert len(measurements) == 20 and max(measurements) < stored[-1]["seq"], (measurements, stored[-1]["seq"])
    replayed = [m["seq"] for m in replay if "seq" in m and m["type"] not in ("connection",)]
    assert replayed == sorted(replayed) and stored[-1]["seq"] in replayed
