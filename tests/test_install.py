"""`make install` (systemd/install.sh), staged into temporary folders: install, then upgrade in place."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.daemon_helpers import REPO


@pytest.mark.skipif(os.geteuid() != 0, reason="install.sh runs as root")
def test_install_then_upgrade_keeps_the_config(tmp_path: Path) -> None:
    env = {**os.environ, "PREFIX": str(tmp_path / "opt"), "ETC_DIR": str(tmp_path / "etc"),
           "UNIT_DIR": str(tmp_path / "units"), "BIN_DIR": str(tmp_path / "bin"), "SPC_GATEWAY_USER": ""}
    first = subprocess.run(["sh", str(REPO / "systemd" / "install.sh")], env=env, capture_output=True,
                           text=True, timeout=400)
    assert first.returncode == 0, first.stdout + first.stderr
    exe = tmp_path / "bin" / "spc-gateway"
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("spc-gateway ")
    config = tmp_path / "etc" / "gateway.yaml"
    assert config.read_text() == (REPO / "config" / "gateway.example.yaml").read_text()
    assert (tmp_path / "units" / "spc-gateway.service").read_text() == \
        (REPO / "systemd" / "spc-gateway.service").read_text()
    checked = subprocess.run([str(exe), "check-config", str(config)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout  # missing secret files are warnings only
    config.write_text(config.read_text().replace("name: LINE-3", "name: LINE-3A"))
    again = subprocess.run(["sh", str(REPO / "systemd" / "install.sh")], env=env, capture_output=True,
                           text=True, timeout=400)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "kept the existing" in again.stdout and "LINE-3A" in config.read_text()
