"""The seed's `POST /api/spc/alerts/`: its curl command as written, the checks a write gets, and bodies
that must change nothing. A real server (Rig), real curl, real sockets."""

from __future__ import annotations

import asyncio
import json
import sqlite3

from tests.test_server_harness import Rig, http_get, make_config, open_client, recv_type, run

SEED_BODY = {"product": 1, "alert_type": "OUT_OF_SPEC", "priority": 4, "title": "Test Alert",
             "message": "WebSocket test alert"}
JSON = {"Content-Type": "application/json"}


def alert_count(rig: Rig) -> int:
    with sqlite3.connect(rig.config.storage.path) as db:
        return db.execute("SELECT COUNT(*) FROM alerts").fetchone()[0]


def test_the_seeds_curl_command_creates_an_alert_every_screen_gets(tmp_path):
    async def body():
        async with Rig(make_config(tmp_path)) as rig:
            screen = await open_client(rig.url)
            # the seed's command, byte for byte apart from the port
            curl = await asyncio.create_subprocess_exec(
                "curl", "-sS", "-w", "\n%{http_code}", "-X", "POST",
                f"http://localhost:{rig.server.port}/api/spc/alerts/", "-H", "Content-Type: application/json",
                "-d", '{\n    "product": 1,\n    "alert_type": "OUT_OF_SPEC",\n    "priority": 4,\n'
                      '    "title": "Test Alert",\n    "message": "WebSocket test alert"\n  }',
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(curl.communicate(), 10)
            payload, _, status = out.decode().rpartition("\n")
            assert status == "201", (out, err)
            created = json.loads(payload)
            assert created["title"] == "Test Alert" and created["status"] == "OPEN" and created["product_id"] == 1
            pushed = await recv_type(screen, "alert")
            assert pushed["alert"]["id"] == created["id"] and pushed["alert"]["message"] == "WebSocket test alert"
            history = await rig.store.alert_history(created["id"])
            assert history[0]["action"] == "create" and "127.0.0.1:" in json.dumps(history[0])
            await screen.close()
    run(body)


def test_a_post_that_cannot_be_used_gets_a_precise_error_and_changes_nothing(tmp_path):
    async def body():
        async with Rig(make_config(tmp_path, origins=("http://line3-hmi.local:8000",))) as rig:
            port = rig.server.port
            good = json.dumps(SEED_BODY).encode()
            cases = [
                (JSON, b"{not json", 400, "not JSON"),
                (JSON, b"[1, 2]", 400, "list"),
                (JSON, json.dumps({**SEED_BODY, "priority": 9}).encode(), 400, "priority"),
                (JSON, json.dumps({**SEED_BODY, "product": 42}).encode(), 400, "42"),
                (JSON, json.dumps({k: v for k, v in SEED_BODY.items() if k != "title"}).encode(), 400, "title"),
                (JSON, json.dumps({**SEED_BODY, "alert_type": "COFFEE"}).encode(), 400, "alert_type"),
                ({"Content-Type": "text/plain"}, good, 415, "application/json"),
                ({**JSON, "Origin": "http://evil.example"}, good, 403, "Origin"),
                (JSON, json.dumps({**SEED_BODY, "message": "x" * 70_000}).encode(), 413, "larger"),
            ]
            for headers, data, status, needle in cases:
                got, _, payload = await http_get(port, "/api/spc/alerts/", method="POST", headers=headers, body=data)
                assert got == status and needle in payload.decode(), (status, needle, payload)
            for headers, status in (({**JSON, "Transfer-Encoding": "chunked"}, 411),
                                    ({**JSON, "Content-Length": "12abc"}, 400)):
                got, _, payload = await http_get(port, "/api/spc/alerts/", method="POST", headers=headers)
                assert got == status, (headers, payload)
            got, headers, _ = await http_get(port, "/api/spc/alerts/", method="PUT", headers=JSON, body=good)
            assert got == 405 and headers["allow"] == "GET, POST"
            assert alert_count(rig) == 0
            # the gateway's own page and listed origins may post; the server served everyone throughout
            for origin in (f"http://127.0.0.1:{port}", "http://line3-hmi.local:8000"):
                got, _, payload = await http_get(port, "/api/spc/alerts/", method="POST",
                                                 headers={**JSON, "Origin": origin}, body=good)
                assert got == 201, payload
            assert alert_count(rig) == 2  # a person's alerts are never merged into occurrences
    run(body)


def test_with_tokens_a_post_needs_an_operators_token(tmp_path):
    async def body():
        async with Rig(make_config(tmp_path, tokens={"operator": "op-secret", "viewer": "view-secret"})) as rig:
            port = rig.server.port
            good = json.dumps(SEED_BODY).encode()
            for extra, status in (({}, 401), ({"Authorization": "Bearer wrong"}, 401),
                                  ({"Authorization": "Bearer view-secret"}, 403)):
                got, _, payload = await http_get(port, "/api/spc/alerts/", method="POST",
                                                 headers={**JSON, **extra}, body=good)
                assert got == status, payload
            assert alert_count(rig) == 0
            got, _, payload = await http_get(port, "/api/spc/alerts/", method="POST",
                                             headers={**JSON, "Authorization": "Bearer op-secret"}, body=good)
            assert got == 201
            history = await rig.store.alert_history(json.loads(payload)["id"])
            assert "operator-client" in json.dumps(history[0])  # who sent it is on record
    run(body)


def test_expect_100_continue_and_a_stalled_body_that_holds_up_nobody(tmp_path):
    async def body():
        async with Rig(make_config(tmp_path)) as rig:
            port = rig.server.port
            good = json.dumps(SEED_BODY).encode()
            # a client that sends half a body and stops
            _, stalled = await asyncio.open_connection("127.0.0.1", port)
            stalled.write(b"POST /api/spc/alerts/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          b"Content-Length: 500\r\n\r\n{\"product\": 1,")
            await stalled.drain()
            # curl's way for large bodies: the head, wait for 100 Continue, then the body
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /api/spc/alerts/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Expect: 100-continue\r\nContent-Length: " + str(len(good)).encode() + b"\r\n\r\n")
            await writer.drain()
            assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == b"HTTP/1.1 100 Continue\r\n\r\n"
            writer.write(good)
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 5)
            assert answer.startswith(b"HTTP/1.1 201 ")
            writer.close()
            screen = await open_client(rig.url)  # WebSocket clients are untouched by all this
            assert screen.snapshot["alerts"][0]["title"] == "Test Alert"
            await screen.close()
            stalled.close()
            assert alert_count(rig) == 1
    run(body)


def test_a_sender_that_posts_too_fast_gets_429_and_the_rest_are_served(tmp_path):
    async def body():
        async with Rig(make_config(tmp_path, rate=1.0)) as rig:  # a burst of 2, then one a second
            port = rig.server.port
            good = json.dumps(SEED_BODY).encode()
            answers = []
            for _ in range(4):
                got, _, payload = await http_get(port, "/api/spc/alerts/", method="POST", headers=JSON, body=good)
                answers.append(got)
            assert answers == [201, 201, 429, 429], answers
            assert "rate_limited" in payload.decode()
            assert alert_count(rig) == 2
            screen = await open_client(rig.url)  # a screen on the same address is not held back
            assert len(screen.snapshot["alerts"]) == 2
            await screen.close()
    run(body)
