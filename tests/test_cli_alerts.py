"""`spc-gateway alert list|ack|comment|shelve|unshelve|resolve` as a technician types them, against the
real daemon (a subprocess with tokens): each change is stored, reaches the screens, and a refusal says why
and changes nothing."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets

from gateway.cli import main
from tests.daemon_helpers import REPO, Daemon, minimal_config, write_config

OPERATOR, VIEWER = "op-secret-7c1e", "view-secret-93ab"


class Gateway:
    """The daemon and how to call the CLI against it."""

    def __init__(self, daemon: Daemon, port: int):
        self.daemon = daemon
        self.port = port
        self.url = f"ws://127.0.0.1:{port}"

    def cli(self, *argv: str, token: str | None = OPERATOR, user: str | None = "김철수",
            env: dict[str, str] | None = None, subprocess_: bool = False) -> subprocess.CompletedProcess[str]:
        """`spc-gateway ARGV --url ... [--token] [--user]`: in this process (fast), or as a subprocess."""
        args = [*argv, "--url", self.url]
        if token is not None:
            args += ["--token", token]
        if user is not None and argv[:2] != ("alert", "list") and argv[:2] != ("alert", "create"):
            args += ["--user", user]
        if subprocess_:
            return subprocess.run([sys.executable, "-m", "gateway.cli", *args], capture_output=True, text=True,
                                  timeout=30, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})
        out, err = io.StringIO(), io.StringIO()
        saved = dict(os.environ)
        os.environ.update(env or {})
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = main(args)
                except SystemExit as exc:  # argparse: usage errors
                    code = int(exc.code or 0)
        finally:
            os.environ.clear()
            os.environ.update(saved)
        return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())

    def create(self, title: str, product: int = 1) -> int:
        done = self.cli("alert", "create", "--product", str(product), "--type", "MANUAL", "--priority", "3",
                        "--title", title, "--message", "typed in by a test")
        assert done.returncode == 0, done.stderr
        return int(done.stdout.split()[1])

    def alerts(self, *argv: str) -> list[dict]:
        done = self.cli("alert", "list", "--json", *argv)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def history(self, alert_id: int) -> list[tuple[str, str, str]]:
        import sqlite3

        conn = sqlite3.connect(self.daemon.config_path.parent / "spc.sqlite3")
        try:
            return conn.execute("SELECT action, who, to_status FROM alert_history WHERE alert_id = ? ORDER BY id",
                                (alert_id,)).fetchall()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    from tests.conftest import free_port

    tmp = tmp_path_factory.mktemp("cli-alerts")
    (tmp / "op.token").write_text(OPERATOR + "\n")
    (tmp / "view.token").write_text(VIEWER + "\n")
    port = free_port()
    config = minimal_config(tmp, port=port, products=[
        {"id": product_id, "code": code, "name": code, "characteristics": [{
            "name": "diameter", "unit": "mm", "source": "plc",
            "modbus": {"unit": 1, "table": "holding", "address": 0, "data_type": "float32"},
            "sampling": "every_poll", "spec": {"lsl": 9.5, "usl": 10.5}, "chart": "imr",
            "limits": {"center": 10.0, "sigma": 0.1}, "rules": "nelson"}]}
        for product_id, code in ((1, "BOLT-M10"), (2, "SHAFT-20"))])
    config["server"]["auth"] = [{"name": "cli", "role": "operator", "token_file": str(tmp / "op.token")},
                                {"name": "screen", "role": "viewer", "token_file": str(tmp / "view.token")}]
    daemon = Daemon(write_config(tmp, config)).start(wait_for_port=port)
    try:
        yield Gateway(daemon, port)
    finally:
        daemon.stop()


def test_list_filters_and_prints_a_table(gateway: Gateway) -> None:
    first = gateway.create("누름쇠 마모 확인")
    second = gateway.create("Shaft gauge re-zero", product=2)
    third = gateway.create("third one")
    table = gateway.cli("alert", "list", subprocess_=True)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ID", "P", "STATUS", "TYPE", "PRODUCT", "CHARACTERISTIC", "CREATED", "N", "TITLE"]
    rows = {int(line.split()[0]): line for line in lines[1:]}
    assert {first, second, third} <= set(rows)
    assert rows[first].endswith("누름쇠 마모 확인") and "BOLT-M10" in rows[first] and " OPEN " in rows[first]
    assert [int(line.split()[0]) for line in lines[1:]] == sorted(rows, reverse=True)  # newest first
    # filters: product, status, limit, the next page (the gateway adds SOURCE_STALE alerts of its own
    # meanwhile: its Modbus source never answers)
    assert {a["id"] for a in gateway.alerts("--product", "2") if a["alert_type"] == "MANUAL"} == {second}
    assert {a["product_id"] for a in gateway.alerts("--product", "2")} == {2}
    newest = gateway.alerts("--limit", "1")
    assert len(newest) == 1 and newest[0]["id"] >= max(rows)
    assert all(a["id"] < third for a in gateway.alerts("--before-id", str(third)))
    assert {a["status"] for a in gateway.alerts("--status", "open")} == {"OPEN"}
    # a viewer may read the list
    assert gateway.cli("alert", "list", token=VIEWER).returncode == 0
    # wrong input: a usage error before anything is sent
    bad = gateway.cli("alert", "list", "--status", "CLOSED")
    assert bad.returncode == 2 and "one of OPEN, ACKNOWLEDGED, SHELVED, RESOLVED" in bad.stderr
    bad = gateway.cli("alert", "list", "--limit", "0")
    assert bad.returncode == 2 and "from 1 to 500" in bad.stderr
    unknown = gateway.cli("alert", "list", "--product", "9")
    assert unknown.returncode == 1 and "not_found" in unknown.stderr


def test_ack_comment_shelve_unshelve_resolve(gateway: Gateway) -> None:
    alert_id = gateway.create("bore too wide")

    async def watch_screen(seen: list[dict]) -> None:
        async with websockets.connect(f"{gateway.url}/ws/spc/notifications/?token={VIEWER}") as ws:
            async for frame in ws:
                message = json.loads(frame)
                if message["type"] == "alert" and message["alert"]["id"] == alert_id:
                    seen.append(message["alert"])
                    if message["alert"]["status"] == "RESOLVED":
                        return

    async def run_all() -> list[dict]:
        seen: list[dict] = []
        screen = asyncio.create_task(watch_screen(seen))
        await asyncio.sleep(0.5)
        steps = [
            (("alert", "ack", str(alert_id), "--comment", "on it"), f"alert {alert_id} is ACKNOWLEDGED"),
            (("alert", "comment", str(alert_id), "--comment", "bushing checked: worn"),
             f"alert {alert_id} is ACKNOWLEDGED"),
            (("alert", "shelve", str(alert_id), "--duration", "30m", "--reason", "tool change"),
             f"alert {alert_id} is SHELVED"),
            (("alert", "unshelve", str(alert_id)), f"alert {alert_id} is ACKNOWLEDGED"),
            (("alert", "resolve", str(alert_id), "--cause", "worn bushing", "--action", "bushing replaced"),
             f"alert {alert_id} is RESOLVED"),
        ]
        for argv, expected in steps:
            done = await asyncio.to_thread(gateway.cli, *argv)
            assert done.returncode == 0, (argv, done.stderr)
            assert done.stdout.startswith(expected), (argv, done.stdout)
        await asyncio.wait_for(screen, 10)
        return seen

    seen = asyncio.run(run_all())
    assert [a["status"] for a in seen] == ["ACKNOWLEDGED", "ACKNOWLEDGED", "SHELVED", "ACKNOWLEDGED", "RESOLVED"]
    assert gateway.history(alert_id)[1:] == [
        ("acknowledge", "김철수", "ACKNOWLEDGED"),
        ("comment", "김철수", "ACKNOWLEDGED"), ("shelve", "김철수", "SHELVED"),
        ("unshelve", "김철수", "ACKNOWLEDGED"), ("resolve", "김철수", "RESOLVED")]
    resolved = gateway.alerts("--status", "RESOLVED")
    assert any(a["id"] == alert_id and a["cause"] == "worn bushing" for a in resolved)


def test_refusals_say_why_and_change_nothing(gateway: Gateway) -> None:
    alert_id = gateway.create("refusals")
    before = gateway.history(alert_id)
    cases = [
        # (argv, token, exit status, words in stderr)
        (("alert", "ack", str(alert_id)), VIEWER, 1, "unauthorized"),
        (("alert", "unshelve", str(alert_id)), VIEWER, 1, "unauthorized"),
        (("alert", "ack", str(alert_id)), "wrong-token", 1, "HTTP 401"),
        (("alert", "unshelve", str(alert_id)), OPERATOR, 1, "is OPEN; it cannot be unshelved"),  # the English CLI prints the English text
        (("alert", "resolve", "999999", "--cause", "x"), OPERATOR, 1, "not_found"),
        (("alert", "shelve", str(alert_id), "--duration", "9h", "--reason", "x"), OPERATOR, 2, "at most 8h"),
        (("alert", "shelve", str(alert_id), "--duration", "30m"), OPERATOR, 2, "--reason"),
        (("alert", "resolve", str(alert_id)), OPERATOR, 2, "--cause"),
        (("alert", "comment", str(alert_id), "--comment", "   "), OPERATOR, 1, "comment"),
    ]
    for argv, token, code, words in cases:
        done = gateway.cli(*argv, token=token)
        assert done.returncode == code and words in done.stderr, (argv, done.returncode, done.stderr)
        assert "Traceback" not in done.stderr
    no_user = gateway.cli("alert", "ack", str(alert_id), user=None, env={"USER": ""})
    assert no_user.returncode == 2 and "--user" in no_user.stderr
    assert gateway.history(alert_id) == before
    assert next(a for a in gateway.alerts() if a["id"] == alert_id)["status"] == "OPEN"


def test_alert_json_and_the_token_from_the_environment(gateway: Gateway) -> None:
    alert_id = gateway.create("json")
    done = gateway.cli("alert", "acknowledge", str(alert_id), "--json", token=None,
                       env={"SPC_GATEWAY_TOKEN": OPERATOR}, subprocess_=True)
    assert done.returncode == 0, done.stderr
    alert = json.loads(done.stdout)
    assert alert["id"] == alert_id and alert["status"] == "ACKNOWLEDGED" and alert["acknowledged_by"] == "김철수"


def test_unreachable_gateway(tmp_path: Path) -> None:
    from tests.conftest import free_port

    done = subprocess.run([sys.executable, "-m", "gateway.cli", "alert", "list", "--url",
                           f"ws://127.0.0.1:{free_port()}"], capture_output=True, text=True, timeout=30, cwd=REPO)
    assert done.returncode == 1 and "cannot reach the gateway" in done.stderr and "Traceback" not in done.stderr


def test_table_columns_line_up_with_korean_and_shelve_times_parse() -> None:
    import argparse

    from gateway.tools.alert_commands import format_table, shelve_duration

    table = format_table([
        {"id": 12, "priority": 4, "status": "OPEN", "alert_type": "OUT_OF_SPEC", "product_code": "BOLT-M10",
         "characteristic": "외경", "created_at": "2026-12-04T17:01:02.123+09:00", "title": "규격 이탈\n상한"},
        {"id": 3, "priority": 2, "status": "SHELVED", "shelved_until": "2026-12-04T18:30:00+09:00",
         "alert_type": "MANUAL", "product_code": "SHAFT-20", "characteristic": "diameter",
         "created_at": "2026-12-04T16:01:02+09:00", "title": "x" * 100}]).splitlines()
    import unicodedata

    def columns(text: str) -> int:
        return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)

    starts = {columns(line[:line.index("2026")]) for line in table[1:]}  # the CREATED column
    assert len(starts) == 1 and columns(table[0][:table[0].index("CREATED")]) in starts
    assert table[1].endswith("규격 이탈 상한") and "SHELVED until 18:30" in table[2] and table[2].endswith("…")
    assert [shelve_duration(t) for t in ("90s", "30m", "2h", "8h", "600")] == [90, 1800, 7200, 28800, 600]
    for bad in ("0", "8.5h", "-1m", "2 days", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            shelve_duration(bad)


def test_numbers_in_other_scripts_are_usage_errors() -> None:
    """`--limit ١٠` and `--duration ١٠m` are not numbers here (ASCII digits, as everywhere else)."""
    import argparse

    from gateway.tools.alert_commands import _limit, shelve_duration

    for bad in ("١٠", "²", "１０"):
        with pytest.raises(argparse.ArgumentTypeError):
            _limit(bad)
        with pytest.raises(argparse.ArgumentTypeError):
            shelve_duration(bad + "m")
    assert _limit("10") == 10 and shelve_duration("10m") == 600.0
