"""The OPC UA server (contract plant-integration §2) inside a real Gateway, read by asyncua's client:
the address space, values with the measurement's source timestamp, a subscription that sees every
change, refused writes, alarm events, Acknowledge over Basic256Sha256 as an operator (seen by a
WebSocket screen, stored with the OPC UA user as `via`), refused methods for viewers and anonymous
sessions, values seeded from the store after a restart, the certificate made once."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
import websockets
from asyncua import Client, ua
from asyncua.crypto import cert_gen
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from gateway.app import Gateway
from gateway.core.model import CharacteristicKey, Measurement
from gateway.outputs.opcua_server.output import OpcUaServer
from gateway.outputs.opcua_server.worker import WORKER_NICE
from gateway.sources.registry import load_config
from tests.conftest import free_port
from tests.daemon_helpers import minimal_config, write_config

CONTRACT_VARIABLES = {"Value", "Mean", "Center", "UCL", "LCL", "USL", "LSL", "InControl", "InSpec", "Cpk",
                      "LimitsVersion", "LastViolation"}


def users_file(tmp: Path) -> Path:
    (tmp / "op.pw").write_text("op-secret\n")
    (tmp / "view.pw").write_text("view-secret\n")
    path = tmp / "opcua-users.yaml"
    path.write_text("- {user: kim, password_file: op.pw, role: operator}\n"
                    "- {user: lee, password_file: view.pw, role: viewer}\n")
    return path


def gateway_config(tmp: Path, opcua_port: int, http_port: int, **server: Any) -> Path:
    section = {"listen": f"127.0.0.1:{opcua_port}", "security": ["None"], **server}
    return write_config(tmp, minimal_config(tmp, port=http_port, extra={"opcua_server": section}))


def client_cert(folder: Path) -> tuple[str, str]:
    key = cert_gen.generate_private_key()
    uri = "urn:spc-gateway:test:client"
    cert = cert_gen.generate_self_signed_app_certificate(
        key, "test-client", {}, [x509.UniformResourceIdentifier(uri), x509.DNSName("localhost")],
        [ExtendedKeyUsageOID.CLIENT_AUTH], days=30)
    cert_path, key_path = folder / "client.der", folder / "client-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    key_path.write_bytes(cert_gen.dump_private_key_as_pem(key))
    return str(cert_path), str(key_path)


async def until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def running(config_path: Path, body: Callable[[Gateway], Awaitable[None]]) -> None:
    config, _ = load_config(str(config_path))
    gateway = Gateway(config)
    await gateway.start()
    try:
        await body(gateway)
    finally:
        await gateway.stop()


async def feed(gateway: Gateway, values: list[float], start: float) -> list[float]:
    """Readings of BOLT-M10 diameter, 10 ms apart from `start`; returns their times."""
    assert gateway.pipeline is not None
    key = CharacteristicKey(1, "diameter")
    times = [start + i * 0.01 for i in range(len(values))]
    for value, at in zip(values, times, strict=True):
        await gateway.pipeline.sink(Measurement(key, value, at))
    return times


def endpoint(port: int) -> str:
    return f"opc.tcp://127.0.0.1:{port}/spc-gateway/"


class Changes:
    def __init__(self) -> None:
        self.values: list[ua.DataValue] = []
        self.events: list[Any] = []

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        self.values.append(data.monitored_item.Value)

    def event_notification(self, event: Any) -> None:
        self.events.append(event)


def test_address_space_values_timestamps_every_change_and_refused_writes(tmp_path: Path) -> None:
    port = free_port()

    async def body(gateway: Gateway) -> None:
        async with Client(endpoint(port)) as client:
            idx = await client.get_namespace_index("urn:spc-gateway")
            spc = await client.nodes.objects.get_child(f"{idx}:SPC")
            assert {(await n.read_browse_name()).Name for n in await spc.get_children()} == {"BOLT-M10", "Gateway"}
            ch = await spc.get_child([f"{idx}:BOLT-M10", f"{idx}:diameter"])
            names = {(await n.read_browse_name()).Name for n in await ch.get_children()}
            assert names == CONTRACT_VARIABLES
            value = client.get_node(f"ns={idx};s=SPC/BOLT-M10/diameter/Value")
            assert await value.read_data_type() == ua.NodeId(ua.ObjectIds.Double)
            unit = await value.get_child("0:EngineeringUnits")
            eu = await unit.read_value()
            assert eu.DisplayName.Text == "mm" and eu.UnitId == 0x4D4D54  # UNECE "MMT"
            assert await client.get_node(f"ns={idx};s=SPC/BOLT-M10/diameter/USL").read_value() == 10.5
            assert await client.get_node(f"ns={idx};s=SPC/BOLT-M10/diameter/LSL").read_value() == 9.5
            gw = f"ns={idx};s=SPC/Gateway"
            assert await client.get_node(f"{gw}/Name").read_value() == "TEST-LINE"
            assert await client.get_node(f"{gw}/Version").read_value()
            assert await client.get_node(f"{gw}/SourcesConnected").read_data_type() == ua.NodeId(ua.ObjectIds.Int32)

            changes = Changes()
            subscription = await client.create_subscription(100, changes)
            params = ua.MonitoringParameters(ClientHandle=1, SamplingInterval=0, QueueSize=1000, DiscardOldest=False)
            await subscription.create_monitored_items([ua.MonitoredItemCreateRequest(
                ItemToMonitor=ua.ReadValueId(NodeId=value.nodeid, AttributeId=ua.AttributeIds.Value),
                MonitoringMode=ua.MonitoringMode.Reporting, RequestedParameters=params)])
            await until(lambda: len(changes.values) >= 1)  # the initial value (waiting for data)
            changes.values.clear()
            readings = [10.0 + i * 0.001 for i in range(40)]
            start = time.time() - 5
            times = await feed(gateway, readings, start)
            await until(lambda: len(changes.values) >= 40)
            assert [v.Value.Value for v in changes.values] == readings  # every change, in order
            sources = [v.SourceTimestamp.replace(tzinfo=UTC).timestamp() for v in changes.values]
            assert sources == pytest.approx(times, abs=0.002)  # the measurement's own time

            last = await value.read_data_value()
            assert last.Value.Value == readings[-1]
            assert abs(last.SourceTimestamp.replace(tzinfo=UTC).timestamp() - times[-1]) < 0.002
            in_spec = client.get_node(f"ns={idx};s=SPC/BOLT-M10/diameter/InSpec")
            assert await in_spec.read_value() is True
            assert await client.get_node(f"ns={idx};s=SPC/BOLT-M10/diameter/Center").read_value() == 10.0
            assert await client.get_node(f"ns={idx};s=SPC/BOLT-M10/diameter/Mean").read_value() == readings[-1]
            assert await client.get_node(f"ns={idx};s=SPC/BOLT-M10/diameter/LimitsVersion").read_value() >= 1

            for node, variant in ((value, ua.VariantType.Double), (in_spec, ua.VariantType.Boolean)):
                with pytest.raises(ua.uaerrors.BadNotWritable):
                    await node.write_value(ua.DataValue(ua.Variant(1.0 if variant == ua.VariantType.Double
                                                                   else False, variant)))
            assert await value.read_value() == readings[-1]
        stats = lambda: gateway.health()["opcua_server"]  # noqa: E731  (the worker reports twice a second)
        await until(lambda: stats()["writes_refused"] == 2 and stats()["values_written"] >= 80)
        # the screens come first: the server's process yields the CPU to the daemon (WORKER_NICE)
        server = next(o.output for o in gateway.outputs if isinstance(o.output, OpcUaServer))
        assert server.process is not None
        assert os.getpriority(os.PRIO_PROCESS, server.process.pid) == os.getpriority(os.PRIO_PROCESS, 0) + WORKER_NICE

    asyncio.run(running(gateway_config(tmp_path, port, free_port()), body))


def test_alarm_acknowledged_by_an_operator_over_basic256sha256_reaches_the_screens(tmp_path: Path) -> None:
    port, http_port = free_port(), free_port()
    cert, key = client_cert(tmp_path)
    config = gateway_config(tmp_path, port, http_port, security=["None", "Basic256Sha256_SignAndEncrypt"],
                            users_file=str(users_file(tmp_path)))

    async def body(gateway: Gateway) -> None:
        async with websockets.connect(f"ws://127.0.0.1:{http_port}/ws/spc/notifications/") as ws, \
                Client(endpoint(port)) as anonymous:
            changes = Changes()
            subscription = await anonymous.create_subscription(100, changes)
            alarm_type = anonymous.get_node(ua.ObjectIds.AlarmConditionType)
            await subscription.subscribe_events(anonymous.nodes.server, alarm_type)
            await feed(gateway, [11.0], time.time())  # above USL 10.5: OUT_OF_SPEC, priority 4
            await until(lambda: any(e.ConditionName == "OUT_OF_SPEC" for e in changes.events))
            event = next(e for e in changes.events if e.ConditionName == "OUT_OF_SPEC")
            assert event.Severity == 800 and getattr(event, "ActiveState/Id") is True
            assert getattr(event, "AckedState/Id") is False and event.Retain is True
            assert (await anonymous.get_node(event.SourceNode).read_browse_name()).Name == "BOLT-M10"
            alert = next(a for a in gateway.alerts.unresolved() if a["alert_type"] == "OUT_OF_SPEC")
            assert event.Message.Text == f"{alert['title']}: {alert['message']}"
            idx = await anonymous.get_namespace_index("urn:spc-gateway")
            open_alerts = anonymous.get_node(f"ns={idx};s=SPC/BOLT-M10/OpenAlerts")
            await until_value(open_alerts, lambda v: v >= 1)
            condition = event.NodeId
            ack = anonymous.get_node(ua.ObjectIds.AcknowledgeableConditionType_Acknowledge)
            comment = ua.LocalizedText("checked the gauge")
            # anonymous and viewer sessions may read, not act
            with pytest.raises(ua.uaerrors.BadUserAccessDenied):
                await anonymous.get_node(condition).call_method(ack, event.EventId, comment)
            viewer = Client(endpoint(port))
            viewer.set_user("lee")
            viewer.set_password("view-secret")
            async with viewer:
                with pytest.raises(ua.uaerrors.BadUserAccessDenied):
                    await viewer.get_node(condition).call_method(ack, event.EventId, comment)
            wrong = Client(endpoint(port))
            wrong.set_user("kim")
            wrong.set_password("not-it")
            with pytest.raises(ua.UaError):
                async with wrong:
                    pass
            operator = Client(f"opc.tcp://localhost:{port}/spc-gateway/")
            await operator.set_security_string(f"Basic256Sha256,SignAndEncrypt,{cert},{key}")
            operator.set_user("kim")
            operator.set_password("op-secret")
            async with operator:
                await operator.get_node(condition).call_method(ack, event.EventId, comment)
                with pytest.raises(ua.uaerrors.BadConditionBranchAlreadyAcked):
                    await operator.get_node(condition).call_method(ack, event.EventId, comment)
                add_comment = operator.get_node(ua.ObjectIds.ConditionType_AddComment)
                await operator.get_node(condition).call_method(add_comment, event.EventId,
                                                               ua.LocalizedText("new insert fitted"))
            acked = await ws_alert(ws, alert["id"], lambda a: a["status"] == "ACKNOWLEDGED")
            assert acked["acknowledged_by"] == "kim" and acked["comment"] == "checked the gauge"
            await until(lambda: any(getattr(e, "AckedState/Id", None) is True for e in changes.events))
            await ws_alert(ws, alert["id"], lambda a: a.get("comment") == "new insert fitted")
        stats = lambda: gateway.health()["opcua_server"]  # noqa: E731  (the worker reports twice a second)
        await until(lambda: stats()["acknowledged"] == 1 and stats()["commented"] == 1
                    and stats()["methods_refused"] >= 3 and stats()["logins_refused"] == 1)

    asyncio.run(running(config, body))
    with sqlite3.connect(tmp_path / "spc.sqlite3") as conn:
        rows = conn.execute("SELECT who, action, details FROM alert_history WHERE action IN "
                            "('acknowledge', 'comment') ORDER BY id").fetchall()
    assert [(who, action, json.loads(details)["via"]) for who, action, details in rows] == [
        ("kim", "acknowledge", "kim"), ("kim", "comment", "kim")]


async def until_value(node: Any, check: Callable[[Any], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        value = (await node.read_data_value()).Value.Value
        if value is not None and check(value):
            return
        assert time.monotonic() < deadline, f"value {value}"
        await asyncio.sleep(0.05)


async def ws_alert(ws: Any, alert_id: int, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 15))
        if message.get("type") == "alert" and message["alert"]["id"] == alert_id and check(message["alert"]):
            return message["alert"]


def test_values_seeded_from_the_store_and_the_certificate_made_once(tmp_path: Path) -> None:
    port = free_port()
    config = gateway_config(tmp_path, port, free_port(), security=["Basic256Sha256_SignAndEncrypt", "None"])
    measured = round(time.time() - 60, 2)  # within the configured 30 days of retention

    async def first(gateway: Gateway) -> None:
        await feed(gateway, [10.02, 10.03], measured)
        await until(lambda: gateway.health()["opcua_server"]["values_written"] >= 4)

    asyncio.run(running(config, first))
    certificate = (tmp_path / "opcua-server.der").read_bytes()
    assert (tmp_path / "opcua-server.pem").stat().st_mode & 0o077 == 0

    async def second(gateway: Gateway) -> None:
        async with Client(endpoint(port)) as client:
            idx = await client.get_namespace_index("urn:spc-gateway")
            value = await client.get_node(f"ns={idx};s=SPC/BOLT-M10/diameter/Value").read_data_value()
            assert value.Value.Value == 10.03
            assert value.SourceTimestamp.replace(tzinfo=UTC).timestamp() == pytest.approx(measured + 0.01, abs=0.002)
            assert await client.get_node(f"ns={idx};s=SPC/BOLT-M10/diameter/Center").read_value() == 10.0
            endpoints = await client.get_endpoints()
            assert {e.SecurityPolicyUri.rsplit("#", 1)[-1] for e in endpoints} == {"None", "Basic256Sha256"}

    asyncio.run(running(config, second))
    assert (tmp_path / "opcua-server.der").read_bytes() == certificate  # made once, then kept


def test_condition_refresh_sends_the_open_alarms_to_a_late_subscriber(tmp_path: Path) -> None:
    """UaExpert's alarm view subscribes, then calls ConditionRefresh to see what is already active."""
    port = free_port()

    async def body(gateway: Gateway) -> None:
        await feed(gateway, [11.0], time.time())
        await until(lambda: gateway.health()["opcua_server"]["conditions"] >= 1)
        async with Client(endpoint(port)) as client:
            changes = Changes()
            subscription = await client.create_subscription(100, changes)
            await subscription.subscribe_events(client.nodes.server, client.get_node(ua.ObjectIds.AlarmConditionType))
            await asyncio.sleep(0.5)
            assert not any(e.ConditionName == "OUT_OF_SPEC" for e in changes.events)  # raised before we came
            await client.nodes.server.call_method(
                ua.NodeId(ua.ObjectIds.ConditionType_ConditionRefresh),
                ua.Variant(subscription.subscription_id, ua.VariantType.UInt32))
            await until(lambda: any(e.ConditionName == "OUT_OF_SPEC" for e in changes.events))
            event = next(e for e in changes.events if e.ConditionName == "OUT_OF_SPEC")
            assert event.Retain is True and getattr(event, "ActiveState/Id") is True

    asyncio.run(running(gateway_config(tmp_path, port, free_port()), body))
