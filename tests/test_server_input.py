"""Input at the edge of the line-side server: numbers past SQLite's int64, non-ASCII digits, doubled
headers, names the file system refuses, alert types of the gateway's own, control and bidi characters.
Each gets a precise 4xx or an `error` reply with a stable code, nothing is stored, and the log has no
traceback. A real server (Rig), real WebSocket clients, raw sockets."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from typing import Any

import pytest

from tests.test_server_harness import Rig, http_get, make_config, open_client, recv_json, run

BIG = 2**63  # one past SQLite's largest INTEGER
JSON = {"Content-Type": "application/json"}


def alert_count(rig: Rig) -> int:
    with sqlite3.connect(rig.config.storage.path) as db:
        return db.execute("SELECT COUNT(*) FROM alerts").fetchone()[0]


def no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [(r.name, r.getMessage()) for r in bad]


async def raw_http(port: int, target: str, headers: list[tuple[str, str]], method: str = "GET") -> tuple[int, bytes]:
    """One request with exactly these header lines (repeats kept), as bytes on a socket."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    writer.write(head.encode())
    raw = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    status_line, _, rest = raw.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


async def reply(ws: Any, message: dict[str, Any]) -> dict[str, Any]:
    """The reply to `message` (the broadcast of an alert it created or changed is skipped)."""
    await ws.send(json.dumps(message))
    while (answer := await recv_json(ws))["type"] == "alert":
        pass
    return answer


def test_numbers_past_int64_get_an_error_reply_not_1011(tmp_path, caplog):
    caplog.set_level(logging.INFO)

    async def body():
        async with Rig(make_config(tmp_path, rate=1e6, language="en")) as rig:
            ws = await open_client(rig.url)
            for message, field in [
                ({"type": "acknowledge_alert", "alert_id": BIG, "user": "kim"}, "alert_id"),
                ({"type": "comment_alert", "alert_id": BIG, "user": "kim", "comment": "c"}, "alert_id"),
                ({"type": "shelve_alert", "alert_id": BIG, "user": "kim", "duration_s": 60, "reason": "r"},
                 "alert_id"),
                ({"type": "resolve_alert", "alert_id": 10**30, "user": "kim", "cause": "c"}, "alert_id"),
                ({"type": "get_alerts", "before_id": BIG}, "before_id"),
                ({"type": "get_alerts", "product_id": BIG}, "product_id"),
                ({"type": "subscribe_product", "product_id": 10**400}, "product_id"),
                ({"type": "get_measurements", "product_id": 1, "limit": 10**400}, "limit"),
                ({"type": "shelve_alert", "alert_id": 1, "user": "kim", "duration_s": 10**400, "reason": "r"},
                 "duration_s"),
                ({"type": "create_alert", "product_id": 1, "alert_type": "MANUAL", "priority": 10**400,
                  "title": "t", "message": "m"}, "priority"),
                ({"type": "recalculate_limits", "product_id": 1, "characteristic": "diameter", "user": "kim",
                  "reason": "r", "from_subgroup": BIG}, "from_subgroup"),
                ({"type": "ping", "request_id": BIG}, "request_id"),
            ]:
                answer = await reply(ws, message)
                assert answer["type"] == "error" and answer["code"] == "invalid_field", (message, answer)
                assert repr(field) in answer["message"], answer
            await ws.send('{"type": "ping", "request_id": NaN}')  # Python's json reads NaN; it would echo as null
            assert (await recv_json(ws))["code"] == "invalid_field"
            largest = await reply(ws, {"type": "get_alerts", "before_id": BIG - 1, "request_id": BIG - 1})
            assert largest["type"] == "alerts" and largest["request_id"] == BIG - 1  # int64's largest is fine
            assert ws.close_code is None and alert_count(rig) == 0
            await ws.close()
    run(body)
    no_traceback(caplog)


