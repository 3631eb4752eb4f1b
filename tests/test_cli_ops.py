"""Operations details of the command line: backups others cannot read, `| head` without a traceback,
and `make demo` installing only what the gateway needs."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.store import Store
from tests.conftest import free_port, run_make
from tests.daemon_helpers import REPO, Daemon, minimal_config, write_config

ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def cli(*argv: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *argv], text=True, timeout=60, cwd=REPO, env=ENV,
                          **kwargs)


def make_database(path: Path) -> None:
    from types import SimpleNamespace

    async def fill() -> None:
        store = Store(str(path))
        await store.open()
        store.sync_catalog([SimpleNamespace(id=1, code="A-100", name="Shaft",
                                            characteristics=(SimpleNamespace(name="diameter"),))])
        with store.batch() as b:
            for n in range(3000):
                b.measurement(product_id=1, characteristic="diameter", value=10.0 + n / 1000, measured_at=1.7e9 + n,
                              received_at=1.7e9 + n, sample_number=n, subgroup_number=n, is_within_spec=True,
                              is_within_control=None)
        await b.committed
        await store.close()
    asyncio.run(fill())


# ---------------------------------------------------------------- backups

@pytest.mark.parametrize("db_mode, expected", [(0o640, 0o640), (0o600, 0o600), (0o644, 0o640), (0o666, 0o640)])
def test_backup_is_never_readable_by_others(tmp_path: Path, db_mode: int, expected: int) -> None:
    """Under systemd (UMask=0027) the database is 0640; `sudo spc-gateway backup` runs with umask 022,
    which used to leave a 0644 copy of every measurement. The copy takes the database's permissions,
    never any for others."""
    db = tmp_path / "spc.sqlite3"
    make_database(db)
    os.chmod(db, db_mode)
    copy = tmp_path / "copy.sqlite3"
    done = cli("backup", str(copy), "--db", str(db), capture_output=True)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(os.stat(copy).st_mode) == expected
    assert not (tmp_path / "copy.sqlite3.partial").exists()


def test_backup_replacing_an_old_readable_file_is_not_readable_either(tmp_path: Path) -> None:
    db = tmp_path / "spc.sqlite3"
    make_database(db)
    os.chmod(db, 0o640)
    copy = tmp_path / "copy.sqlite3"
    copy.write_text("last week's")
    os.chmod(copy, 0o644)
    assert cli("backup", str(copy), "--db", str(db), capture_output=True).returncode == 0
    assert stat.S_IMODE(os.stat(copy).st_mode) == 0o640


# ---------------------------------------------------------------- `| head`: the reader goes away

@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("pipe")
    port = free_port()
    gateway = Daemon(write_config(tmp, minimal_config(tmp, port=port))).start(wait_for_port=port)
    try:
        yield f"ws://127.0.0.1:{port}"
    finally:
        gateway.stop()


def into_closed_pipe(*argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run the CLI with stdout a pipe whose reader has already gone, as `... | head` after head exits."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([sys.executable, "-m", "gateway.cli", *argv], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=timeout, cwd=REPO, env=ENV)
    finally:
        os.close(write_end)


def test_a_closed_pipe_ends_every_printing_command_quietly(tmp_path: Path, daemon: str) -> None:
    db = tmp_path / "spc.sqlite3"
    make_database(db)
    values = tmp_path / "values.csv"  # made here: a copy of the repository alone has no reference data
    values.write_text("value\n" + "".join(f"{10 + (n % 7) / 100}\n" for n in range(200)))
    commands = [
        ("status", "--json", "--url", daemon),
        ("status", "--url", daemon),
        ("watch", "--url", daemon),  # would otherwise run until Ctrl-C
        ("alert", "list", "--url", daemon),
        ("export", "--db", str(db), "--product", "1"),  # 3000 rows to stdout
        ("analyze", str(values), "--subgroup-size", "5"),
        ("check-config", str(REPO / "config" / "gateway.example.yaml")),
    ]
    for argv in commands:
        done = into_closed_pipe(*argv)
        assert done.returncode == 141, (argv, done.returncode, done.stderr)
        assert done.stderr == "", (argv, done.stderr)  # no traceback, no "Exception ignored"
    done = into_closed_pipe("--help")  # argparse swallows the error itself and exits 0
    assert done.returncode == 0 and done.stderr == ""


def test_watch_flushes_each_line_and_ends_when_head_does(daemon: str) -> None:
    """`watch | head -2`: two lines (connection and snapshot) reach head at once, and watch then ends
    by itself instead of running on, writing into nothing."""
    head = subprocess.Popen(["head", "-2"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert head.stdin is not None and head.stdout is not None
    watch = subprocess.Popen([sys.executable, "-m", "gateway.cli", "watch", "--url", daemon], stdout=head.stdin,
                             stderr=subprocess.PIPE, text=True, cwd=REPO, env=ENV)
    head.stdin.close()
    try:
        lines = head.stdout.read().splitlines()
        assert len(lines) == 2 and "role operator" in lines[0] and "unresolved alert(s)" in lines[1]
        head.wait(10)
        # the next line watch prints (a reading of the stale source raises SOURCE_STALE, or the
        # measurement feed) finds the pipe closed; a quiet feed would leave it waiting, so poke it
        import json
        import urllib.request

        http = daemon.replace("ws://", "http://")
        request = urllib.request.Request(http + "/api/spc/alerts/", method="POST", data=json.dumps(
            {"product": 1, "alert_type": "MANUAL", "priority": 2, "title": "t", "message": "m"}).encode(),
            headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=10).read()
        assert watch.wait(15) == 141
        assert watch.stderr is not None and watch.stderr.read() == ""
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait(5)


# ---------------------------------------------------------------- `make demo` / `make test`

def make_dry_run(folder: Path, target: str) -> str:
    done = run_make(["-n", target], folder)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_demo_installs_the_runtime_only_and_make_test_the_test_extras(tmp_path: Path) -> None:
    shutil.copy(REPO / "Makefile", tmp_path)
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    demo = make_dry_run(tmp_path, "demo")
    assert "pip install --quiet -e .\n" in demo and "[test]" not in demo  # no playwright for a demo
    assert "bin/spc-gateway demo" in demo
    test = make_dry_run(tmp_path, "test")
    assert "pip install --quiet -e .\n" in test and "pip install --quiet -e '.[test]'" in test
    # installed: nothing is installed again
    venv = tmp_path / ".venv"
    venv.mkdir()
    (venv / ".installed").touch()
    (venv / ".installed-test").touch()
    assert "pip install" not in make_dry_run(tmp_path, "demo")
    assert "pip install" not in make_dry_run(tmp_path, "test")
    # pyproject.toml changed: both installs are redone, each by the target that needs it
    later = time.time() + 5
    os.utime(tmp_path / "pyproject.toml", (later, later))
    demo = make_dry_run(tmp_path, "demo")
    assert "pip install --quiet -e .\n" in demo and "[test]" not in demo
    assert "pip install --quiet -e '.[test]'" in make_dry_run(tmp_path, "test")
    # a demo run after the change, then `make test`: the test extras are installed again on top
    os.utime(venv / ".installed", (later + 5, later + 5))
    test = make_dry_run(tmp_path, "test")
    assert "pip install --quiet -e .\n" not in test and "pip install --quiet -e '.[test]'" in test


def test_runtime_dependencies_hold_no_test_tool() -> None:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = " ".join(project["dependencies"]).lower()
    for tool in ("playwright", "pytest", "hypothesis", "ruff"):
        assert tool not in runtime
        assert any(tool in d.lower() for d in project["optional-dependencies"]["test"])


def test_every_gateway_module_imports_without_the_test_tools() -> None:
    """What `make demo` installs is enough: no module of the gateway needs a test extra."""
    script = """
