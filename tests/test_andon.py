"""Andon and interlock outputs (contract plant-integration §3) in a real Gateway, against a real pymodbus
server (the simulated PLC of gateway.sim) and a real asyncua server: coils and registers follow the
alert lifecycle, come back after a PLC restart, and a dead PLC raises OUTPUT_FAILED without holding up
anything else."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from asyncua import Server, ua

from gateway.app import Gateway
from gateway.config import Config
from gateway.sim.simulator import ModbusSimulator, PlcMemory
from gateway.sources.registry import load_config
from tests.conftest import free_port
from tests.daemon_helpers import minimal_config, write_config

COIL_RED, COIL_OPEN, REGISTER = 20, 21, 40


def plc_memory(value: float = 10.0) -> PlcMemory:
    """A PLC that has just started: the gauge's float32 at 0, coils and registers at 0."""
    memory = PlcMemory()
    memory.define(1, "holding", 0, 50)
    memory.define(1, "coil", 0, 32)
    memory.set_value(1, "holding", 0, value, "float32")
    return memory


def coil(memory: PlcMemory, address: int) -> int:
    return memory.units[1]["coil"].get(address, 0)


async def until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> float:
    """Wait for `predicate`; returns the seconds it took. Generous: the machine is shared."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


def fetch(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:  # 503 while a source is down: the body is the same report
        return exc.code, exc.read().decode()


def andon_config(tmp: Path, port: int, modbus_port: int, *, outputs: list[dict[str, Any]],
                 sources: list[dict[str, Any]] | None = None) -> Any:
    plc = {"name": "plc", "type": "modbus", "host": "127.0.0.1", "port": modbus_port, "poll_interval": "100ms",
           "timeout": "300ms", "backoff": {"initial": "100ms", "maximum": "500ms"}}
    config = minimal_config(tmp, port=port, sources=[plc, *(sources or [])])
    config["outputs"] = outputs
    loaded, _ = load_config(str(write_config(tmp, config)))
    return loaded


RED = {"name": "andon-red", "when": {"alert_types": ["OUT_OF_SPEC", "OUT_OF_CONTROL"], "priority_at_least": 3,
                                     "state": "unacknowledged"}, "write": {"source": "plc", "coil": COIL_RED}}
OPEN = {"name": "andon-open", "when": {"alert_types": ["OUT_OF_SPEC"], "products": ["BOLT-M10"], "state": "open"},
        "write": {"source": "plc", "coil": COIL_OPEN}}
CODE = {"name": "andon-code", "when": {"alert_types": ["OUT_OF_SPEC"]},
        "write": {"source": "plc", "register": REGISTER, "data_type": "int32", "byte_order": "CDAB",
                  "value_on": 70000, "value_off": -1}}


async def line_and_gateway(config: Config, modbus_port: int,
                           value: float = 10.0) -> tuple[PlcMemory, ModbusSimulator, Gateway]:
    """The line's PLC (a Modbus server on modbus_port whose gauge reads `value`) and the gateway, started."""
    memory = plc_memory(value)
    plc = ModbusSimulator(memory, port=modbus_port)
    await plc.start()
    gateway = Gateway(config)
    await gateway.start()
    return memory, plc, gateway


def open_alerts(gateway: Gateway, alert_type: str = "OUT_OF_SPEC") -> list[dict[str, Any]]:
    return [a for a in gateway.alerts.unresolved() if a["alert_type"] == alert_type]