def test_http_input_gets_a_precise_4xx_never_500(tmp_path, caplog):
    caplog.set_level(logging.INFO)

    async def body():
        async with Rig(make_config(tmp_path)) as rig:
            port = rig.server.port
            ws_path = "/ws/spc/notifications/"
            for target, status in [
                (f"{ws_path}?since=%C2%B2", 400),  # '²'.isdigit() is True
                (f"{ws_path}?since=%D9%A1", 400),  # Arabic-Indic one: int() reads it as 1
                (f"{ws_path}?since=" + "9" * 5000, 400),
                (f"{ws_path}?since={BIG}", 400),
                (f"{ws_path}?subscribe=%D9%A1", 400),
                (f"{ws_path}?subscribe=1," + "9" * 5000, 400),
                ("/ws/spc/product/%D9%A1/", 404),
                ("/api/spc/alerts/?before_id=%C2%B2", 400),
                (f"/api/spc/alerts/?before_id={BIG}", 400),
                ("/api/spc/alerts/?limit=" + "1" * 5000, 400),
                ("/api/spc/alerts/?product=%EF%BC%91", 400),  # fullwidth one
                ("/api/spc/products/%D9%A1/measurements/", 404),
                ("/api/spc/alerts/?" + "&".join(f"p{i}=1" for i in range(30)), 400),
                ("//[x/", 400),  # urlsplit: "Invalid IPv6 URL"
                ("/static/" + "a" * 300, 404),  # over the file system's 255 bytes
                ("/static/" + "%EA%B0%80" * 100, 404),  # 300 bytes of UTF-8 in 100 characters
                ("/static/" + "/".join(["b" * 250] * 20), 404),
            ]:
                got, payload = (await http_get(port, target))[0::2]
                assert got == status, (target[:80], got, payload[:200])
                assert payload.startswith(b"{") and json.loads(payload)["error"]
            for headers, what in [
                ([("Host", "127.0.0.1"), ("Host", "evil.example")], b"Host"),
                ([("Host", "127.0.0.1"), ("Origin", "http://127.0.0.1"), ("Origin", "http://evil.example")],
                 b"Origin"),
                ([("Host", "127.0.0.1"), ("Authorization", "Bearer a"), ("Authorization", "Bearer b")],
                 b"Authorization"),
            ]:
                for target in (ws_path, "/api/spc/products/", "/static/app.js"):
                    got, payload = await raw_http(port, target, headers)
                    assert got == 400 and what in payload, (target, headers, got, payload)
            got, payload = await raw_http(port, "/api/spc/alerts/", [("Host", "127.0.0.1"), ("Content-Length", "9" * 5000),
                                                                   ("Content-Type", "application/json")], "POST")
            assert got == 413, payload  # int() of 5,000 digits raised inside data_received
            ws = await open_client(rig.url, f"{ws_path}?since={rig.store.last_seq}")  # still serving
            await ws.close()
    run(body)
    no_traceback(caplog)


def test_operators_may_not_create_the_gateways_own_alert_types(tmp_path, caplog):
    caplog.set_level(logging.INFO)

    async def body():
        async with Rig(make_config(tmp_path, rate=1e6, language="en")) as rig:
            ws = await open_client(rig.url)
            for alert_type in ("STORAGE", "SOURCE_STALE"):
                answer = await reply(ws, {"type": "create_alert", "product_id": 1, "alert_type": alert_type,
                                          "priority": 5, "title": "Disk full", "message": "m", "request_id": 7})
                assert answer["type"] == "error" and answer["code"] == "invalid_field" and answer["request_id"] == 7
                assert f"{alert_type} alerts are raised by the gateway itself" in answer["message"]
                assert "MANUAL" in answer["message"]
                body_ = json.dumps({"product": 1, "alert_type": alert_type, "priority": 5, "title": "t",
                                    "message": "m"}).encode()
                status, _, payload = await http_get(rig.server.port, "/api/spc/alerts/", method="POST",
                                                    headers=JSON, body=body_)
                assert status == 400 and json.loads(payload)["code"] == "invalid_field", payload
                assert "raised by the gateway itself" in json.loads(payload)["error"]
            assert alert_count(rig) == 0
            made = await reply(ws, {"type": "create_alert", "product_id": 1, "alert_type": "MANUAL", "priority": 3,
                                    "title": "Check the gauge", "message": "m"})
            assert made["type"] == "result" and made["alert"]["alert_type"] == "MANUAL"
            await ws.close()
        (tmp_path / "ko").mkdir()
        async with Rig(make_config(tmp_path / "ko", rate=1e6)) as rig:
            ws = await open_client(rig.url)
            answer = await reply(ws, {"type": "create_alert", "product_id": 1, "alert_type": "STORAGE",
                                      "priority": 5, "title": "t", "message": "m"})
            assert "게이트웨이가 직접" in answer["message"]
            await ws.close()
    run(body)
    no_traceback(caplog)


BAD_CHARACTERS = {"NUL": "\x00", "ESC": "\x1b", "DEL": "\x7f", "RLO": "\u202e", "RLI": "\u2067",
                  "RLM": "\u200f", "ALM": "\u061c", "C1 CSI": "\x9b", "line separator": "\u2028",
                  "lone surrogate": "\ud800"}