import importlib, pkgutil, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('pytest', 'hypothesis', 'playwright', 'ruff', '_pytest', 'tests'):
            raise ImportError('test tool ' + name)
sys.meta_path.insert(0, Block())
import gateway
for info in pkgutil.walk_packages(gateway.__path__, 'gateway.'):
    importlib.import_module(info.name)
print('ok')
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=REPO,
                          env=ENV)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_the_cli_reference_names_every_command_and_option() -> None:
    """docs/cli.md keeps up with the parser: every command, alert action and long option is in it."""
    import argparse

    from gateway.cli import build_parser

    doc = (REPO / "docs" / "cli.md").read_text()
    missing: list[str] = []
    seen: set[int] = set()

    def walk(parser: argparse.ArgumentParser, words: list[str]) -> None:
        seen.add(id(parser))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    if id(sub) not in seen:  # an alias is the same parser again
                        walk(sub, [*words, name])
            else:
                missing.extend(f"{' '.join(words)} {o}" for o in action.option_strings
                               if o.startswith("--") and o not in ("--help", "--version") and f"{o}" not in doc)
        if words and f"`{' '.join(words)}" not in doc and f"spc-gateway {' '.join(words)}" not in doc:
            missing.append(" ".join(words))

    walk(build_parser(), [])
    assert missing == []


def test_the_http_api_reference_names_every_route() -> None:
    doc = (REPO / "docs" / "http-api.md").read_text()
    for route in ("GET /healthz", "GET /metrics", "GET /api/spc/products/", "GET /api/spc/alerts/",
                  "POST /api/spc/alerts/", "GET /api/spc/products/{id}/measurements/",
                  "GET /api/spc/products/{id}/capability/", "GET /static/"):
        assert route in doc, route
    for parameter in ("status", "product", "limit", "before_id", "characteristic"):
        assert f"| `{parameter}` |" in doc, parameter
