"""Handshake and HTTP: tokens (401), origins (403), huge frames (1009), traversal, 405, read API, metrics."""

from __future__ import annotations

import json
import sqlite3

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.test_server_harness import Rig, http_get, make_config, open_client, recv_json, run


def test_tokens_and_origins_are_checked_at_the_handshake(tmp_path):
    async def body():
        config = make_config(tmp_path, tokens={"operator": "op-secret"}, origins=("http://line3-hmi.local:8000",))
        async with Rig(config) as rig:
            for path, kwargs, status in [
                ("/ws/spc/notifications/", {}, 401),
                ("/ws/spc/notifications/?token=wrong", {}, 401),
                ("/ws/spc/notifications/", {"subprotocols": ["bearer.nope"]}, 401),
                ("/ws/spc/notifications/?token=op-secret", {"origin": "http://evil.example"}, 403),
                ("/ws/spc/product/99/?token=op-secret", {}, 404),
                ("/ws/spc/notifications/?token=op-secret&since=abc", {}, 400),
            ]:
                with pytest.raises(InvalidStatus) as refused:
                    await connect(rig.url + path, **kwargs)
                assert refused.value.response.status_code == status, path
            ws = await open_client(rig.url, "/ws/spc/notifications/?token=op-secret",
                                   origin="http://line3-hmi.local:8000")
            assert ws.hello["role"] == "operator"
            await ws.close()
            # the gateway's own page (Origin = Host) is always allowed
            port = rig.server.port
            ws = await open_client(rig.url, "/ws/spc/notifications/?token=op-secret", origin=f"http://127.0.0.1:{port}")
            await ws.close()
            status, _, _ = await http_get(port, "/api/spc/products/")
            assert status == 401
            status, _, _ = await http_get(port, "/api/spc/products/", headers={"Authorization": "Bearer op-secret"})
            assert status == 200
            assert rig.server.refused["origin"] == 1 and rig.server.refused["token"] == 3
    run(body)


def test_huge_frame_closes_with_1009_and_changes_nothing(tmp_path):
    async def body():
        async with Rig(make_config(tmp_path)) as rig:
            ws = await open_client(rig.url)
            big = json.dumps({"type": "create_alert", "product_id": 1, "alert_type": "OUT_OF_SPEC", "priority": 4,
                              "title": "t", "message": "x" * 100_000})
            await ws.send(big)
            with pytest.raises(ConnectionClosed) as closed:
                await recv_json(ws)
            assert closed.value.rcvd.code == 1009
            with sqlite3.connect(rig.config.storage.path) as db:
                assert db.execute("SELECT COUNT(*) FROM alerts").fetchone()[0] == 0
            other = await open_client(rig.url)  # the server is fine
            await other.close()
    run(body)


def test_paths_outside_the_static_folder_are_never_served(tmp_path):
    async def body():
        async with Rig(make_config(tmp_path)) as rig:
            port = rig.server.port
            for path in ("/../../etc/passwd", "/static/../../../etc/passwd", "/static/%2e%2e/%2e%2e/etc/passwd",
                         "/static/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", "/static/..%5c..%5cetc%5cpasswd",
                         "/static/%252e%252e/etc/passwd", "/static//etc/passwd", "/static/%00", "/static/",
                         "/static/./i18n.js/../../http.py", "/static/../http.py"):
                status, _, payload = await http_get(port, path)
                assert status == 404, path
                assert b"root:" not in payload and b"import" not in payload
            status, headers, payload = await http_get(port, "/")
            assert status == 200 and headers["content-type"].startswith("text/html") and payload
            assert headers["cache-control"] == "no-cache"
    run(body)


def test_a_write_anywhere_but_post_alerts_gets_405_naming_where_writes_go(tmp_path):
    async def body():
        async with Rig(make_config(tmp_path)) as rig:
            for method in ("POST", "DELETE"):
                status, headers, payload = await http_get(rig.server.port, "/api/spc/products/", method=method)
                assert status == 405 and headers["allow"] == "GET"
                assert b"POST /api/spc/alerts/" in payload and b"spc-gateway alert create" in payload
    run(body)


def test_read_api_health_and_metrics(tmp_path):
    async def body():
        async with Rig(make_config(tmp_path)) as rig:
            await rig.raise_out_of_spec()
            await rig.measurements([10.0, 10.1, 10.2])
            port = rig.server.port
            status, headers, payload = await http_get(port, "/api/spc/products/")
            products = json.loads(payload)["products"]
            assert status == 200 and [p["code"] for p in products] == ["BOLT-M10", "SHAFT-20"]
            status, _, payload = await http_get(port, "/api/spc/alerts/?status=OPEN&product=1&limit=5")
            assert status == 200 and json.loads(payload)["alerts"][0]["alert_type"] == "OUT_OF_SPEC"
            for bad in ("/api/spc/alerts/?status=CLOSED", "/api/spc/alerts/?limit=0", "/api/spc/alerts/?product=x"):
                assert (await http_get(port, bad))[0] == 400, bad
            status, _, payload = await http_get(port, "/api/spc/products/1/measurements/?characteristic=diameter&limit=2")
            rows = json.loads(payload)["measurements"]
            assert status == 200 and [r["measurement_value"] for r in rows] == [10.1, 10.2]
            assert rows[0]["measured_at"].endswith("+09:00")
            assert (await http_get(port, "/api/spc/products/9/measurements/"))[0] == 404
            assert (await http_get(port, "/api/spc/products/1/capability/"))[0] == 200
            status, _, payload = await http_get(port, "/healthz")
            assert status == 200 and json.loads(payload)["clients"]["clients"] == 0
            status, headers, payload = await http_get(port, "/metrics")
            text = payload.decode()
            assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
            assert 'spc_gateway_alerts{state="OPEN",type="OUT_OF_SPEC"} 1' in text
            assert "spc_gateway_ws_clients 0" in text and "spc_gateway_store_size_bytes" in text
    run(body)


def test_connection_cap_answers_503(tmp_path):
    async def body():
        async with Rig(make_config(tmp_path, max_connections=2)) as rig:
            first, second = await open_client(rig.url), await open_client(rig.url)
            with pytest.raises(InvalidStatus) as refused:
                await connect(rig.url + "/ws/spc/notifications/")
            assert refused.value.response.status_code == 503 and rig.server.refused["capacity"] == 1
            await first.close()
            await second.close()
    run(body)
