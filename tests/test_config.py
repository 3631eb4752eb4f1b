"""The config loader and check-config: broken configs as data, the contract file, typed values, garbage.

Each folder under tests/config_cases holds a gateway.yaml and the exact check-config output in
expected.txt (run from inside the folder, so file names are stable). To (re)write the expected
output after an intended change of a message: SPC_REGEN_CASES=1 pytest tests/test_config.py, then
review the diff.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from conftest import CONTRACT_CONFIG, REPO, needs_shared

from gateway.config import (
    ALL_TESTS,
    Config,
    ConfigError,
    Listen,
    ModbusAddress,
    MqttSource,
    OpcUaAddress,
    Rules,
    Sampling,
    load_config,
    missing_files,
    read_secret,
    require_files,
)
from gateway.configcheck import check_config

CASES = REPO / "tests" / "config_cases"
CASE_NAMES = sorted(p.name for p in CASES.iterdir() if (p / "gateway.yaml").exists())
EXAMPLE = REPO / "config" / "gateway.example.yaml"


def run_check(path: str) -> tuple[int, list[str]]:
    out = io.StringIO()
    code = check_config(path, out=out)
    return code, out.getvalue().splitlines()


@pytest.mark.parametrize("case", CASE_NAMES)
def test_config_case(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CASES / case)
    code, lines = run_check("gateway.yaml")
    expected_file = CASES / case / "expected.txt"
    if os.environ.get("SPC_REGEN_CASES"):
        expected_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    expected = expected_file.read_text(encoding="utf-8").splitlines()
    assert lines == expected
    assert code == (0 if expected[-1].startswith("OK:") else 1)
    for line in lines[:-1]:  # every problem: FILE:LINE:COLUMN: key.path: message
        file, line_no, column, rest = line.split(":", 3)
        assert file == "gateway.yaml" and int(line_no) >= 1 and int(column) >= 1 and rest.startswith(" ")


def test_enough_cases() -> None:
    assert len(CASE_NAMES) >= 25


@needs_shared
def test_contract_config_is_valid() -> None:
    code, lines = run_check(str(CONTRACT_CONFIG))
    assert code == 0, lines
    assert lines[-1].startswith("OK: 4 sources, 2 products, 4 characteristics")
    assert all(": warning: " in line for line in lines[:-1])  # only missing secret/certificate files


@needs_shared
def test_contract_config_typed_values() -> None:
    config, warnings = load_config(str(CONTRACT_CONFIG))
    assert isinstance(config, Config) and config.path == str(CONTRACT_CONFIG)
    assert config.gateway.name == "LINE-3" and config.gateway.language == "ko"
    assert config.gateway.timezone == "Asia/Seoul"
    assert config.storage.retention == 180 * 86400
    assert config.storage.max_size == 2 * 1024**3
    assert config.server.listen == Listen("0.0.0.0", 8000)
    assert [(a.name, a.role) for a in config.server.auth] == [("hmi-line3", "operator"), ("office-dashboard", "viewer")]
    mqtt = config.northbound.mqtt
    assert (mqtt.port, mqtt.qos, mqtt.buffer_limit) == (8883, 1, 1024**3)
    assert mqtt.publish == ("alert", "capability", "violation", "measurement")
    assert mqtt.tls.ca_file == "/etc/spc-gateway/pki/plant-ca.pem"
    plc, rs485, cmm, broker = config.sources
    assert (plc.poll_interval, plc.timeout, rs485.timeout) == (0.5, 1.0, 0.3)
    assert (rs485.transport, rs485.parity, rs485.baudrate) == ("rtu", "E", 19200)
    assert cmm.sampling_interval == 0.25 and cmm.security.mode == "SignAndEncrypt"
    assert isinstance(broker, MqttSource) and broker.client_id == "spc-gw-line3-in"

    bolt, shaft = config.products
    diameter, length = bolt.characteristics
    assert diameter.modbus == ModbusAddress(address=100, unit=1, table="holding", data_type="float32")
    assert diameter.sampling == Sampling("part_counter", ModbusAddress(address=110, data_type="uint32"))
    assert (diameter.chart, diameter.subgroup_size, diameter.limits.baseline_subgroups) == ("xbar_r", 5, 25)
    assert diameter.rules == Rules("nelson", ALL_TESTS["nelson"])
    assert length.modbus.scale == 0.01 and length.sampling == Sampling("on_change")
    assert length.limits.fixed and (length.limits.center, length.limits.sigma) == (40.0, 0.04)
    assert length.rules == Rules("nelson", (1, 2, 3, 5, 6)) and length.rules.label == "1,2,3,5,6"
    outer, runout = shaft.characteristics
    assert outer.opcua == OpcUaAddress("ns=2;s=Line3.CMM.Shaft.OD") and outer.sampling == Sampling("on_change")
    assert outer.rules == Rules("western_electric", (1, 2, 3, 4)) and outer.rules.label == "western_electric"
    assert runout.spec.lsl is None and runout.spec.target is None and runout.spec.usl == 0.05  # one-sided
    assert runout.sampling == Sampling("per_message")
    assert runout.alert_priority.out_of_spec == 5 and runout.alert_priority.out_of_control == 3
    assert shaft.name == "20mm 샤프트"
    # immutable
    with pytest.raises(AttributeError):
        config.storage.path = "/tmp/x"  # type: ignore[misc]
    # files that do not exist here are warnings, located at their key
    assert {w.path for w in warnings} >= {"server.auth[0].token_file", "northbound.mqtt.password_file"}
    assert all(w.severity == "warning" for w in warnings)
    assert missing_files(config) == [w for w in warnings if w.message.startswith("file not found")]


def test_example_config_loads() -> None:
    code, lines = run_check(str(EXAMPLE))
    assert code == 0, lines
    config, _ = load_config(str(EXAMPLE))
    assert config.storage.flush_interval == 0.01 and config.server.max_frame == 64 * 1024


def write(tmp_path: Path, text: str | bytes, name: str = "gateway.yaml") -> str:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


MINIMAL = """\
gateway: {name: LINE-1}
storage: {path: data/spc.sqlite3}
sources:
  - {name: plc, type: modbus, host: 127.0.0.1}
