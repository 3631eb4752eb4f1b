"""One line instead of a traceback when a server socket cannot be bound: which address, and who holds it.

Used for the gateway's own `server.listen` and for the demo's simulators. The holder comes from
/proc (the listening socket's inode, then the process that has it open); where /proc does not tell
(another user's process, a sandbox such as the systemd unit's `ProtectProc=invisible`), the line
just says the address is in use.
"""

from __future__ import annotations

import errno
import os
import socket
import ssl
from pathlib import Path

_LISTEN = "0A"  # TCP state LISTEN in /proc/net/tcp
BIND_ERRNOS = frozenset({errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES})


class ListenError(Exception):
    """A server socket could not be bound; str() is the whole message, one line."""


def address_text(host: str | None, port: int) -> str:
    """'127.0.0.1:8000', '[::1]:8000', '*:8000' (all addresses)."""
    if not host:
        return f"*:{port}"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_bind_error(exc: BaseException) -> bool:
    """Did binding a server socket fail (as opposed to reading a certificate or token file)?"""
    if not isinstance(exc, OSError) or isinstance(exc, ssl.SSLError) or exc.filename is not None:
        return False
    return isinstance(exc, socket.gaierror) or exc.errno in BIND_ERRNOS


def listen_error(what: str, host: str | None, port: int, exc: OSError) -> ListenError:
    """The one-line explanation of a failed bind of `what` (e.g. 'server.listen') on host:port."""
    where = address_text(host, port)
    if isinstance(exc, socket.gaierror):
        return ListenError(f"{what} {where}: unknown host name {host!r} / 알 수 없는 호스트 이름입니다")
    if exc.errno == errno.EADDRINUSE:
        holder = port_holder(port)
        by = f" (by {holder})" if holder else ""
        return ListenError(f"{what} {where} is already in use{by} / 이미 사용 중인 주소입니다")
    if exc.errno == errno.EADDRNOTAVAIL:
        return ListenError(f"{what} {where}: this machine has no such address / 이 컴퓨터에 없는 주소입니다")
    if exc.errno == errno.EACCES:
        return ListenError(f"{what} {where}: permission denied (ports below 1024 need privileges) / "
                           "권한이 없습니다")
    return ListenError(f"{what} {where}: cannot listen: {exc.strerror or exc} / 열 수 없습니다")


def check_bindable(what: str, host: str, port: int) -> None:
    """Raise ListenError when host:port cannot be bound right now (for servers whose own error says less)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise listen_error(what, host, port, exc) from None
    family, _type, _proto, _name, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # as the servers themselves do: a port left in TIME_WAIT by a previous run is free
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            raise listen_error(what, host, port, exc) from None


def port_holder(port: int, proc: Path = Path("/proc")) -> str | None:
    """'pid 1234 python3' for the process listening on TCP `port`, when /proc tells; else None."""
    inodes = _listening_inodes(port, proc)
    if not inodes:
        return None
    targets = {f"socket:[{inode}]" for inode in inodes}
    try:
        pids = sorted(int(entry.name) for entry in proc.iterdir() if entry.name.isdigit())
    except OSError:
        return None
    for pid in pids:
        try:
            fds = list((proc / str(pid) / "fd").iterdir())
        except OSError:  # another user's process, or gone meanwhile
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in targets:
                    return f"pid {pid} {_command(proc, pid)}".rstrip()
            except OSError:
                continue
    return None


def _listening_inodes(port: int, proc: Path) -> set[str]:
    inodes: set[str] = set()
    # /proc/self/net, not /proc/net: the systemd unit's ProcSubset=pid hides the latter
    for name in ("tcp", "tcp6"):
        try:
            lines = (proc / "self" / "net" / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != _LISTEN:
                continue
            try:
                if int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
            except (IndexError, ValueError):
                continue
    inodes.discard("0")
    return inodes


def _command(proc: Path, pid: int) -> str:
    try:
        return (proc / str(pid) / "comm").read_text().strip()
    except OSError:
        return ""
