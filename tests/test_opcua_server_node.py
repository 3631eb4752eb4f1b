"""The OPC UA server read by node-opcua's client (tests/opcua_client, an implementation no one here
wrote): browse, read, a refused write, a subscription that sees every change with the measurement's
source timestamp, an alarm event, and Acknowledge refused for anonymous and viewer sessions and done
by an operator over Basic256Sha256 SignAndEncrypt, which the alert service then holds.

node-opcua-client is installed by `npm ci` into tests/opcua_client/node_modules when missing
(package-lock.json is committed, node_modules never); without node or npm these tests are skipped.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from gateway.app import Gateway
from tests.conftest import free_port
from tests.test_opcua_server import feed, gateway_config, running, users_file

HERE = Path(__file__).parent / "opcua_client"


@pytest.fixture(scope="module")
def node_client() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed for node-opcua's client")
    if not (HERE / "node_modules" / "node-opcua-client").is_dir():
        subprocess.run(["npm", "ci", "--silent", "--no-audit", "--no-fund"], cwd=HERE, check=True, timeout=600)
    return HERE / "client.js"


def test_node_opcua_client_browses_reads_subscribes_and_acknowledges(tmp_path: Path, node_client: Path) -> None:
    port = free_port()
    config = gateway_config(tmp_path, port, free_port(), security=["None", "Basic256Sha256_SignAndEncrypt"],
                            users_file=str(users_file(tmp_path)))
    readings = [10.0 + i * 0.002 for i in range(30)] + [11.0]  # the last above USL 10.5: OUT_OF_SPEC
    args = {"endpoint": f"opc.tcp://127.0.0.1:{port}/spc-gateway/", "product": "BOLT-M10",
            "characteristic": "diameter", "expect": len(readings), "operator": ["kim", "op-secret"],
            "viewer": ["lee", "view-secret"], "pki": str(tmp_path / "pki")}

    async def body(gateway: Gateway) -> None:
        process = await asyncio.create_subprocess_exec(
            "node", str(node_client), json.dumps(args), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env={**os.environ, "NODE_NO_WARNINGS": "1"})
        assert process.stdout is not None
        lines: list[dict] = []

        async def line() -> dict:
            raw = b""
            while not raw.startswith(b"{"):  # node-opcua logs its own lines (a certificate being made)
                raw = await asyncio.wait_for(process.stdout.readline(), 60)  # type: ignore[union-attr]
                assert raw, (await process.stderr.read()).decode()  # type: ignore[union-attr]
            lines.append(json.loads(raw))
            assert "error" not in lines[-1], lines[-1]["error"]
            return lines[-1]

        first = await line()
        assert first["browse"] == sorted(["Value", "Mean", "Center", "UCL", "LCL", "USL", "LSL", "InControl",
                                          "InSpec", "Cpk", "LimitsVersion", "LastViolation"])
        assert first["dataType"] == "ns=0;i=11" and first["usl"] == 10.5  # Double
        assert first["write"] == "BadNotWritable"
        assert (await line()) == {"ready": True}
        times = await feed(gateway, readings, time.time() - 2)
        result = await line()
        await asyncio.wait_for(process.wait(), 30)
        assert result["values"] == readings  # every change, in order
        assert [t / 1000 for t in result["sourceTimestamps"]] == pytest.approx(times, abs=0.002)
        alert = next(a for a in gateway.alerts.unresolved() if a["alert_type"] == "OUT_OF_SPEC")
        assert result["alarm"] == {"severity": alert["priority"] * 200, "source": "BOLT-M10", "acked": False,
                                   "retain": True, "message": f"{alert['title']}: {alert['message']}"}
        assert result["anonymousAck"] == "BadUserAccessDenied"
        assert result["viewerAck"] == "BadUserAccessDenied"
        assert result["operatorAck"] == "Good" and result["operatorPolicy"].endswith("#Basic256Sha256")
        assert alert["status"] == "ACKNOWLEDGED" and alert["acknowledged_by"] == "kim"
        assert alert["comment"] == "checked the gauge"

    asyncio.run(running(config, body))
