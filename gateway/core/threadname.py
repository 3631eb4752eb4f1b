"""The operating system's name of a thread, so `top -H`, `ps -L` and the benchmarks see which one works.

Python's `threading` names exist only inside Python; Linux keeps a thread's name (15 bytes) in
/proc/thread-self/comm, which a thread may write for itself. Elsewhere, or when /proc is not mounted,
nothing happens: the name helps the people watching, and nothing depends on it.
"""

from __future__ import annotations

COMM_LIMIT = 15  # bytes the kernel keeps of a thread's name (TASK_COMM_LEN - 1)


def name_this_thread(name: str) -> None:
    """Give the calling thread `name` (cut to 15 bytes) in the kernel's process table, if it can be done."""
    try:
        with open("/proc/thread-self/comm", "w", encoding="ascii", errors="replace") as comm:
            comm.write(name[:COMM_LIMIT])
    except OSError:
        pass
