"""The systemd notify protocol: a few datagrams on $NOTIFY_SOCKET (READY, WATCHDOG, STOPPING, RELOADING)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

log = logging.getLogger("gateway.sdnotify")


class Notifier:
    """Talks to systemd when it started us with Type=notify; does nothing otherwise."""

    def __init__(self, socket_path: str | None = None):
        path = socket_path if socket_path is not None else os.environ.get("NOTIFY_SOCKET")
        self.address: str | None = None
        self._sock: socket.socket | None = None
        if path:
            # an address starting with '@' is in the abstract namespace
            self.address = "\0" + path[1:] if path.startswith("@") else path
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, *lines: str) -> None:
        """Send one datagram of KEY=VALUE lines; failures are logged, never raised."""
        if self._sock is None or self.address is None:
            return
        try:
            self._sock.sendto("\n".join(lines).encode(), self.address)
        except OSError as exc:
            log.warning("cannot notify systemd at %s: %s", self.address, exc)

    def ready(self, status: str = "running") -> None:
        self.notify("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def reloading(self) -> None:
        # systemd >= 253 wants the monotonic time with RELOADING=1
        self.notify("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def watchdog_interval(self) -> float | None:
        """Half of WATCHDOG_USEC, as systemd recommends; None when no watchdog is asked for."""
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        if not usec or (pid and pid != str(os.getpid())):
            return None
        try:
            return int(usec) / 1e6 / 2
        except ValueError:
            return None

    async def watchdog(self) -> None:
        """Ping from the event loop itself, so a hung loop stops the pings and systemd restarts us."""
        interval = self.watchdog_interval()
        if interval is None or not self.enabled:
            return
        while True:
            self.notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
