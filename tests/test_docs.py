"""The documentation stands alone and keeps up with the code: docs/protocol.md names every command,
field, error code and close code the server has, and no link of the Markdown pages leaves the
repository or points at a file (or heading) that is not there."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
import websockets

from gateway.outputs.websocket import hub, ws
from gateway.outputs.websocket.protocol import ERROR_CODES, FLOOD_CLOSE_AFTER, SCHEMA
from tests import doc_links
from tests.conftest import REPO, free_port
from tests.daemon_helpers import Daemon, minimal_config, write_config

PROTOCOL = REPO / "docs" / "protocol.md"
# every message type the server sends (protocol.py, ws.py, pipeline.py, alerts.py build them)
SERVER_TYPES = ("connection", "alerts", "alert", "measurement", "subgroup", "violation", "capability",
                "measurements", "subscribed", "unsubscribed", "result", "error", "pong", "replay_complete")


def pages() -> list[Path]:
    """The project's Markdown pages: README.md, docs/ and the benchmark results."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "bench").glob("*.md"))]


def code_spans(text: str) -> set[str]:
    return set(re.findall(r"`([^`\n]+)`", text))


def test_protocol_doc_names_every_command_field_and_error_code() -> None:
    spans = code_spans(PROTOCOL.read_text(encoding="utf-8"))
    missing = [f"command {name}" for name in SCHEMA if name not in spans]
    missing += [f"field {field} of {name}" for name, fields in SCHEMA.items() for field in fields
                if field not in spans]
    missing += [f"error code {code}" for code in ERROR_CODES if code not in spans]
    missing += [f"server message {kind}" for kind in SERVER_TYPES if kind not in spans]
    assert missing == []


def test_protocol_doc_states_the_limits_the_code_has() -> None:
    doc = PROTOCOL.read_text(encoding="utf-8")
    for close in (ws.FLOOD_CLOSE_CODE, hub.CUT_OFF_CODE, 1007, 1009, 1001):
        assert f"**{close}**" in doc, close
    assert f"after {FLOOD_CLOSE_AFTER} of them in a row" in doc
    assert f"at most {ws.SNAPSHOT_LIMIT}" in doc and f"latest {ws.HISTORY_SUBGROUPS} charted points" in doc
    for name, fields in SCHEMA.items():  # every bounded whole number is written as lo–hi
        for field, spec in fields.items():
            if spec.kind == "int":
                assert f"{spec.lo:g}–{spec.hi:g}" in doc, (name, field)


def test_readme_and_docs_point_to_the_protocol_doc() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "docs/protocol.md" in doc_links.links(readme)
    assert "protocol.md" in doc_links.links((REPO / "docs" / "http-api.md").read_text(encoding="utf-8"))


def test_no_link_leaves_the_repository_or_misses_its_target() -> None:
    assert doc_links.problems(REPO, pages()) == []


@pytest.mark.parametrize(("target", "why"), [
    ("../../shared/contract/websocket-protocol.md", "a path outside it"),  # the page is in docs/
    ("../../etc/passwd", "a path outside it"),
    ("https://example.com/guide", "an outside address"),
    ("//example.com/guide", "an outside address"),
    ("mailto:someone@example.com", "an outside address"),
    ("missing.md", "no such file"),
    ("other.md#no-such-heading", "no heading #no-such-heading"),
    ("#nowhere", "no heading #nowhere"),
])
def test_the_link_check_catches(tmp_path: Path, target: str, why: str) -> None:
    repo = tmp_path / "repo"
    (repo / "docs").mkdir(parents=True)
    (repo / "docs" / "other.md").write_text("# Other\n\n## `get_alerts` (twice)\n")
    page = repo / "docs" / "page.md"
    page.write_text(f"# Page\n\nSee [it]({target}) and `[not a link](../x.md)`.\n\n```\n[nor](../y.md)\n```\n")
    found = doc_links.problems(repo, [page])
    assert len(found) == 1 and why in found[0], found


def test_the_link_check_lets_working_links_pass(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "docs" / "images").mkdir(parents=True)
    (repo / "docs" / "images" / "a.png").write_bytes(b"png")
    (repo / "docs" / "other.md").write_text("# Other\n\n## `get_alerts` (twice)\n\n## Repeated\n\n## Repeated\n")
    page = repo / "README.md"
    page.write_text("![shot](docs/images/a.png) [o](docs/other.md#get_alerts-twice) [r](docs/other.md#repeated-1) "
                    "<http://127.0.0.1:8000/> [demo](http://localhost:8000/) [top](#top)\n\n# Top\n")
    assert doc_links.problems(repo, [page]) == []


# ---------------------------------------------------------------- the example session, against the daemon

def example_session() -> list[tuple[str, dict[str, Any]]]:
    """The `→`/`←` lines of docs/protocol.md's example session, in order."""
    doc = PROTOCOL.read_text(encoding="utf-8")
    block = doc.split("## An example session", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    return [(line[0], json.loads(line[1:])) for line in block.splitlines() if line[:1] in ("→", "←")]


# random per database: present in both, compared by shape only
RANDOM_FIELDS = frozenset({"epoch"})


def same(expected: Any, actual: Any, where: str = "") -> list[str]:
    """Where `actual` differs from the documented `expected`: the same keys, the same values (times aside)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        differ = set(expected) ^ set(actual)
        diffs = [f"{where}: keys {sorted(differ)}"] if differ else []
        for key in set(expected) & set(actual):
            if key in RANDOM_FIELDS:
                if not re.fullmatch(r"[0-9a-f]{16}", str(actual[key])):
                    diffs.append(f"{where}.{key}: {actual[key]!r} is not 16 hexadecimal digits")
            elif key != "timestamp" and not key.endswith("_at"):
                diffs += same(expected[key], actual[key], f"{where}.{key}")
        return diffs
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [d for i, (e, a) in enumerate(zip(expected, actual, strict=True)) for d in same(e, a, f"{where}[{i}]")]
    return [] if expected == actual else [f"{where}: documented {expected!r}, got {actual!r}"]


def test_the_example_session_is_what_the_daemon_says(tmp_path: Path) -> None:
    session = example_session()
    assert len(session) >= 15 and {m["type"] for d, m in session if d == "→"} >= {"create_alert", "get_alerts"}
    port = free_port()
    config = minimal_config(tmp_path, port=port)
    config["gateway"].update(name="LINE-3", language="ko")
    daemon = Daemon(write_config(tmp_path, config)).start(wait_for_port=port)

    async def play() -> list[str]:
        diffs: list[str] = []
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws/spc/notifications/") as ws:
            pending: list[dict[str, Any]] = []  # received, not yet matched (a broadcast beside a reply)

            async def next_like(expected: dict[str, Any]) -> dict[str, Any]:
                def matches(m: dict[str, Any]) -> bool:
                    return m["type"] == expected["type"] and m.get("request_id") == expected.get("request_id") \
                        and (m.get("alert") or {}).get("status") == (expected.get("alert") or {}).get("status")
                while True:
                    found = next((m for m in pending if matches(m)), None)
                    if found is not None:
                        pending.remove(found)
                        return found
                    pending.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))

            for direction, message in session:
                if direction == "→":
                    await ws.send(json.dumps(message, ensure_ascii=False))
                else:
                    diffs += same(message, await next_like(message), message["type"])
        return diffs

    try:
        assert asyncio.run(play()) == []
    finally:
        daemon.stop()
