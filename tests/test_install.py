"""`make install` (systemd/install.sh), staged into temporary folders: install, then upgrade in place."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests import doc_links
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
    installed_docs(tmp_path / "opt")
    checked = subprocess.run([str(exe), "check-config", str(config)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout  # missing secret files are warnings only
    config.write_text(config.read_text().replace("name: LINE-3", "name: LINE-3A"))
    again = subprocess.run(["sh", str(REPO / "systemd" / "install.sh")], env=env, capture_output=True,
                           text=True, timeout=400)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "kept the existing" in again.stdout and "LINE-3A" in config.read_text()
    installed_docs(tmp_path / "opt")


def installed_docs(prefix: Path) -> None:
    """The installed README and docs/ are the repository's, and every link in them works there."""
    pages = [prefix / "README.md", *sorted((prefix / "docs").glob("*.md"))]
    assert [p.relative_to(prefix) for p in pages] == \
        [Path("README.md"), *(p.relative_to(REPO) for p in sorted((REPO / "docs").glob("*.md")))]
    readme = (prefix / "README.md").read_text()
    assert readme == (REPO / "README.md").read_text()
    assert "docs/protocol.md" in doc_links.links(readme) and (prefix / "docs" / "protocol.md").is_file()
    assert "docs/images/hmi-alarms.png" in doc_links.links(readme)
    assert (prefix / "docs" / "images" / "hmi-alarms.png").read_bytes() == \
        (REPO / "docs" / "images" / "hmi-alarms.png").read_bytes()
    assert doc_links.problems(prefix, pages) == []
