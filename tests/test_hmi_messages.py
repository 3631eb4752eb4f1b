"""The words the gateway says to people: every refusal is wholly in one language in each of its texts
(no English 'allowed' part spliced into a Korean message), error replies carry both languages so the
English CLI prints English from a Korean gateway, and one term per language for a run rule violation.
Protocol rules with plain calls; the daemon and the CLI as subprocesses.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from gateway.core.texts import _TEXTS, LANGUAGES, text
from gateway.outputs.websocket.protocol import SCHEMA, Protocol, Session
from gateway.sources.registry import load_config
from tests.conftest import free_port
from tests.daemon_helpers import REPO, Daemon, minimal_config, write_config

HANGUL = re.compile(r"[\uac00-\ud7a3]")
# What may stay as written in a Korean message: the protocol's own names (message types, field names,
# codes, states, roles) and JSON; quoted values are the client's own and are removed before the check.
IDENTIFIERS = {"JSON", "null", "operator", "viewer", "UCL", "LCL", *SCHEMA,
               *(name for fields in SCHEMA.values() for name in fields),
               *(c for fields in SCHEMA.values() for f in fields.values() for c in f.choices)}

BAD_FRAMES = [
    "{not json", "[1, 2]", '"text"', "null", '{"type": 5}', '{"type": "launch_rockets"}',
    '{"type": "get_alerts", "request_id": [1]}',
    '{"type": "get_alerts", "request_id": "' + "x" * 101 + '"}',
    '{"type": "get_alerts", "limit": 0}', '{"type": "get_alerts", "status": "LOST"}',
    '{"type": "get_alerts", "product_id": -1}',
    '{"type": "create_alert", "product_id": 1, "alert_type": "MANUAL", "priority": "a", "title": "t", "message": "m"}',
    '{"type": "create_alert", "product_id": 1, "alert_type": "MANUAL", "priority": 9, "title": "t", "message": "m"}',
    '{"type": "create_alert", "product_id": 1, "alert_type": "MANUAL", "priority": 3, "title": "t"}',
    '{"type": "create_alert", "product_id": 99, "alert_type": "MANUAL", "priority": 3, "title": "t", "message": "m"}',
    '{"type": "shelve_alert", "alert_id": 1, "user": "kim", "duration_s": -5, "reason": "r"}',
    '{"type": "shelve_alert", "alert_id": 1, "user": "' + "k" * 101 + '", "duration_s": 60, "reason": "r"}',
    '{"type": "get_measurements", "product_id": 1, "characteristic": "nope"}',
    '{"type": "unshelve_alert", "user": "kim"}',
    '{"type": "recalculate_limits", "product_id": 1, "characteristic": "diameter", "user": "kim", "reason": "r",'
    ' "subgroups": 1}',
]


def wholly_korean(message: str) -> bool:
    words = re.findall(r"[A-Za-z_]{2,}", re.sub(r"'[^']*'", "", message))
    return bool(HANGUL.search(message)) and all(w in IDENTIFIERS for w in words)


def assert_worded(reply: dict) -> None:
    assert reply["type"] == "error", reply
    ko, en = reply["texts"]["ko"]["message"], reply["texts"]["en"]["message"]
    assert wholly_korean(ko), ko
    assert not HANGUL.search(en), en


@pytest.fixture(scope="module")
def products() -> dict:
    with tempfile.TemporaryDirectory() as tmp:  # the real loader: the product as the daemon has it
        config, _ = load_config(str(write_config(Path(tmp), minimal_config(Path(tmp)))))
    return {p.id: p for p in config.products}


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_refusal_is_worded_wholly_in_each_language(products, language):
    proto = Protocol(products, language=language)
    for frame in BAD_FRAMES:
        reply = proto.receive(Session(), frame)
        assert_worded(reply)
        # `message` stays the configured language's, as the contract has it
        assert reply["message"] == reply["texts"][language]["message"], reply
    viewer = proto.receive(Session(role="viewer"), '{"type": "comment_alert", "alert_id": 1, "user": "k", "comment": "c"}')
    assert viewer["code"] == "unauthorized"
    assert_worded(viewer)
    flood = Session()
    replies = [proto.receive(flood, '{"type": "ping"}') for _ in range(int(proto.burst) + 2)]
    assert replies[-1]["code"] == "rate_limited"
    assert_worded(replies[-1])


def test_the_issue_message_is_korean_throughout(products):
    reply = Protocol(products, language="ko").receive(Session(), BAD_FRAMES[11])
    assert reply["message"] == "필드 'priority'가 잘못되었습니다 (허용: 1부터 5까지의 정수)", reply
    assert reply["texts"]["en"]["message"] == "field 'priority' is wrong: it must be a whole number from 1 to 5"


def test_one_term_per_language_for_a_run_rule_violation():
    page = (REPO / "gateway" / "outputs" / "websocket" / "static" / "i18n.js").read_text(encoding="utf-8")
    entry = re.search(r"type_RUN_RULE_VIOLATION: \{ ko: '([^']*)', en: '([^']*)' \}", page)
    assert entry, "type_RUN_RULE_VIOLATION missing from i18n.js"
    assert entry.groups() == ("런 규칙 위반", "Run rule violation")
    assert text("ko", "alert.RUN_RULE_VIOLATION.title", rule=2) == "런 규칙 위반 (규칙 2)"
    assert text("en", "alert.RUN_RULE_VIOLATION.title", rule=2) == "Run rule violation (rule 2)"
    everything = page + json.dumps(_TEXTS, ensure_ascii=False) + "".join(
        p.read_text(encoding="utf-8") for p in (REPO / "docs").glob("*.md")) + (REPO / "README.md").read_text()
    assert "Run Rule" not in everything and "런룰" not in everything


async def _ws_errors(port: int) -> list[dict]:
    frames = [
        {"type": "create_alert", "product_id": 1, "alert_type": "MANUAL", "priority": "a", "title": "t",
         "message": "m", "request_id": "prio"},
        {"type": "acknowledge_alert", "alert_id": 999, "user": "kim", "request_id": "missing"},
        {"type": "create_alert", "product_id": 1, "alert_type": "MANUAL", "priority": 3, "title": "t",
         "message": "m", "request_id": "made"},
    ]
    replies: dict[str, dict] = {}
    async with connect(f"ws://127.0.0.1:{port}/ws/spc/notifications/") as ws:
        for frame in frames:
            await ws.send(json.dumps(frame))
        while len(replies) < len(frames):
            reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
            if "request_id" in reply:
                replies[reply["request_id"]] = reply
        made = replies["made"]["alert"]["id"]
        for rid, frame in (("resolve", {"type": "resolve_alert", "alert_id": made, "user": "kim", "cause": "c"}),
                           ("late", {"type": "acknowledge_alert", "alert_id": made, "user": "kim"}),
                           ("unshelve", {"type": "unshelve_alert", "alert_id": made, "user": "kim"})):
            await ws.send(json.dumps({**frame, "request_id": rid}))
            while True:
                reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
                if reply.get("request_id") == rid:
                    replies[rid] = reply
                    break
    return [replies[k] for k in ("prio", "missing", "late", "unshelve")]


def test_daemon_error_replies_carry_both_languages_and_the_english_cli_prints_english(tmp_path: Path):
    port = free_port()
    daemon = Daemon(write_config(tmp_path, minimal_config(tmp_path, port=port))).start(wait_for_port=port)
    try:
        errors = asyncio.run(_ws_errors(port))
        for reply in errors:
            assert_worded(reply)
            assert reply["message"] == reply["texts"]["ko"]["message"]  # the gateway speaks Korean
        assert errors[1]["code"] == "not_found" and errors[1]["texts"]["en"]["message"] == "there is no alert 999"
        # a resolved alert can be neither acknowledged nor unshelved: said in each language's words
        assert errors[2]["texts"]["ko"]["message"].endswith("해결됨 상태라서 확인할 수 없습니다"), errors[2]
        assert errors[3]["texts"]["en"]["message"].endswith("is RESOLVED; it cannot be unshelved"), errors[3]

        cli = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "alert", "create", "--url", f"ws://127.0.0.1:{port}",
             "--product", "1", "--type", "NOT_A_TYPE", "--priority", "3", "--title", "t", "--message", "m"],
            cwd=REPO, capture_output=True, text=True, timeout=30)
        assert cli.returncode == 1, cli
        assert "field 'alert_type' is wrong: it must be one of OUT_OF_SPEC" in cli.stderr, cli.stderr
        assert not HANGUL.search(cli.stderr), cli.stderr
    finally:
        daemon.stop()
