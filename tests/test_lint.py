"""The type check runs inside the suite, so a type error fails it like a broken test (make test runs it too)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(90)
@pytest.mark.skipif(importlib.util.find_spec("mypy") is None,
                    reason="mypy is not installed (pip install -e '.[test]' brings it)")
def test_mypy_finds_no_type_error_in_gateway() -> None:
    # the configuration is pyproject.toml's [tool.mypy]; .mypy_cache makes reruns take about a second
    run = subprocess.run([sys.executable, "-m", "mypy", "gateway"], cwd=ROOT, capture_output=True, text=True,
                         timeout=80, env={**os.environ, "MYPY_FORCE_COLOR": "0"})
    assert run.returncode == 0, f"mypy gateway found type errors:\n{run.stdout}{run.stderr}"