def _alert_commands(alert_id: int) -> list[tuple[dict[str, Any], list[str]]]:
    """Each text-bearing command with its text fields (valid values filled in)."""
    return [
        ({"type": "create_alert", "product_id": 1, "alert_type": "MANUAL", "priority": 3, "title": "t",
          "message": "m", "user": "kim", "characteristic": "diameter"},
         ["title", "message", "user", "characteristic"]),
        ({"type": "acknowledge_alert", "alert_id": alert_id, "user": "kim", "comment": "c"}, ["user", "comment"]),
        ({"type": "comment_alert", "alert_id": alert_id, "user": "kim", "comment": "c"}, ["user", "comment"]),
        ({"type": "shelve_alert", "alert_id": alert_id, "user": "kim", "duration_s": 60, "reason": "r"},
         ["user", "reason"]),
        ({"type": "resolve_alert", "alert_id": alert_id, "user": "kim", "cause": "c", "action": "a"},
         ["user", "cause", "action"]),
        ({"type": "recalculate_limits", "product_id": 1, "characteristic": "diameter", "user": "kim",
          "reason": "r"}, ["characteristic", "user", "reason"]),
        ({"type": "get_measurements", "product_id": 1, "characteristic": "diameter"}, ["characteristic"]),
        ({"type": "ping", "request_id": "r"}, ["request_id"]),
    ]


def test_control_and_bidi_characters_in_texts_are_refused_naming_the_field(tmp_path, caplog):
    caplog.set_level(logging.INFO)

    async def body():
        async with Rig(make_config(tmp_path, rate=1e6, language="en")) as rig:
            alert = await rig.raise_out_of_spec()
            ws = await open_client(rig.url)
            with sqlite3.connect(rig.config.storage.path) as db:
                before = db.execute("SELECT COUNT(*) FROM alert_history").fetchone()[0]
            for message, fields in _alert_commands(alert["id"]):
                for field in fields:
                    for name, ch in BAD_CHARACTERS.items():
                        bad = {**message, field: f"OK{ch}12.5"}
                        answer = await reply(ws, bad)
                        assert answer["type"] == "error" and answer["code"] == "invalid_field", (field, name, answer)
                        assert repr(field) in answer["message"] and f"U+{ord(ch):04X}" in answer["message"]
            with sqlite3.connect(rig.config.storage.path) as db:
                assert db.execute("SELECT COUNT(*) FROM alert_history").fetchone()[0] == before
            assert alert_count(rig) == 1 and rig.recalculated == []
            # multi-line texts keep their newlines and tabs; one-line texts do not take them
            ok = await reply(ws, {"type": "comment_alert", "alert_id": alert["id"], "user": "kim",
                                  "comment": "line 1\r\nline 2\n\tdone"})
            assert ok["type"] == "result" and ok["alert"]["comment"] == "line 1\r\nline 2\n\tdone"
            for field in ("title", "user"):
                answer = await reply(ws, {"type": "create_alert", "product_id": 1, "alert_type": "MANUAL",
                                          "priority": 3, "title": "t", "message": "m", "user": "u",
                                          field: "two\nlines"})
                assert answer["code"] == "invalid_field" and repr(field) in answer["message"]
            # Korean, emoji, combining marks are text, not control characters
            fine = await reply(ws, {"type": "create_alert", "product_id": 1, "alert_type": "MANUAL", "priority": 3,
                                    "title": "치수 확인 ✅ é", "message": "게이지 교정\n다시 측정", "user": "김"})
            assert fine["type"] == "result" and fine["alert"]["title"] == "치수 확인 ✅ é"
            # the POST body is checked the same way
            status, _, payload = await http_get(rig.server.port, "/api/spc/alerts/", method="POST", headers=JSON,
                                                body=json.dumps({"product": 1, "alert_type": "MANUAL", "priority": 3,
                                                                 "title": "\u202eKO", "message": "m"}).encode())
            assert status == 400 and "'title'" in json.loads(payload)["error"]
            assert alert_count(rig) == 2
            await ws.close()
    run(body)
    no_traceback(caplog)


def test_every_text_has_a_length_limit(tmp_path):
    async def body():
        async with Rig(make_config(tmp_path, rate=1e6, language="en")) as rig:
            alert = await rig.raise_out_of_spec()
            ws = await open_client(rig.url)
            for message, fields in _alert_commands(alert["id"]):
                for field in fields:
                    answer = await reply(ws, {**message, field: "x" * 2001})
                    assert answer["type"] == "error" and answer["code"] == "too_large", (message["type"], field)
                    assert repr(field) in answer["message"] and "2001" in answer["message"]
            assert alert_count(rig) == 1
            await ws.close()
    run(body)
