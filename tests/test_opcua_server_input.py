"""What an OPC UA client may send the server and what it gets back: hostile method arguments, wrong
EventIds and objects, long or control-character comments, wrong logins, requests that would change
the address space; and a taken port, which stops the daemon with one line."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client, ua

from gateway.app import Gateway
from tests.conftest import free_port
from tests.daemon_helpers import Daemon
from tests.test_opcua_server import Changes, endpoint, feed, gateway_config, running, until, users_file


def test_hostile_method_calls_and_logins_are_refused_and_change_nothing(tmp_path: Path) -> None:
    port = free_port()
    config = gateway_config(tmp_path, port, free_port(), users_file=str(users_file(tmp_path)))

    async def body(gateway: Gateway) -> None:
        operator = Client(endpoint(port))
        operator.set_user("kim")
        operator.set_password("op-secret")
        async with operator:
            changes = Changes()
            subscription = await operator.create_subscription(100, changes)
            await subscription.subscribe_events(operator.nodes.server,
                                                operator.get_node(ua.ObjectIds.AlarmConditionType))
            await feed(gateway, [11.0], time.time())
            await until(lambda: any(e.ConditionName == "OUT_OF_SPEC" for e in changes.events))
            event = next(e for e in changes.events if e.ConditionName == "OUT_OF_SPEC")
            ack = operator.get_node(ua.ObjectIds.AcknowledgeableConditionType_Acknowledge)
            condition = operator.get_node(event.NodeId)
            idx = await operator.get_namespace_index("urn:spc-gateway")
            product = operator.get_node(f"ns={idx};s=SPC/BOLT-M10")

            async def refused(status: type[Exception], target: Any, *args: Any) -> None:
                with pytest.raises(status):
                    await target.call_method(ack, *args)

            text = ua.LocalizedText
            await refused(ua.uaerrors.BadEventIdUnknown, condition, b"not-an-event-id", text("x"))
            await refused(ua.uaerrors.BadEventIdUnknown, condition, ua.Variant("a string", ua.VariantType.String),
                          text("x"))
            await refused(ua.uaerrors.BadNodeIdUnknown, product, event.EventId, text("x"))  # not a condition
            await refused(ua.uaerrors.BadInvalidArgument, condition, event.EventId, text("x" * 2001))
            await refused(ua.uaerrors.BadInvalidArgument, condition, event.EventId, text("ok\x1b[2J"))
            await refused(ua.uaerrors.BadInvalidArgument, condition, event.EventId, text("ABC\u202e123"))
            add_comment = operator.get_node(ua.ObjectIds.ConditionType_AddComment)
            with pytest.raises(ua.uaerrors.BadInvalidArgument):  # a comment needs words
                await condition.call_method(add_comment, event.EventId, text(""))
            alert = next(a for a in gateway.alerts.unresolved() if a["alert_type"] == "OUT_OF_SPEC")
            assert alert["status"] == "OPEN" and "comment" not in alert  # nothing changed
            # the address space is the gateway's: no client adds or deletes nodes
            with pytest.raises(ua.UaStatusCodeError):
                await product.add_folder(idx, "Intruder")
            with pytest.raises(ua.UaStatusCodeError):
                await operator.delete_nodes([operator.get_node(f"ns={idx};s=SPC/BOLT-M10/diameter/Value")])
            await condition.call_method(ack, event.EventId, text("multi-line\nis fine"))  # then it works
        assert next(a for a in gateway.alerts.unresolved() if a["id"] == alert["id"])["status"] == "ACKNOWLEDGED"
        for user, password in (("nobody", "op-secret"), ("kim", ""), ("kim", "op-secret\n"), ("kim" * 40, "x")):
            client = Client(endpoint(port))
            client.set_user(user)
            client.set_password(password)
            with pytest.raises((ua.UaError, ConnectionError, asyncio.TimeoutError)):
                async with client:
                    pass
        await until(lambda: gateway.health()["opcua_server"]["logins_refused"] >= 3)

    asyncio.run(running(config, body))


def test_a_taken_port_stops_the_daemon_with_one_line(tmp_path: Path) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        daemon = Daemon(gateway_config(tmp_path, port, free_port())).start()
        assert daemon.wait(30) == 1
        log = daemon.log()
        assert "opcua_server.listen 127.0.0.1:" in log and "already in use" in log
        assert "Traceback" not in log
    finally:
        holder.close()


def _workers(pid: int) -> list[int]:
    """The daemon's OPC UA server process(es), by their command line."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == pid and b"gateway.outputs.opcua_server.worker" in cmdline:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:  # a zombie's cmdline is empty; a pid reused by another program has another one
        return b"gateway.outputs.opcua_server.worker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGKILL"])
def test_the_server_process_never_outlives_the_daemon(tmp_path: Path, sig: str) -> None:
    import signal

    port = free_port()
    daemon = Daemon(gateway_config(tmp_path, port, free_port())).start(wait_for_port=port, timeout=60)
    try:
        assert daemon.proc is not None
        (worker,) = _workers(daemon.proc.pid)
        started = time.monotonic()
        daemon.signal(getattr(signal, sig))
        status = daemon.wait(15)
        assert status == (0 if sig == "SIGTERM" else -signal.SIGKILL)
        while _alive(worker):
            assert time.monotonic() - started < 15, "the OPC UA server process outlived the daemon"
            time.sleep(0.1)
    finally:
        daemon.kill()
