"""The repository stands alone: tests that read the project's shared folder (contract, reference data)
skip with a reason when it is absent, and run when it is there (CI)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, SHARED, needs_shared

SHARED_NAMES = frozenset({"SHARED", "CONTRACT_CONFIG", "REFERENCE"})


def shared_readers() -> list[tuple[str, bool]]:
    """(node id, carries needs_shared) of every test function that names one of the shared paths."""
    found = []
    for path in sorted((REPO / "tests").glob("test_*.py")):
        if path.name == Path(__file__).name:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or not node.name.startswith("test"):
                continue
            names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
            if names & SHARED_NAMES:
                marks = {ast.unparse(d) for d in node.decorator_list}
                found.append((f"tests/{path.name}::{node.name}", "needs_shared" in marks))
    return found


def test_every_test_reading_shared_carries_the_mark() -> None:
    found = shared_readers()
    assert len(found) >= 4  # the contract config and the pistonrings reference, at least
    assert [node for node, marked in found if not marked] == []


def test_without_the_shared_folder_they_skip_saying_why(tmp_path: Path) -> None:
    nodes = [node for node, _ in shared_readers()]
    absent = tmp_path / "no-shared"
    env = {**os.environ, "SPC_SHARED": str(absent), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *nodes],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:]
    assert f"{len(nodes)} skipped" in done.stdout, done.stdout[-3000:]
    assert "failed" not in done.stdout and "passed" not in done.stdout
    assert f"{absent} is absent; set SPC_SHARED" in done.stdout


@needs_shared
def test_with_the_shared_folder_the_mark_lets_them_run() -> None:
    assert SHARED.is_dir()
    assert not needs_shared.args[0]  # the skip condition is false: they run (and must pass) here
