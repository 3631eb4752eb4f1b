"""The library internals the gateway still leans on, checked against the installed libraries.

Three modules hold them, each pinned to the minor version it was tested with:
gateway/outputs/websocket/websockets_private.py (websockets), gateway/sources/opcua/asyncua_private.py
and gateway/outputs/opcua_server/asyncua_private.py (asyncua). paho-mqtt is used on its public API only. When a test here fails, the message names what
changed: read the module's docstring, check it against the new library, then move the pin in
pyproject.toml and the module's TESTED_VERSION together (or find a public way).
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
import tomllib
from pathlib import Path
from typing import Any

import asyncua
import pytest
import websockets
from asyncua import Client
from asyncua.common.subscription import Subscription
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from gateway.outputs.websocket import websockets_private
from gateway.outputs.websocket.websockets_private import (
    BodyReadingConnection,
    abort,
    can_write,
    drain,
    frame,
    write,
)
from gateway.sources.opcua import asyncua_private
from tests.conftest import free_port

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(60)


def pin(name: str) -> str:
    """The requirement of `name` in pyproject.toml's dependencies."""
    found = [d for d in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
             if re.match(rf"{re.escape(name)}\b", d)]
    assert len(found) == 1, f"pyproject.toml has no single requirement for {name}: {found}"
    return found[0]


def minor_pin(name: str, tested: str) -> str:
    """The requirement that admits the tested minor version only: 'lib>=17.4,<17.5'."""
    major, minor = (int(part) for part in tested.split(".")[:2])
    return f"{name}>={tested},<{major}.{minor + 1}"


def same_minor(installed: str, tested: str) -> bool:
    return installed.split(".")[:2] == tested.split(".")[:2]


def parameters(cls: type, name: str) -> list[str]:
    method = getattr(cls, name, None)
    assert callable(method), f"{cls.__module__}.{cls.__qualname__}.{name} is gone"
    return list(inspect.signature(method).parameters)


# ---------------------------------------------------------------- paho-mqtt: public only


