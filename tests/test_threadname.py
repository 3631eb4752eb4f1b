"""The store writer's thread carries its name in the kernel's table (top -H, bench/bench_lines.py)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from gateway.core.threadname import COMM_LIMIT, name_this_thread


@pytest.mark.skipif(not Path("/proc/thread-self/comm").exists(), reason="Linux /proc only")
def test_a_thread_names_itself_and_long_names_are_cut() -> None:
    seen: list[str] = []

    def work(name: str) -> None:
        name_this_thread(name)
        seen.append(Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().strip())

    for name in ("store-writer", "a-name-longer-than-the-kernel-keeps"):
        thread = threading.Thread(target=work, args=(name,))
        thread.start()
        thread.join()
    assert seen == ["store-writer", "a-name-longer-than-the-kernel-keeps"[:COMM_LIMIT]]
