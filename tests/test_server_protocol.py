"""The seed's frames and every message and error code of the protocol, with real WebSocket clients."""

from __future__ import annotations

import json
import sqlite3

import pytest
from websockets.exceptions import ConnectionClosed

from tests.test_server_harness import Rig, make_config, open_client, recv_json, recv_type, request, run


def test_seed_client_connects_subscribes_and_gets_alerts(tmp_path):
    """RealtimeNotifications.tsx's frames, exactly as the seed writes them, and the seed's replies."""
    async def body():
        async with Rig(make_config(tmp_path)) as rig:
            await rig.raise_out_of_spec()
            ws = await open_client(rig.url)
            hello, snapshot = ws.hello, ws.snapshot
            assert hello["type"] == "connection" and hello["message"] == "SPC 실시간 알림에 연결되었습니다"
            assert hello["protocol"] == 1 and hello["gateway"] == "LINE-T" and hello["role"] == "operator"
            assert hello["timestamp"].endswith("+09:00") and hello["seq"] == rig.store.last_seq
            assert snapshot["type"] == "alerts" and snapshot["snapshot"] is True
            (alert,) = snapshot["alerts"]
            for key in ("id", "product_id", "product_code", "product_name", "characteristic", "alert_type",
                        "priority", "title", "message", "status", "created_at"):
                assert key in alert
            assert (alert["product_code"], alert["product_name"], alert["status"]) == ("BOLT-M10", "M10 볼트", "OPEN")

            await ws.send('{"type": "subscribe_product", "product_id": 1}')
            assert (await recv_json(ws))["type"] == "subscribed"
            await rig.measurements([10.01])  # an ordinary reading: only subscribers of product 1 get it
            message = await recv_type(ws, "measurement")
            assert message["measurement"]["measurement_value"] == 10.01
            assert set(message["measurement"]) >= {"id", "product_id", "product_code", "measurement_value",
                                                   "sample_number", "subgroup_number", "is_within_spec",
                                                   "is_within_control", "measured_at"}
            await ws.send('{"type": "unsubscribe_product", "product_id": 1}')
            reply = await recv_json(ws)
            assert reply == {"type": "unsubscribed", "product_id": 1, "timestamp": reply["timestamp"]}
            await ws.send('{"type": "get_alerts", "limit": 10}')
            reply = await recv_json(ws)
            assert reply["type"] == "alerts" and reply["snapshot"] is False and len(reply["alerts"]) == 1
            seq_before = rig.store.last_seq
            await rig.measurements([10.02])  # unsubscribed and not notable: not on the general feed
            await rig.measurements([11.0], notable=True)  # out of spec: on the general feed
            message = await recv_type(ws, "measurement")
            assert message["measurement"]["measurement_value"] == 11.0 and message["seq"] == seq_before + 2
            await ws.close()
    run(body)


