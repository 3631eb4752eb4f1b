"""The `opcua_server:` section (contract plant-integration §2) and the users file it names.

The users file is a YAML list of {user, password_file, role}; it is read with the same loader as the
config file, so check-config reports its problems at USERS-FILE:LINE:COLUMN, and the running server
reads it through `load_users` (one parser for both).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from yaml.nodes import Node

from gateway.config.loader import BAD, Reader, _compose, check_files, show
from gateway.config.model import OpcUaServerSection, Problem, Role
from gateway.config.values import PATH_MAX, choice, file_path, list_of, listen, section, text
from gateway.core.secrets import TooLarge, read_limited

# The words a technician writes, in the order check-config lists them; "None" is no security at all
# (a closed cell network only). The server maps each to asyncua's SecurityPolicyType of the same name.
SECURITY_POLICIES = ("None", "Basic256Sha256_Sign", "Basic256Sha256_SignAndEncrypt",
                     "Aes128Sha256RsaOaep_Sign", "Aes128Sha256RsaOaep_SignAndEncrypt",
                     "Aes256Sha256RsaPss_Sign", "Aes256Sha256RsaPss_SignAndEncrypt")
USERS_FILE_MAX = 1 << 20


@dataclass(frozen=True)
class OpcUaUser:
    user: str
    password_file: str
    role: Role


def _user_name(r: Reader, node: Node, path: str) -> Any:
    return text(r, node, path, 100)


USER = section(OpcUaUser, {"user": _user_name, "password_file": file_path, "role": choice("viewer", "operator")},
               required=("user", "password_file", "role"))


def _check_users(r: Reader, users: tuple[OpcUaUser, ...], path: str) -> bool:
    seen: dict[str, int] = {}
    for i, entry in enumerate(users):
        if entry.user in seen:
            r.at(f"{path}[{i}].user", f"user {show(entry.user)} is listed twice (also [{seen[entry.user]}])",
                 "each user once")
            return False
        seen[entry.user] = i
    return True


def load_users(path: str, shown: str | None = None) -> tuple[tuple[OpcUaUser, ...] | None, list[Problem]]:
    """The users file's entries (None when unusable) and its problems, each at USERS-FILE:LINE:COLUMN
    (`shown`: the file's name as problems print it). Password files are relative to the users file's
    folder; a missing one is a warning, as in the config."""
    reader = Reader(shown or path, os.path.dirname(os.path.abspath(path)))
    users = None
    try:
        data = read_limited(path, USERS_FILE_MAX)
    except OSError as exc:
        reader.problem((1, 1), "(file)", f"cannot read the users file: {exc.strerror or exc}")
    except TooLarge:
        reader.problem((1, 1), "(file)", "the users file is larger than 1 MB", "a short list of users")
    else:
        root = _compose(reader, data)
        if root is not None:
            value = list_of(USER)(reader, root, "users")
            if value is not BAD and _check_users(reader, value, "users"):
                users = value
    problems = reader.problems + check_files(reader.file, reader.files, reader.marks)
    return users, sorted(problems, key=lambda p: (p.line, p.column))


def _users_file(r: Reader, node: Node, path: str) -> Any:
    """A users file: missing is a warning (as every named file); one that exists is checked here and
    its problems reported in its own lines and columns."""
    value = file_path(r, node, path)
    if value is BAD or not os.path.isfile(value):
        return value
    written = os.path.expanduser(str(node.value))  # named as the config's own file is: relative to where
    shown = written if os.path.isabs(written) else os.path.join(os.path.dirname(r.file), written)  # it was run
    _users, problems = load_users(value, shown)
    r.problems.extend(problems)
    return BAD if any(p.severity == "error" for p in problems) else value


def _written_path(r: Reader, node: Node, path: str) -> Any:
    """A file the server writes when it is absent (its certificate and key): no warning when missing."""
    value = text(r, node, path, PATH_MAX)
    return value if value is BAD else os.path.normpath(os.path.join(r.base_dir, os.path.expanduser(value)))


def _check(r: Reader, values: dict[str, Any], path: str) -> bool:
    """Works, but probably not meant: passwords that can only travel in clear."""
    if "users_file" in values and tuple(values.get("security", ())) == ("None",):
        r.at(f"{path}.users_file", "users log in with passwords, but security is [None] only: their passwords "
             "cross the network unencrypted", "add Basic256Sha256_SignAndEncrypt to security", "warning")
    return True


OPCUA_SERVER = section(OpcUaServerSection, {
    "listen": listen, "security": list_of(choice(*SECURITY_POLICIES), unique=True, non_empty=True),
    "certificate": _written_path, "private_key": _written_path, "users_file": _users_file,
}, check=_check)