def test_paho_is_used_on_its_public_api_only() -> None:
    """No module that imports paho subclasses its Client or reads a private name of a client
    (`client._sock`, `self.client._in_packet`): issue 14, 'no paho internals'."""
    offenders = []
    for path in sorted((REPO / "gateway").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if not any(isinstance(node, ast.Import | ast.ImportFrom) and "paho" in ast.unparse(node)
                   for node in ast.walk(tree)):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any("Client" in ast.unparse(base) for base in node.bases):
                offenders.append(f"{path.name}:{node.lineno}: class {node.name}({ast.unparse(node.bases[0])})")
            elif (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                  and "client" in ast.unparse(node.value).lower()):
                offenders.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    assert offenders == [], f"paho internals used: {offenders}"
    assert pin("paho-mqtt") == "paho-mqtt>=2.0,<3"


# ---------------------------------------------------------------- websockets


def test_websockets_is_the_tested_minor() -> None:
    tested = websockets_private.TESTED_VERSION
    assert pin("websockets") == minor_pin("websockets", tested), (
        "pyproject.toml must pin websockets to the minor websockets_private.py was tested with")
    assert same_minor(websockets.version.version, tested), (
        f"websockets {websockets.version.version} is installed, websockets_private.py was tested with {tested}: "
        "check it against the new version (this file's docstring)")


def test_websockets_internals_are_there_with_the_expected_signatures() -> None:
    # BodyReadingConnection overrides these asyncio.Protocol methods of websockets' connection
    assert parameters(ServerConnection, "data_received") == ["self", "data"], "ServerConnection.data_received changed"
    assert parameters(ServerConnection, "eof_received") == ["self"], "ServerConnection.eof_received changed"
    assert parameters(ServerConnection, "connection_made") == ["self", "transport"], (
        "ServerConnection.connection_made changed (it sets .transport)")
    # the hub waits on the connection's flow control
    assert parameters(ServerConnection, "drain") == ["self"], "ServerConnection.drain changed"
    assert inspect.iscoroutinefunction(ServerConnection.drain), "ServerConnection.drain is no longer a coroutine"
    # `paused` and `send_in_progress` are set in Connection.__init__; the hub reads them
    source = inspect.getsource(websockets.asyncio.connection.Connection.__init__)
    for attribute in ("self.paused", "self.send_in_progress"):
        assert attribute in source, f"websockets' Connection no longer sets {attribute}"
    assert "create_connection" in inspect.signature(serve).parameters, "serve(create_connection=) is gone"


def test_websockets_internals_work_through_a_real_socket() -> None:
    """A POST body reaches process_request through BodyReadingConnection; the hub's own frames, written
    past the protocol object, arrive as text messages at a real websockets client, and can_write,
    drain and abort do what the hub expects of them."""
    seen: dict[str, Any] = {}
    server_connections: list[ServerConnection] = []

    async def process_request(connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/post":
            seen["body"] = getattr(connection, "http_body", None)
            return connection.respond(200, "ok\n")
        return None

    async def handler(connection: ServerConnection) -> None:
        server_connections.append(connection)
        seen["writable"] = can_write(connection)
        write(connection, frame(b'{"n": 1}') + frame("한국어".encode() * 50) + frame(b"x" * 70_000))
        await drain(connection)
        await connection.wait_closed()

    async def scenario() -> None:
        port = free_port()
        async with serve(handler, "127.0.0.1", port, process_request=process_request, compression=None,
                         create_connection=BodyReadingConnection):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            body = b'{"alert": "yes"}'
            writer.write(b"POST /post HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body)
            head = await asyncio.wait_for(reader.read(4096), 5)
            assert head.startswith(b"HTTP/1.1 200"), head
            assert seen["body"] == body, "BodyReadingConnection no longer hands the body over"
            writer.close()

            async with connect(f"ws://127.0.0.1:{port}/", compression=None, max_size=None) as client:
                messages = [await asyncio.wait_for(client.recv(), 5) for _ in range(3)]
                assert messages == ['{"n": 1}', "한국어" * 50, "x" * 70_000], "hand-built frames misread"
                assert seen["writable"] is True
            # abort ends a connection at once
            async with connect(f"ws://127.0.0.1:{port}/", compression=None, max_size=None) as client:
                await client.recv()
                abort(server_connections[-1])
                with pytest.raises(websockets.ConnectionClosed):
                    for _ in range(10):
                        await asyncio.wait_for(client.recv(), 5)

    asyncio.run(scenario())


# ---------------------------------------------------------------- asyncua


def test_asyncua_is_the_tested_minor() -> None:
    tested = asyncua_private.TESTED_VERSION
    installed = _asyncua_version()
    assert pin("asyncua") == minor_pin("asyncua", tested), (
        "pyproject.toml must pin asyncua to the minor asyncua_private.py was tested with")
    assert same_minor(installed, tested), (
        f"asyncua {installed} is installed, asyncua_private.py was tested with {tested}: check it against the "
        "new version (this file's docstring)")


def _asyncua_version() -> str:
    from importlib.metadata import version

    return version("asyncua")


def test_asyncua_internals_are_there() -> None:
    client = Client("opc.tcp://127.0.0.1:4840")
    assert hasattr(client, "_stale_watchdog_task"), "asyncua's Client._stale_watchdog_task is gone"
    assert "_stale_watchdog_task" in inspect.getsource(Client.connect), (
        "asyncua's Client.connect() no longer starts _stale_watchdog_task")
    sub = Subscription(None, None, None)  # type: ignore[arg-type]  (iterator mode: no handler)
    assert isinstance(getattr(sub, "_event_queue", None), asyncio.Queue), (
        "asyncua's Subscription._event_queue is gone or no longer an asyncio.Queue")
    assert "_event_queue" in inspect.getsource(Subscription.next_event), (
        "Subscription.next_event no longer reads _event_queue: queued_events would miss notifications")
    assert asyncua.ua is not None


def test_asyncua_internals_work_against_a_real_server() -> None:
    """Connected to the simulated OPC UA server: the stale watchdog is running and stop_stale_watchdog
    ends it; a burst of value changes is taken by next_event then queued_events, in order, at once."""
    from asyncua import ua
    from asyncua.common.subscription import DataChangeEvent

    from gateway.sim.opcua_server import start_opcua_simulator
    from gateway.sim.simulator import Gauge

    async def scenario() -> None:
        sim = await start_opcua_simulator(free_port(), {"OD": Gauge(20.0, 0.01, seed=1)}, 3600.0)
        client = Client(sim.endpoint)
        try:
            await client.connect()
            task = client._stale_watchdog_task
            assert isinstance(task, asyncio.Task) and not task.done(), "asyncua no longer starts its watchdog"
            asyncua_private.stop_stale_watchdog(client)
            await asyncio.sleep(0)
            assert task.cancelled() or task.done(), "stop_stale_watchdog did not stop asyncua's watchdog"

            params = ua.CreateSubscriptionParameters()
            params.RequestedPublishingInterval = 200
            params.RequestedLifetimeCount = 100
            params.RequestedMaxKeepAliveCount = 10
            sub = await client.create_subscription(params, None)
            node = client.get_node(sim.node_ids["OD"])
            await sub.subscribe_data_change([node], queuesize=100)
            await asyncio.sleep(0.5)
            while await sub.next_event(timeout=0.3) is not None:  # the initial value
                pass
            for value in (1.0, 2.0, 3.0, 4.0):
                await sim.write("OD", value)
                await asyncio.sleep(0.01)  # within one publishing interval: one publish response
            await asyncio.sleep(0.5)
            first = await sub.next_event(timeout=2)
            assert first is not None
            batch = [first, *asyncua_private.queued_events(sub)]
            values = [e.value for e in batch if isinstance(e, DataChangeEvent)]
            assert values[-1] == 4.0 and len(values) >= 2, f"queued notifications not taken: {values}"
            assert asyncua_private.queued_events(sub) == []
        finally:
            await client.disconnect()
            await sim.stop()

    asyncio.run(scenario())


# ---------------------------------------------------------------- asyncua, the OPC UA server's


def test_opcua_server_asyncua_private_is_the_tested_version() -> None:
    from gateway.outputs.opcua_server import asyncua_private as server_private

    assert server_private.TESTED_VERSION == asyncua_private.TESTED_VERSION == _asyncua_version(), (
        "outputs/opcua_server/asyncua_private.py was tested with another asyncua: check SharedDataValue again")


def test_asyncua_still_deep_copies_each_monitored_value_and_shared_values_encode_the_same() -> None:
    import copy
    from datetime import UTC, datetime

    from asyncua import ua
    from asyncua.server.monitored_item_service import MonitoredItemValues
    from asyncua.ua.ua_binary import struct_to_binary

    from gateway.outputs.opcua_server.asyncua_private import SharedDataValue

    now = datetime.now(UTC)
    plain = ua.DataValue(ua.Variant(10.01, ua.VariantType.Double), SourceTimestamp=now, ServerTimestamp=now)
    shared = SharedDataValue(ua.Variant(10.01, ua.VariantType.Double), SourceTimestamp=now, ServerTimestamp=now)
    values = MonitoredItemValues()
    values.set_current_datavalue(plain)
    assert values.get_current_datavalue() is not plain, (
        "asyncua no longer deep-copies a monitored value: SharedDataValue is not needed any more")
    values.set_current_datavalue(shared)
    assert values.get_current_datavalue() is shared and copy.deepcopy(shared) is shared
    assert struct_to_binary(shared) == struct_to_binary(plain)  # the wire cannot tell them apart
    notification = ua.MonitoredItemNotification(ClientHandle=7, Value=shared)
    assert struct_to_binary(notification) == struct_to_binary(ua.MonitoredItemNotification(ClientHandle=7, Value=plain))
