"""The config loader and check-config: broken configs as data, the contract file, typed values, garbage.

Each folder under tests/config_cases holds a gateway.yaml and the exact check-config output in
expected.txt (run from inside the folder, so file names are stable). To (re)write the expected
output after an intended change of a message: SPC_REGEN_CASES=1 pytest tests/test_config.py, then
review the diff.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest
from conftest import CONTRACT_CONFIG, REPO, needs_shared

from gateway.config import (
    ALL_TESTS,
    Config,
    ConfigError,
    Listen,
    Rules,
    Sampling,
    missing_files,
    require_files,
)
from gateway.config.check import check_config
from gateway.core.secrets import SecretError, read_secret
from gateway.sources.modbus.settings import ModbusAddress
from gateway.sources.mqtt.settings import MqttSettings
from gateway.sources.opcua.settings import OpcUaAddress
from gateway.sources.registry import SOURCES, alert_type_names, load_config

CASES = REPO / "tests" / "config_cases"
CASE_NAMES = sorted(p.name for p in CASES.iterdir() if (p / "gateway.yaml").exists())
EXAMPLE = REPO / "config" / "gateway.example.yaml"


def run_check(path: str) -> tuple[int, list[str]]:
    out = io.StringIO()
    code = check_config(path, SOURCES.kinds(), out=out, alert_types=alert_type_names())
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
        # the OPC UA server's users file is checked with the config and named as it is
        assert file in ("gateway.yaml", "opcua-users.yaml") and int(line_no) >= 1 and int(column) >= 1 and rest.startswith(" ")


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
    assert isinstance(broker, MqttSettings) and broker.client_id == "spc-gw-line3-in"

    bolt, shaft = config.products
    diameter, length = bolt.characteristics
    assert diameter.address == ModbusAddress(address=100, unit=1, table="holding", data_type="float32")
    assert diameter.sampling == Sampling("part_counter", ModbusAddress(address=110, data_type="uint32"))
    assert (diameter.chart, diameter.subgroup_size, diameter.limits.baseline_subgroups) == ("xbar_r", 5, 25)
    assert diameter.rules == Rules("nelson", ALL_TESTS["nelson"])
    assert length.address.scale == 0.01 and length.sampling == Sampling("on_change")
    assert length.limits.fixed and (length.limits.center, length.limits.sigma) == (40.0, 0.04)
    assert length.rules == Rules("nelson", (1, 2, 3, 5, 6)) and length.rules.label == "1,2,3,5,6"
    outer, runout = shaft.characteristics
    assert outer.address == OpcUaAddress("ns=2;s=Line3.CMM.Shaft.OD") and outer.sampling == Sampling("on_change")
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
    assert config.storage.flush_interval == 0.0 and config.server.max_frame == 64 * 1024


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
    text = MINIMAL.replace("host: 127.0.0.1}", "host: 127.0.0.1, poll_interval: 5m, timeout: 2s}").replace(
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
        with pytest.raises(SecretError) as exc:
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


# -------------------------------------------------------------------- issue 13: size, names, units, client ids

def test_many_origins_check_in_linear_time(tmp_path: Path) -> None:
    """40,000 allowed_origins once took 15 s (each compared with all before it); now well under a second."""
    origins = "".join(f"  - http://h{i}.lan\n" for i in range(40_000))
    text = MINIMAL + "server:\n  allowed_origins:\n" + origins
    assert len(text) < 1 << 20
    path = write(tmp_path, text)
    started = time.perf_counter()
    config, _ = load_config(path)
    elapsed = time.perf_counter() - started
    assert len(config.server.allowed_origins) == 40_000
    assert elapsed < 5.0, f"{elapsed:.1f} s"
    path = write(tmp_path, text + "  - http://h17.lan\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert [p.message for p in exc.value.problems] == ["'http://h17.lan' is listed twice"]


def test_file_larger_than_1mb_is_refused_unparsed(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "# " + "x" * (1 << 20) + "\n")
    started = time.perf_counter()
    code, lines = run_check(path)
    assert time.perf_counter() - started < 1.0
    assert code == 1 and lines == [f"{path}:1:1: (file): the file is larger than 1 MB "
                                   "(a config file of at most 1 MB; is this the right file?)",
                                   "INVALID: 1 error, 0 warnings"]


@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
def test_config_that_is_a_device_or_fifo_is_refused(tmp_path: Path, special: str) -> None:
    if special == "fifo":
        special = str(tmp_path / "fifo")
        os.mkfifo(special)  # nobody writes: opening it for reading would block forever
    code, lines = run_check(special)
    assert code == 1 and "not a regular file" in lines[0]


def test_long_product_code_and_control_characters_are_refused(tmp_path: Path) -> None:
    """A 70,000-character code passed and wedged northbound (MQTT topics are at most 65,535 bytes)."""
    text = MINIMAL.replace("code: P1", "code: " + "P" * 70_000)
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, text))
    assert [(p.path, p.message, p.allowed) for p in exc.value.problems] == [
        ("products[0].code", "is 70,000 characters long", "at most 64 characters")]
    text = MINIMAL.replace("{name: LINE-1}", '{name: "LINE\\e[2J-1"}').replace("name: Part", 'name: "Pa\\0rt"')
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, text))
    problems = exc.value.problems
    assert [(p.path, p.message) for p in problems] == [
        ("gateway.name", "contains the control character '\\x1b'"),
        ("products[0].name", "contains the control character '\\x00'")]
    assert all(ch not in str(exc.value) for ch in "\x1b\x00")


def test_bidi_controls_are_refused_in_names_as_in_alert_texts(tmp_path: Path) -> None:
    """U+202E shows "P1-ABC" as another code on the screen; the protocol refused it in texts, the config
    took it in product names (one rule now: gateway.core.characters)."""
    text = MINIMAL.replace("name: Part", 'name: "Pa\u202Ert"')
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, text))
    assert [p.path for p in exc.value.problems] == ["products[0].name"]
    assert "\u202e" not in str(exc.value)


def test_durations_need_a_unit(tmp_path: Path) -> None:
    text = MINIMAL.replace("{path: data/spc.sqlite3}", "{path: data/spc.sqlite3, retention: 180}")
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, text))
    assert [str(p).split(": ", 1)[1] for p in exc.value.problems] == [
        "storage.retention: 180 has no unit (write 180ms, 180s, 180m, 180h or 180d)"]
    text = MINIMAL.replace("{path: data/spc.sqlite3}", "{path: data/spc.sqlite3, flush_interval: 0}")
    config, _ = load_config(write(tmp_path, text))
    assert config.storage.flush_interval == 0.0  # a bare 0 is the same in every unit


def test_flush_interval_default_is_zero_everywhere(tmp_path: Path) -> None:
    """The code, the example and docs/configuration.md agree: rows are committed at once by default."""
    config, _ = load_config(write(tmp_path, MINIMAL))
    assert config.storage.flush_interval == 0.0
    example = EXAMPLE.read_text(encoding="utf-8")
    assert "flush_interval: 0ms" in example and "(default 0ms" in example


def test_same_client_id_on_one_broker_is_an_error(tmp_path: Path) -> None:
    text = MINIMAL.replace("  - {name: plc, type: modbus, host: 127.0.0.1}",
                           "  - {name: plc, type: modbus, host: 127.0.0.1}\n"
                           "  - {name: gauges, type: mqtt, host: BROKER, port: 1883, client_id: gw}") + (
        "northbound:\n  mqtt: {host: broker, client_id: gw}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, text))
    assert [p.path for p in exc.value.problems if p.severity == "error"] == ["sources[1].client_id"]
    assert "also used by northbound.mqtt" in exc.value.problems[0].message
    config, _ = load_config(write(tmp_path, text.replace("port: 1883, client_id: gw", "port: 1884, client_id: gw")))
    assert config.northbound.mqtt.client_id == config.sources[1].client_id == "gw"  # another broker


# -------------------------------------------------------------------- secret files (issue 13, item 7)

def _fifo(tmp_path: Path) -> str:
    path = str(tmp_path / "fifo")
    os.mkfifo(path)  # nobody ever writes: a blocking open or read would wait forever
    return path


@pytest.mark.parametrize("special", ["/dev/zero", "/dev/urandom", "/dev/null", "fifo", "folder", "big"])
def test_read_secret_refuses_devices_fifos_and_big_files_at_once(tmp_path: Path, special: str) -> None:
    if special == "fifo":
        special = _fifo(tmp_path)
    elif special == "folder":
        special = str(tmp_path)
    elif special == "big":
        special = write(tmp_path, "x" * (64 * 1024 + 1), "big")
    started = time.perf_counter()
    with pytest.raises(SecretError) as exc:
        read_secret(special)
    assert time.perf_counter() - started < 1.0
    assert exc.value.message in (
        "cannot read the secret file: not a regular file (a device, FIFO or socket)",
        "cannot read the secret file: is a folder, not a file", "the secret file is larger than 64 KB")


@pytest.mark.parametrize(("content", "secret"), [
    ("s3cret\n", "s3cret"), ("s3cret\r\n", "s3cret"), ("s3cret", "s3cret"),
    ("s3cret \n", "s3cret "), (" pass word", " pass word"), ("비밀\n", "비밀"),
])
def test_read_secret_takes_the_text_minus_one_line_ending(tmp_path: Path, content: str, secret: str) -> None:
    assert read_secret(write(tmp_path, content, "secret")) == secret


@pytest.mark.parametrize("content", [b"", b"\n", b"Qx7one\nQx7two\n", b"Qx7\n\n", b"Qx7\x00Qx7", b"\xff\xfeQx7"])
def test_read_secret_refuses_what_is_not_one_line(tmp_path: Path, content: bytes) -> None:
    with pytest.raises(SecretError) as exc:
        read_secret(write(tmp_path, content, "secret"))
    assert "Qx7" not in str(exc.value)  # never the secret itself


def test_every_secret_reader_uses_the_same_rule(tmp_path: Path) -> None:
    """A trailing space once counted for MQTT out (first line, newline cut) and not for MQTT in (strip)."""
    from gateway.outputs.mqtt_link import NorthboundError, read_password
    from gateway.sources.mqtt.settings import MqttSettings as MqttSourceConfig
    from gateway.sources.mqtt.worker import new_client
    from gateway.sources.opcua.source import OpcUaConfigError, _read_secret

    path = write(tmp_path, "pass word \n", "password")
    client = new_client(MqttSourceConfig("gauges", "127.0.0.1", username="line3", password_file=path),
                        "gw-in", persistent=False, manual_ack=False)
    assert client._password == b"pass word "  # what paho sends in CONNECT
    assert read_password(path) == _read_secret(path) == read_secret(path) == "pass word "
    fifo = _fifo(tmp_path)
    with pytest.raises(NorthboundError, match="not a regular file"):
        read_password(fifo)
    with pytest.raises(OpcUaConfigError, match="not a regular file"):
        _read_secret(fifo)
    with pytest.raises(SecretError):
        new_client(MqttSourceConfig("gauges", "127.0.0.1", username="line3", password_file=fifo),
                   "gw-in", persistent=False, manual_ack=False)


def test_check_config_refuses_secret_files_that_are_devices(tmp_path: Path) -> None:
    fifo = _fifo(tmp_path)
    text = MINIMAL + ("server:\n  auth:\n    - {name: a, role: operator, token_file: /dev/zero}\n"
                      f"    - {{name: b, role: viewer, token_file: {fifo}}}\n"
                      "    - {name: c, role: viewer, token_file: missing}\n")
    code, lines = run_check(write(tmp_path, text))
    assert code == 1, lines
    assert [line.split(": ", 1)[1] for line in lines] == [
        "server.auth[0].token_file: is not a regular file (a device, FIFO or socket): /dev/zero "
        "(the gateway refuses to start until it is fixed)",
        f"server.auth[1].token_file: is not a regular file (a device, FIFO or socket): {fifo} "
        "(the gateway refuses to start until it is fixed)",
        f"warning: server.auth[2].token_file: file not found: {tmp_path}/missing "
        "(the gateway refuses to start until it exists)",
        "2 errors, 1 warning"]


def test_aliases_that_multiply_lists_are_refused_at_once(tmp_path: Path) -> None:
    """300 aliases of a product with 300 aliases of one characteristic: 90,000 characteristics in 30 lines."""
    text = MINIMAL.replace("products:\n", "x-char: &c {name: d, source: plc, modbus: {address: 0}, spec: {usl: 2}}\n"
                           "x-product: &p {id: 1, code: P, name: N, characteristics: [" + ", ".join(["*c"] * 300)
                           + "]}\nproducts: [" + ", ".join(["*p"] * 300) + "]\nx-old:\n")
    started = time.perf_counter()
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, text))
    assert time.perf_counter() - started < 1.0
    assert [(p.path, p.message) for p in exc.value.problems] == [
        ("(yaml)", "aliases (*name) expand 70 values into 1,176,670")]
