"""The command-line clients against a real server: watch, alert create, status, limits recalculate."""

from __future__ import annotations

import argparse
import asyncio

import pytest

from gateway.tools import clients
from tests.test_server_harness import Rig, make_config, run


def test_watch_create_and_status(tmp_path, capsys):
    async def body():
        async with Rig(make_config(tmp_path, tokens={"operator": "op-secret"})) as rig:
            lines: list[str] = []
            watcher = asyncio.create_task(clients.watch(rig.url, None, "op-secret", out=lines.append,
                                                        max_messages=4))
            while len(lines) < 2:  # connection + snapshot
                await asyncio.sleep(0.01)
            alert = await clients.create_alert(rig.url, product=1, alert_type="OUT_OF_SPEC", priority=4,
                                               title="Test Alert", message="WebSocket test alert",
                                               token="op-secret", user="cli")
            assert alert["status"] == "OPEN" and alert["product_code"] == "BOLT-M10"
            await rig.measurements([11.0], notable=True)
            await asyncio.wait_for(watcher, 5)
            assert lines[0].endswith("SPC 실시간 알림에 연결되었습니다 (LINE-T, role operator)")
            assert "ALERT P4 OPEN BOLT-M10 OUT_OF_SPEC: Test Alert - WebSocket test alert" in lines[2]
            assert "OUT-OF-SPEC" in lines[3]
            with pytest.raises(clients.ClientError, match="HTTP 401"):
                await clients.create_alert(rig.url, product=1, alert_type="OUT_OF_SPEC", priority=4, title="t",
                                           message="m", token="wrong")
            with pytest.raises(clients.ClientError, match="not_found"):
                await clients.create_alert(rig.url, product=7, alert_type="OUT_OF_SPEC", priority=4, title="t",
                                           message="m", token="op-secret")
            code, report = await asyncio.to_thread(clients.status, rig.url)
            assert code == 200 and report["gateway"] == "LINE-T"
            assert "LINE-T" in clients.format_status(code, report)
            args = argparse.Namespace(url=rig.url, token="op-secret", product=1, characteristic="diameter",
                                      user="qe", reason="new tool", from_subgroup=None, subgroups=25)
            assert await asyncio.to_thread(clients.recalculate_limits, args) == 0
            assert rig.recalculated == [(1, "diameter", "qe", "new tool", None, 25)]
            args.characteristic = "missing-data"
            assert await asyncio.to_thread(clients.recalculate_limits, args) == 1
    run(body)
    err = capsys.readouterr().err
    assert "not_found" in err or "invalid_field" in err


def test_endpoint_urls():
    assert clients.endpoint("ws://h:8000") == "ws://h:8000/ws/spc/notifications/"
    assert clients.endpoint("http://h:8000/", 2) == "ws://h:8000/ws/spc/product/2/"
    assert clients.http_base("wss://h:8443/ws/spc/notifications/") == "https://h:8443"