def test_coils_follow_the_alert_lifecycle_and_a_plc_restart(tmp_path: Path) -> None:
    port, modbus_port = free_port(), free_port()
    config = andon_config(tmp_path, port, modbus_port, outputs=[RED, OPEN, CODE])

    async def scenario() -> None:
        memory, plc, gateway = await line_and_gateway(config, modbus_port)
        try:
            # start-up: every output is written off (a register's value_off too), whatever the PLC held
            await until(lambda: gateway.health()["outputs"]["andon-code"]["state"] == "off", what="written off")
            assert [memory.units[1]["holding"][REGISTER + i] for i in range(2)] == [0xFFFF, 0xFFFF]  # -1, CDAB
            assert coil(memory, COIL_RED) == 0 and coil(memory, COIL_OPEN) == 0

            memory.set_value(1, "holding", 0, 11.0, "float32")  # a part above USL 10.5
            await until(lambda: coil(memory, COIL_RED) == 1 and coil(memory, COIL_OPEN) == 1, what="coils on")
            # 70000 as int32 in CDAB: low word first
            await until(lambda: [memory.units[1]["holding"][REGISTER + i] for i in range(2)] == [70000 & 0xFFFF, 1])
            memory.set_value(1, "holding", 0, 10.0, "float32")  # back in spec; the alerts stay until resolved
            (alert,) = open_alerts(gateway)
            for other in gateway.alerts.unresolved():  # OUT_OF_CONTROL too: 11.0 is far beyond the UCL
                await gateway.alerts.acknowledge(other["id"], "kim", "checking the tool")
            await until(lambda: coil(memory, COIL_RED) == 0, what="red off once acknowledged")
            assert coil(memory, COIL_OPEN) == 1  # `open` holds acknowledged alerts too

            # the PLC restarts while the alert is still open: it comes back with every coil at 0
            await plc.stop()
            memory = plc_memory()
            plc = ModbusSimulator(memory, port=modbus_port)
            await asyncio.sleep(0.5)
            await plc.start()
            took = await until(lambda: coil(memory, COIL_OPEN) == 1, what="coil rewritten after the PLC restart")
            assert took < 5.0  # backoff at most 500 ms, poll 100 ms: well within the reconnect time
            assert coil(memory, COIL_RED) == 0

            await gateway.alerts.shelve(alert["id"], "kim", 60.0, "tool change")
            await until(lambda: coil(memory, COIL_OPEN) == 0, what="a shelved alert holds no output")
            await gateway.alerts.unshelve(alert["id"], "kim")
            await until(lambda: coil(memory, COIL_OPEN) == 1, what="back on after the shelve")
            for other in gateway.alerts.unresolved():
                await gateway.alerts.resolve(other["id"], "kim", "worn insert", "replaced")
            await until(lambda: coil(memory, COIL_OPEN) == 0, what="off once resolved")
            await until(lambda: memory.units[1]["holding"][REGISTER] == 0xFFFF, what="register back to value_off")

            status, body = await asyncio.to_thread(fetch, port, "/healthz")
            outputs = json.loads(body)["outputs"]
            assert outputs["andon-open"]["state"] == "off" and outputs["andon-open"]["write_failures"] >= 0
            assert outputs["andon-red"]["source"] == "plc" and not outputs["andon-red"]["failing"]
            _, metrics = await asyncio.to_thread(fetch, port, "/metrics")
            assert 'spc_gateway_output_state{name="andon-open"} 0' in metrics
            assert 'spc_gateway_output_write_failures_total{name="andon-red"}' in metrics
        finally:
            await gateway.stop()
            await plc.stop()

    asyncio.run(scenario())


def test_a_dead_plc_raises_output_failed_and_holds_up_nothing_else(tmp_path: Path) -> None:
    port, modbus_port, dead_port = free_port(), free_port(), free_port()
    stack = {"name": "stack-light", "when": {"alert_types": ["OUT_OF_SPEC"]}, "write": {"source": "line-plc", "coil": 3}}
    dead = {"name": "line-plc", "type": "modbus", "host": "127.0.0.1", "port": dead_port, "timeout": "300ms",
            "backoff": {"initial": "100ms", "maximum": "300ms"}}
    config = andon_config(tmp_path, port, modbus_port, outputs=[RED, stack], sources=[dead])

    async def scenario() -> None:
        memory, plc, gateway = await line_and_gateway(config, modbus_port, 11.0)  # out of spec from the first part
        line_plc = None
        try:
            await until(lambda: bool(open_alerts(gateway, "OUTPUT_FAILED")), what="OUTPUT_FAILED raised")
            (failed,) = open_alerts(gateway, "OUTPUT_FAILED")
            assert failed["product_id"] is None and failed["characteristic"] == "stack-light"
            assert failed["texts"]["en"]["title"] == "Output cannot be written"
            assert "line-plc" in failed["texts"]["ko"]["message"]
            stats = gateway.health()["outputs"]["stack-light"]
            assert stats["failing"] and stats["write_failures"] >= 3 and stats["state"] is None
            # the other PLC's andon and readings go on; the screens answer at once
            assert coil(memory, COIL_RED) == 1
            readings = gateway.health()["sources"]["plc"]["readings"]
            await until(lambda: gateway.health()["sources"]["plc"]["readings"] >= readings + 5, what="readings")
            started = time.monotonic()
            status, _ = await asyncio.to_thread(fetch, port, "/healthz")
            assert status == 503 and time.monotonic() - started < 2.0  # 503: line-plc is down

            line_memory = PlcMemory()
            line_memory.define(1, "coil", 0, 8)
            line_plc = ModbusSimulator(line_memory, port=dead_port)
            await line_plc.start()
            await until(lambda: line_memory.units[1]["coil"][3] == 1, what="written once the PLC answers")
            await until(lambda: not open_alerts(gateway, "OUTPUT_FAILED"), what="OUTPUT_FAILED resolved")
            assert not gateway.health()["outputs"]["stack-light"]["failing"]
        finally:
            await gateway.stop()
            await plc.stop()
            if line_plc is not None:
                await line_plc.stop()

    asyncio.run(scenario())


