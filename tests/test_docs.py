"""The documentation stands alone and keeps up with the code: docs/protocol.md names every command,
field, error code and close code the server has, and no link of the Markdown pages leaves the
repository or points at a file (or heading) that is not there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.server import hub, ws
from gateway.server.protocol import ERROR_CODES, FLOOD_CLOSE_AFTER, SCHEMA
from tests import doc_links
from tests.conftest import REPO

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
