"""Secret files and bounded reads: the one rule for every `*_file` secret, and reads that never block.

Every `*_file` secret (server.auth token_file, password_file of northbound and sources) is read by
`read_secret`, so one rule holds everywhere: the secret is the file's text exactly as written, minus
one line ending at its end ("\\n" or "\\r\\n", which editors and `echo` add). Spaces are kept: brokers
and servers compare the bytes, and a rule that trims on one side of a connection and not the other
is how one password once worked for MQTT in and not for MQTT out.

It lives in core (which imports nothing of ours) because the config checks, the line-side service, the
northbound and the sources all read secrets, and none of them should import another for it.
"""

from __future__ import annotations

import errno
import os
import stat

SECRET_MAX = 64 << 10  # a token or password is tens of bytes; a bigger file is the wrong file


class TooLarge(Exception):
    """A file is longer than the caller accepts."""


class SecretError(Exception):
    """A secret file cannot be used. Its text names the file and what is wrong, never the secret.

    `message` says what is wrong and `allowed` what would be right, as a config Problem does; the text
    is FILE:1:1: (secret): message (allowed), the line check-config prints for it.
    """

    def __init__(self, path: str, message: str, allowed: str):
        self.path = path
        self.message = message
        self.allowed = allowed
        super().__init__(f"{path}:1:1: (secret): {message} ({allowed})")


def read_limited(path: str, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; raises TooLarge, or OSError.

    Opened with O_NONBLOCK so that opening a FIFO does not wait for a writer, and refused unless it
    is a regular file: /dev/zero or /dev/urandom never end, a FIFO may never be written. A regular
    file of bounded size reads at once, so this may run on the event loop.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", path)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file (a device, FIFO or socket)", path)
        if info.st_size > limit:
            raise TooLarge(path)
        chunks = []
        total = 0
        while chunk := os.read(fd, 65536):  # the file may grow while it is read
            total += len(chunk)
            if total > limit:
                raise TooLarge(path)
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_secret(path: str) -> str:
    """The secret in a `*_file` (token, password): its text minus one trailing line ending.

    Raises SecretError (whose text never contains the secret) when the file is missing, not a
    regular file, larger than 64 KB, not UTF-8, empty, or holds a second line or a control character.
    """
    try:
        data = read_limited(path, SECRET_MAX)
    except TooLarge:
        raise SecretError(path, f"the secret file is larger than {SECRET_MAX >> 10} KB",
                          "the secret on one line") from None
    except OSError as exc:
        raise SecretError(path, f"cannot read the secret file: {exc.strerror or type(exc).__name__}",
                          "a readable regular file") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretError(path, "the secret file is not UTF-8 text", "the secret on one line, as UTF-8 text") from None
    secret = text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text
    if not secret:
        raise SecretError(path, "the secret file is empty", "the secret on the first line")
    if "\n" in secret or "\r" in secret:
        raise SecretError(path, "the secret file has more than one line", "the secret alone on one line")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in secret):
        raise SecretError(path, "the secret contains a control character", "printable characters only")
    return secret