def test_every_reply_and_error_code(tmp_path):
    """Each client message gets its documented reply; each bad one its error code; request_id echoed."""
    async def body():
        async with Rig(make_config(tmp_path)) as rig:
            ws = await open_client(rig.url)
            cases = [
                ("not json", "invalid_json"),
                ("[1, 2]", "invalid_json"),
                (json.dumps({"type": "launch_rocket", "request_id": "r1"}), "unknown_type"),
                (json.dumps({"request_id": 5}), "invalid_field"),
                (json.dumps({"type": "subscribe_product", "request_id": "r2"}), "invalid_field"),
                (json.dumps({"type": "subscribe_product", "product_id": "1", "request_id": "r3"}), "invalid_field"),
                (json.dumps({"type": "subscribe_product", "product_id": True}), "invalid_field"),
                (json.dumps({"type": "subscribe_product", "product_id": 99, "request_id": 4}), "not_found"),
                (json.dumps({"type": "get_alerts", "limit": 501}), "invalid_field"),
                (json.dumps({"type": "get_alerts", "limit": 5.5}), "invalid_field"),
                (json.dumps({"type": "get_alerts", "status": "CLOSED"}), "invalid_field"),
                (json.dumps({"type": "get_measurements", "product_id": 1, "characteristic": "width"}), "not_found"),
                (json.dumps({"type": "acknowledge_alert", "alert_id": 999, "user": "kim", "request_id": "a"}),
                 "not_found"),
                (json.dumps({"type": "acknowledge_alert", "alert_id": 1}), "invalid_field"),
                (json.dumps({"type": "shelve_alert", "alert_id": 1, "user": "kim", "duration_s": 8 * 3600 + 1,
                             "reason": "x"}), "invalid_field"),
                (json.dumps({"type": "create_alert", "product_id": 1, "alert_type": "OUT_OF_SPEC", "priority": 6,
                             "title": "t", "message": "m"}), "invalid_field"),
                (json.dumps({"type": "create_alert", "product_id": 1, "alert_type": "OUT_OF_SPEC", "priority": 4,
                             "title": "t" * 201, "message": "m"}), "too_large"),
                (json.dumps({"type": "ping", "request_id": {"nested": 1}}), "invalid_field"),
            ]
            for frame, code in cases:
                await ws.send(frame)
                reply = await recv_json(ws)
                assert reply["type"] == "error" and reply["code"] == code, (frame, reply)
                assert reply["message"] and reply["timestamp"]
                sent = json.loads(frame) if frame.startswith("{") else {}
                if isinstance(sent.get("request_id"), str | int) and not isinstance(sent.get("request_id"), bool):
                    assert reply["request_id"] == sent["request_id"]
            await ws.send(b"\x00binary")
            assert (await recv_json(ws))["code"] == "invalid_json"
            pong = await request(ws, {"type": "ping", "request_id": 42})
            assert pong["type"] == "pong" and pong["request_id"] == 42 and set(pong) == {"type", "request_id",
                                                                                      "timestamp"}
            reply = await request(ws, {"type": "get_measurements", "product_id": 1, "limit": 5, "request_id": "m"})
            assert reply["type"] == "measurements" and reply["characteristic"] == "diameter"
            assert reply["limits"]["spec"] == {"lsl": 9.5, "target": 10.0, "usl": 10.5}
            reply = await request(ws, {"type": "recalculate_limits", "product_id": 1, "characteristic": "diameter",
                                       "user": "qe", "reason": "new tool", "request_id": "rl"})
            assert reply["type"] == "result" and reply["success"] is True and reply["limits"]["version"] == 7
            assert rig.recalculated == [(1, "diameter", "qe", "new tool", None, 25)]
            # nothing changed in the database by all the refused frames
            with sqlite3.connect(rig.config.storage.path) as db:
                assert db.execute("SELECT COUNT(*) FROM alerts").fetchone()[0] == 0
                assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0
            await ws.close()
    run(body)


