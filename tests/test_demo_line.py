"""The demo line: every gauge has its characteristic's own mean and spread, so parts are in spec until a
planned disturbance, and each disturbance trips the characteristic's rules (the real SPC engine), and
`demo --simulators-only` serves that line where config/demo.yaml looks for it (real Modbus, OPC UA)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gateway.sim.demo import PLAN, demo_gauges
from gateway.sources.registry import load_config
from gateway.spc.engine import CharacteristicEngine, EngineSettings
from tests.conftest import free_port, wait_port
from tests.daemon_helpers import REPO

DEMO_YAML = REPO / "config" / "demo.yaml"
PARTS = 400  # every planned disturbance is over by part 340


def test_each_gauge_is_in_spec_until_its_disturbances_which_trip_rules() -> None:
    config, _ = load_config(str(DEMO_YAML))
    gauges = demo_gauges(config)
    for characteristic in (c for p in config.products for c in p.characteristics):
        name, gauge, spec = characteristic.name, gauges[characteristic.name], characteristic.spec
        engine = CharacteristicEngine(EngineSettings.from_characteristic(characteristic))
        disturbances = PLAN[name].disturbances
        first = min(d.start for d in disturbances)
        # a rule may fire a few parts after its disturbance ends (the moving range, a run still counting)
        windows = [(d.start, d.start + d.length + 10) for d in disturbances]
        out_of_spec, during, outside = [], 0, 0
        for part in range(PARTS):
            value = gauge.next()
            result = engine.ingest(value, 1_700_000_000.0 + part)
            if not spec.lsl <= value <= spec.usl:
                out_of_spec.append(part)
            if any(start <= part < end for start, end in windows):
                during += len(result.violations)
            else:
                outside += len(result.violations)
        assert not [p for p in out_of_spec if p < first], f"{name}: out of spec before any disturbance"
        assert len(out_of_spec) <= 0.05 * PARTS, f"{name}: {len(out_of_spec)} of {PARTS} parts out of spec"
        # the planned disturbances, not chance, are what the demo's alarms show
        assert during >= 20 and during >= 8 * outside, f"{name}: {during} violations during, {outside} outside"


def test_simulators_only_serve_the_line_config_demo_yaml_reads(tmp_path: Path) -> None:
    modbus_port, opcua_port = free_port(), free_port()
    # config/demo.yaml as shipped, on the ports of this test
    text = DEMO_YAML.read_text().replace("port: 5020", f"port: {modbus_port}").replace(":4840/", f":{opcua_port}/")
    config_path = tmp_path / "demo.yaml"
    config_path.write_text(text)
    sims = subprocess.Popen([sys.executable, "-m", "gateway.cli", "demo", "--simulators-only",
                             "--modbus-port", str(modbus_port), "--opcua-port", str(opcua_port)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_port(modbus_port, timeout=30)
        wait_port(opcua_port, timeout=30)
        values = {}
        for source, address in (("plc", "diameter"), ("plc", "length"), ("cmm", "ns=2;s=Line3.CMM.Shaft.OD")):
            probe = subprocess.run([sys.executable, "-m", "gateway.cli", "probe", "--config", str(config_path),
                                    source, address], cwd=REPO, capture_output=True, text=True, timeout=60)
            assert probe.returncode == 0, probe.stdout + probe.stderr
            values[address] = probe.stdout
        # the length gauge is a 40 mm gauge (spec 39.8-40.2), not the 10 mm one
        length = float(values["length"].split("configured float32 ABCD: ")[1].split()[0])
        assert 39.8 < length < 40.2, values["length"]
        diameter = float(values["diameter"].split("configured float32 ABCD: ")[1].split()[0])
        assert 9.7 < diameter < 10.3, values["diameter"]
        assert "value=20.0" in values["ns=2;s=Line3.CMM.Shaft.OD"] or "value=19.9" in \
            values["ns=2;s=Line3.CMM.Shaft.OD"], values
    finally:
        sims.terminate()
        out, err = sims.communicate(timeout=15)
    assert sims.returncode == 0, err
    assert "Traceback" not in err
    assert f"127.0.0.1:{modbus_port}" in out and f"opc.tcp://127.0.0.1:{opcua_port}/spc-gateway/sim/" in out