def test_an_interlock_node_on_an_opc_ua_server(tmp_path: Path) -> None:
    port, opcua_port = free_port(), free_port()
    endpoint = f"opc.tcp://127.0.0.1:{opcua_port}/line3/"
    outputs = [
        {"name": "line-stop", "when": {"alert_types": ["OUT_OF_SPEC"], "products": ["SHAFT-20"], "state": "open"},
         "write": {"source": "cmm", "node": "ns=2;s=Line3.Interlock.Stop", "value_on": True, "value_off": False}},
        {"name": "andon-code", "when": {"alert_types": ["OUT_OF_SPEC"]},
         "write": {"source": "cmm", "node": "ns=2;s=Line3.Andon.Code", "value_on": 3, "value_off": 0}},
    ]
    cmm = {"name": "cmm", "type": "opcua", "endpoint": endpoint, "mode": "poll", "poll_interval": "100ms",
           "timeout": "2s", "backoff": {"initial": "100ms", "maximum": "500ms"}}
    products = [{"id": 1, "code": "SHAFT-20", "name": "shaft", "characteristics": [{
        "name": "od", "source": "cmm", "opcua": {"node_id": "ns=2;s=Line3.CMM.OD"}, "sampling": "every_poll",
        "spec": {"lsl": 19.9, "usl": 20.1}, "limits": {"center": 20.0, "sigma": 0.02}}]}]
    raw = minimal_config(tmp_path, port=port, sources=[cmm], products=products)
    raw["outputs"] = outputs
    config, _ = load_config(str(write_config(tmp_path, raw)))

    async def scenario() -> None:
        server = Server()
        await server.init()
        server.set_endpoint(endpoint)
        ns = await server.register_namespace("urn:test:line3")
        assert ns == 2
        objects = server.nodes.objects
        od = await objects.add_variable(ua.NodeId("Line3.CMM.OD", ns), "OD", ua.Variant(20.0, ua.VariantType.Double))
        stop = await objects.add_variable(ua.NodeId("Line3.Interlock.Stop", ns), "Stop",
                                          ua.Variant(True, ua.VariantType.Boolean))
        code = await objects.add_variable(ua.NodeId("Line3.Andon.Code", ns), "Code",
                                          ua.Variant(9, ua.VariantType.Int16))
        await stop.set_writable()
        await code.set_writable()
        await server.start()
        gateway = Gateway(config)
        await gateway.start()
        try:
            values: dict[str, Any] = {}

            async def read() -> None:
                values["stop"] = await stop.read_value()
                values["code"] = await code.read_data_value()

            async def until_read(check: Callable[[], bool], what: str) -> None:
                deadline = time.monotonic() + 10
                while True:
                    await read()
                    if check():
                        return
                    assert time.monotonic() < deadline, f"{what}: {values}"
                    await asyncio.sleep(0.05)

            await until_read(lambda: values["stop"] is False and values["code"].Value.Value == 0, "written off")
            await od.write_value(ua.Variant(20.5, ua.VariantType.Double))
            await until_read(lambda: values["stop"] is True and values["code"].Value.Value == 3, "on")
            assert values["code"].Value.VariantType == ua.VariantType.Int16  # written in the node's own type
            await od.write_value(ua.Variant(20.0, ua.VariantType.Double))
            (alert,) = open_alerts(gateway)
            await gateway.alerts.acknowledge(alert["id"], "lee")
            await asyncio.sleep(0.5)
            await read()
            assert values["stop"] is True  # `open`: an acknowledged alert still stops the line
            await gateway.alerts.resolve(alert["id"], "lee", "gauge re-zeroed")
            await until_read(lambda: values["stop"] is False, "off once resolved")
        finally:
            await gateway.stop()
            await server.stop()

    asyncio.run(scenario())


@pytest.mark.parametrize("state", ["unacknowledged", "open"])
def test_matching_by_state_type_priority_and_product(state: str) -> None:
    from gateway.config import OutputRule, OutputWhen, OutputWrite
    from gateway.outputs.andon import matches

    rule = OutputRule("x", OutputWhen(("OUT_OF_SPEC",), 3, ("SHAFT-20",), state), OutputWrite("plc", None))  # type: ignore[arg-type]
    alert = {"alert_type": "OUT_OF_SPEC", "priority": 4, "product_code": "SHAFT-20", "status": "OPEN"}
    assert matches(rule, alert)
    assert matches(rule, {**alert, "status": "ACKNOWLEDGED"}) == (state == "open")
    for status in ("SHELVED", "RESOLVED"):
        assert not matches(rule, {**alert, "status": status})
    assert not matches(rule, {**alert, "priority": 2})
    assert not matches(rule, {**alert, "product_code": "BOLT-M10"})
    assert not matches(rule, {**alert, "product_code": None})  # a gateway alert has no product
    assert not matches(rule, {**alert, "alert_type": "OUT_OF_CONTROL"})