products:
  - id: 1
    code: P1
    name: Part
    characteristics:
      - {name: d, source: plc, modbus: {address: 0}, spec: {lsl: 1, usl: 2}}
"""


def test_defaults_and_units(tmp_path: Path) -> None:
    text = MINIMAL.replace("{path: data/spc.sqlite3}", "{path: data/spc.sqlite3, retention: 90d, max_size: 512KB}")
    with pytest.raises(ConfigError):  # 512KB is below the 1MB floor
        load_config(write(tmp_path, text))
    text = MINIMAL.replace("{path: data/spc.sqlite3}",
                           "{path: data/spc.sqlite3, retention: 250ms, max_size: 200MB}\n"
                           "server: {listen: '[::1]:8443'}")
    config, warnings = load_config(write(tmp_path, text))
    assert warnings == []
    assert config.storage.retention == 0.25 and config.storage.max_size == 200 * 1024**2
    assert config.storage.path == str(tmp_path / "data" / "spc.sqlite3")  # relative to the config's folder
    assert config.server.listen == Listen("::1", 8443)
    assert config.northbound is None and config.server.auth == ()
    (char,) = config.products[0].characteristics
    assert char.sampling == Sampling("on_change") and char.chart == "imr" and char.subgroup_size == 1
    assert char.limits.baseline_subgroups == 25 and not char.limits.fixed
    assert char.rules == Rules("nelson", (1, 2, 3, 4, 5, 6, 7, 8))
    text = MINIMAL.replace("host: 127.0.0.1}", "host: 127.0.0.1, poll_interval: 5m, timeout: 2}").replace(
        "spec: {lsl: 1, usl: 2}}", "spec: {lsl: 1, usl: 2}, subgroup_size: 12, rules: [6, 1, 2], stale_after: 1h}")
    config, _ = load_config(write(tmp_path, text))
    assert config.sources[0].poll_interval == 300.0 and config.sources[0].timeout == 2.0
    (char,) = config.products[0].characteristics
    assert (char.chart, char.subgroup_size, char.rules.tests, char.stale_after) == ("xbar_s", 12, (1, 2, 6), 3600.0)


def test_part_counter_on_opcua_and_unit_default(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "  - {name: plc, type: modbus, host: 127.0.0.1}",
        "  - {name: plc, type: modbus, host: 127.0.0.1}\n  - {name: cmm, type: opcua, endpoint: 'opc.tcp://h:4840'}",
    ).replace(
        "      - {name: d, source: plc, modbus: {address: 0}, spec: {lsl: 1, usl: 2}}",
        "      - {name: d, source: plc, modbus: {unit: 9, address: 0}, spec: {lsl: 1, usl: 2},"
        " sampling: {part_counter: {address: 7}}}\n"
        "      - {name: e, source: cmm, opcua: {node_id: 'ns=2;s=E'}, spec: {usl: 2},"
        " sampling: {part_counter: {node_id: 'ns=2;s=Count'}}}",
    )
    config, _ = load_config(write(tmp_path, text))
    d, e = config.products[0].characteristics
    assert d.sampling == Sampling("part_counter", ModbusAddress(address=7, unit=9))  # the value's unit
    assert e.sampling == Sampling("part_counter", OpcUaAddress("ns=2;s=Count"))


def test_missing_files_refuse_and_secret(tmp_path: Path) -> None:
    text = MINIMAL.replace("{path: data/spc.sqlite3}", "{path: spc.sqlite3}\n"
                           "server:\n  auth:\n    - {name: hmi, role: operator, token_file: tokens/hmi}")
    path = write(tmp_path, text)
    config, warnings = load_config(path)
    assert [str(w) for w in warnings] == [
        f"{path}:5:47: warning: server.auth[0].token_file: file not found: {tmp_path}/tokens/hmi "
        "(the gateway refuses to start until it exists)"]
    refused = require_files(config, warnings)
    assert [p.severity for p in refused] == ["error"] and "tokens/hmi" in str(refused[0])
    (tmp_path / "tokens").mkdir()
    (tmp_path / "tokens" / "hmi").write_text("s3cret-token\n")
    assert missing_files(config) == [] and require_files(config) == []
    assert read_secret(config.server.auth[0].token_file) == "s3cret-token"
    (tmp_path / "tokens" / "empty").write_text("\n")
    for bad in (tmp_path / "tokens" / "empty", tmp_path / "tokens" / "nope"):
        with pytest.raises(ConfigError) as exc:
            read_secret(str(bad))
        assert "s3cret" not in str(exc.value)


@pytest.mark.parametrize("garbage", [
    b"\x00\x01\x02\xff\xfe binary",
    bytes(range(256)) * 4,
    b"[" * 5000 + b"]" * 5000,
    b"a: " * 3000 + b"x",
    b"- 1\n- 2\n",
    b"just a string",
    b"12345",
    b"~",
    b"gateway: !!python/object:os.system {}\n",
    b"a: &a [*a, *a]\n",
    b"gateway: &g {name: x}\nstorage: *g\nsources: [*g, *g]\nproducts: [{characteristics: [*g]}]\n",
    b"? [complex, key]\n: value\n",
    b"gateway:\n  name: !custom LINE\n",
    b"products:\n  - id: 99999999999999999999999\n",
    b"storage: {path: x, retention: .inf, max_size: 1e400}\n",
    "gateway: {name: \ufeffLINE}\n".encode("utf-16"),
])
def test_garbage_only_raises_config_error(tmp_path: Path, garbage: bytes) -> None:
    path = write(tmp_path, garbage)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert exc.value.problems and all(p.line >= 1 and p.column >= 1 for p in exc.value.problems)
    code, lines = run_check(path)
    assert code == 1 and lines[-1].startswith("INVALID:")


def test_unreadable_paths(tmp_path: Path) -> None:
    for path in (str(tmp_path / "missing.yaml"), str(tmp_path)):
        code, lines = run_check(path)
        assert code == 1 and lines[0].startswith(f"{path}:1:1: (file): cannot read the file")