def test_alert_lifecycle_is_stored_and_broadcast(tmp_path):
    """acknowledge / comment / shelve / resolve change SQLite and reach every client as `alert`."""
    async def body():
        async with Rig(make_config(tmp_path)) as rig:
            alert = await rig.raise_out_of_spec()
            operator, watcher = await open_client(rig.url), await open_client(rig.url, "/ws/spc/product/1/")
            aid = alert["id"]
            reply = await request(operator, {"type": "acknowledge_alert", "alert_id": aid, "user": "kim",
                                             "comment": "checking the gauge", "request_id": "ack"}, "result")
            assert reply["alert"]["status"] == "ACKNOWLEDGED" and reply["alert"]["acknowledged_by"] == "kim"
            seen = await recv_type(watcher, "alert")
            assert seen["alert"]["status"] == "ACKNOWLEDGED" and seen["seq"] == rig.store.last_seq
            reply = await request(operator, {"type": "acknowledge_alert", "alert_id": aid, "user": "lee"})
            assert reply["type"] == "error" and reply["code"] == "invalid_field"
            reply = await request(operator, {"type": "comment_alert", "alert_id": aid, "user": "kim",
                                             "comment": "gauge recalibrated"}, "result")
            assert reply["alert"]["comment"] == "gauge recalibrated"
            assert (await recv_type(watcher, "alert"))["alert"]["comment"] == "gauge recalibrated"
            reply = await request(operator, {"type": "shelve_alert", "alert_id": aid, "user": "kim",
                                             "duration_s": 0.3, "reason": "tool change"}, "result")
            assert reply["alert"]["status"] == "SHELVED" and reply["alert"]["shelved_until"]
            back = await recv_type(watcher, "alert")
            assert back["alert"]["status"] == "SHELVED"
            back = await recv_type(watcher, "alert", timeout=3)  # the server ends the shelve by itself
            assert back["alert"]["status"] == "ACKNOWLEDGED" and "shelved_until" not in back["alert"]
            reply = await request(operator, {"type": "resolve_alert", "alert_id": aid, "user": "park",
                                             "cause": "worn insert", "action": "insert replaced"}, "result")
            assert reply["alert"]["status"] == "RESOLVED" and reply["alert"]["action"] == "insert replaced"
            assert (await recv_type(watcher, "alert"))["alert"]["status"] == "RESOLVED"
            with sqlite3.connect(rig.config.storage.path) as db:
                status = db.execute("SELECT status FROM alerts WHERE id = ?", (aid,)).fetchone()[0]
                steps = db.execute("SELECT who, action, from_status, to_status FROM alert_history "
                                   "WHERE alert_id = ? ORDER BY id", (aid,)).fetchall()
            assert status == "RESOLVED"
            assert steps == [("gateway", "raise", None, "OPEN"), ("kim", "acknowledge", "OPEN", "ACKNOWLEDGED"),
                             ("kim", "comment", "ACKNOWLEDGED", "ACKNOWLEDGED"),
                             ("kim", "shelve", "ACKNOWLEDGED", "SHELVED"),
                             ("gateway", "shelve_expired", "SHELVED", "ACKNOWLEDGED"),
                             ("park", "resolve", "ACKNOWLEDGED", "RESOLVED")]
            # the seed's POST /api/spc/alerts/ body, sent as create_alert
            reply = await request(operator, {"type": "create_alert", "product": 1, "alert_type": "OUT_OF_SPEC",
                                             "priority": 4, "title": "Test Alert",
                                             "message": "WebSocket test alert"}, "result")
            assert reply["alert"]["title"] == "Test Alert" and reply["alert"]["status"] == "OPEN"
            assert (await recv_type(watcher, "alert"))["alert"]["id"] == reply["alert"]["id"]
            for ws in (operator, watcher):
                await ws.close()
    run(body)


def test_viewer_may_read_but_not_write(tmp_path):
    async def body():
        config = make_config(tmp_path, tokens={"viewer": "view-secret", "operator": "op-secret"})
        async with Rig(config) as rig:
            alert = await rig.raise_out_of_spec()
            viewer = await open_client(rig.url, "/ws/spc/notifications/?token=view-secret")
            assert viewer.hello["role"] == "viewer"
            for message in ({"type": "acknowledge_alert", "alert_id": alert["id"], "user": "x"},
                            {"type": "create_alert", "product_id": 1, "alert_type": "OUT_OF_SPEC", "priority": 1,
                             "title": "t", "message": "m"}):
                reply = await request(viewer, {**message, "request_id": "w"})
                assert reply["type"] == "error" and reply["code"] == "unauthorized" and reply["request_id"] == "w"
            assert (await request(viewer, {"type": "get_alerts"}))["alerts"][0]["status"] == "OPEN"
            operator = await open_client(rig.url, subprotocols=["bearer.op-secret"])
            assert operator.hello["role"] == "operator" and operator.subprotocol == "bearer.op-secret"
            await viewer.close()
            await operator.close()
    run(body)


def test_flood_gets_rate_limited_then_cut(tmp_path):
    async def body():
        async with Rig(make_config(tmp_path, rate=5.0)) as rig:
            ws = await open_client(rig.url)
            for i in range(40):
                await ws.send(json.dumps({"type": "ping", "request_id": i}))
            codes = [(await recv_json(ws)).get("code") for _ in range(40)]
            assert codes.count(None) == 10 and codes.count("rate_limited") == 30  # burst of 2 x rate
            with pytest.raises(ConnectionClosed) as closed:
                for _ in range(400):
                    await ws.send('{"type": "ping"}')
                while True:
                    await recv_json(ws)
            assert closed.value.rcvd.code == 1008
    run(body)