def test_the_example_configs_commented_outputs_load_when_uncommented(tmp_path: Path) -> None:
    example = (Path(__file__).resolve().parent.parent / "config" / "gateway.example.yaml").read_text(encoding="utf-8")
    start = example.index("# outputs:")
    block = [line[2:] if line.startswith("# ") else line.lstrip("#") for line in example[start:].splitlines()
             if not line.startswith("#     # write")]
    path = tmp_path / "gateway.yaml"
    path.write_text(example[:start] + "\n".join(block) + "\n", encoding="utf-8")
    config, _ = load_config(str(path))
    assert [o.name for o in config.outputs] == ["andon-red", "line-stop"]
    assert config.outputs[0].when.state == "unacknowledged" and config.outputs[1].when.products == ("SHAFT-20",)


def test_test_output_command_refusals_and_the_general_feed(tmp_path: Path) -> None:
    """What a screen or a script may send as `test_output`, and OUTPUT_FAILED reaching a screen."""
    from websockets.asyncio.client import connect

    from gateway.tools.clients import ClientError, command

    port, modbus_port, dead_port = free_port(), free_port(), free_port()
    (tmp_path / "op.token").write_text("operator-token-0123456789")
    (tmp_path / "view.token").write_text("viewer-token-0123456789")
    stack = {"name": "stack-light", "when": {"alert_types": ["MANUAL"]}, "write": {"source": "press", "coil": 3}}
    press = {"name": "press", "type": "modbus", "host": "127.0.0.1", "port": dead_port, "timeout": "300ms",
             "backoff": {"initial": "100ms", "maximum": "300ms"}}
    raw = minimal_config(tmp_path, port=port, sources=[
        {"name": "plc", "type": "modbus", "host": "127.0.0.1", "port": modbus_port, "poll_interval": "100ms",
         "timeout": "300ms"}, press])
    raw["server"]["auth"] = [{"name": "hmi", "role": "operator", "token_file": str(tmp_path / "op.token")},
                             {"name": "office", "role": "viewer", "token_file": str(tmp_path / "view.token")}]
    raw["outputs"] = [RED, stack]
    config, _ = load_config(str(write_config(tmp_path, raw)))
    url = f"ws://127.0.0.1:{port}"

    async def refused(message: dict[str, Any], token: str, code: str) -> str:
        with pytest.raises(ClientError) as caught:
            await command(url, {"type": "test_output", **message}, token)
        assert str(caught.value).startswith(code), caught.value
        return str(caught.value)

    async def scenario() -> None:
        memory, plc, gateway = await line_and_gateway(config, modbus_port)
        try:
            op, viewer = "operator-token-0123456789", "viewer-token-0123456789"
            async with connect(f"{url}/ws/spc/notifications/?token={op}") as screen:
                good = {"output": "andon-red", "state": "on", "user": "kim"}
                await refused(good, viewer, "unauthorized")
                await refused({**good, "output": "andon-blue"}, op, "not_found")
                await refused({**good, "output": "x" * 5000}, op, "too_large")
                for bad in ({"state": "blink"}, {"state": True}, {"hold_s": 601}, {"hold_s": -1},
                            {"hold_s": float("inf")}, {"output": 7}, {"user": ""}):
                    await refused({**good, **bad}, op, "invalid_field")
                assert coil(memory, COIL_RED) == 0  # nothing of it reached the PLC
                # a write the device does not take is said as such, at once
                message = await refused({**good, "output": "stack-light"}, op, "write_failed")
                assert "not connected" in message

                reply = await command(url, {"type": "test_output", **good, "hold_s": 0.5}, op)
                assert reply["output"]["state"] == "on" and coil(memory, COIL_RED) == 1
                await until(lambda: coil(memory, COIL_RED) == 0, what="the alerts decide again after the hold")

                # the dead press: OUTPUT_FAILED on the general feed, once the next attempts fail too
                deadline = time.monotonic() + 15
                while True:
                    frame = json.loads(await asyncio.wait_for(screen.recv(), max(0.1, deadline - time.monotonic())))
                    if frame.get("type") == "alert" and frame["alert"]["alert_type"] == "OUTPUT_FAILED":
                        break
                assert frame["alert"]["characteristic"] == "stack-light" and frame["alert"]["product_id"] is None
        finally:
            await gateway.stop()
            await plc.stop()

    asyncio.run(scenario())
