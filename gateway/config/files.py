"""The files a config names: can each be read right now, and which keys name a secret.

Reading a secret (`read_secret`) and the bounded read of any file (`read_limited`) are in
`gateway.core.secrets`, which every reader of a secret imports without going through the config.
"""

from __future__ import annotations

import os
import stat

SECRET_KEYS = ("token_file", "password_file")  # the keys whose file holds a secret (not a certificate)


def regular_file_problem(path: str) -> str | None:
    """Why `path` cannot be read as a file right now (missing, a folder, a device...), None when it can."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return f"file not found: {path}"
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    if stat.S_ISDIR(info.st_mode):
        return f"is a folder, not a file: {path}"
    if not stat.S_ISREG(info.st_mode):
        return f"is not a regular file (a device, FIFO or socket): {path}"
    if not os.access(path, os.R_OK):
        return f"file not readable by this user: {path}"
    return None
