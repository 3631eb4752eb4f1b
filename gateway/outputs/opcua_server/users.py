"""Who an OPC UA session is, and what it may do: the users file, the password check, the roles.

asyncua asks a UserManager for the user of each session (its user name and password, decrypted) and
a PermissionRuleset before every request of a session. Both are its public seams
(`Server(user_manager=...)`, `Server.set_security_policy(..., permission_ruleset=...)`). The ruleset
also records the session's user in `CALLER` for the request it allows: asyncua runs a method call's
coroutine in the very task that asked the ruleset, so the Acknowledge and AddComment callbacks, which
asyncua gives no session, read their caller there. A call with no caller recorded is refused.
"""

from __future__ import annotations

import contextvars
import hmac
import logging
from dataclasses import dataclass
from typing import Any

from asyncua import ua
from asyncua.crypto.permission_rules import PermissionRuleset, User, UserRole

from gateway.config.opcua_server import load_users
from gateway.core.secrets import SecretError, read_secret

log = logging.getLogger("gateway.outputs.opcua_server")

# Requests any session may make once activated: read, browse, subscribe, call (the method checks the
# role itself), and the session and channel services. Writes are allowed through to asyncua, which
# refuses them on every variable (all are read-only): the client then gets BadNotWritable per node.
ALLOWED_REQUESTS = frozenset(ua.NodeId(getattr(ua.ObjectIds, f"{name}Request_Encoding_DefaultBinary")) for name in (
    "CreateSession", "CloseSession", "ActivateSession", "Read", "Write", "Browse", "BrowseNext",
    "GetEndpoints", "FindServers", "TranslateBrowsePathsToNodeIds", "CreateSubscription", "ModifySubscription",
    "DeleteSubscriptions", "TransferSubscriptions", "CreateMonitoredItems", "ModifyMonitoredItems",
    "DeleteMonitoredItems", "Publish", "Republish", "CloseSecureChannel", "Call", "SetMonitoringMode",
    "SetPublishingMode", "SetTriggering", "RegisterNodes", "UnregisterNodes", "HistoryRead"))


@dataclass
class GatewayUser(User):
    """asyncua's User with the gateway's role: `operator` may acknowledge and comment, `viewer` reads."""

    gateway_role: str = "viewer"


ANONYMOUS = GatewayUser(role=UserRole.Anonymous, name=None, gateway_role="anonymous")
CALLER: contextvars.ContextVar[GatewayUser | None] = contextvars.ContextVar("opcua_caller", default=None)


class UsersFileError(Exception):
    """The users file cannot be used: the server does not start."""


def read_users(path: str | None) -> dict[str, tuple[bytes, str]]:
    """user -> (password as UTF-8, role) from the users file; {} without one."""
    if path is None:
        return {}
    users, problems = load_users(path)
    errors = [p for p in problems if p.severity == "error"]
    if users is None or errors:
        raise UsersFileError("\n".join(str(p) for p in errors) or f"{path}: the users file cannot be used")
    result: dict[str, tuple[bytes, str]] = {}
    for entry in users:
        try:
            result[entry.user] = (read_secret(entry.password_file).encode(), entry.role)
        except SecretError as exc:
            raise UsersFileError(f"{path}: user {entry.user!r}: {exc.message}: {entry.password_file}") from None
    return result


class UserManager:
    """asyncua's user manager: a user name and password from the users file, or anonymous (a viewer)."""

    def __init__(self, users: dict[str, tuple[bytes, str]]):
        self.users = users
        self.refused = 0

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> User | None:
        if username is None:
            return ANONYMOUS
        given = (password or "").encode("utf-8", "surrogatepass") if isinstance(password, str) else bytes(password or b"")
        entry = self.users.get(username)
        # compared in constant time, and against a dummy for an unknown user, so timing tells neither
        # which users exist nor how much of a password was right
        expected = entry[0] if entry is not None else b"\x00" * 32
        if not hmac.compare_digest(given, expected) or entry is None:
            self.refused += 1
            log.warning("OPC UA login refused for user %r", username[:100])
            return None
        return GatewayUser(role=UserRole.User, name=username, gateway_role=entry[1])


class Permissions(PermissionRuleset):
    """Every session may read, browse, subscribe and call; nothing may change the address space."""

    def check_validity(self, user: Any, action_type_id: Any, body: Any) -> bool:
        CALLER.set(user if isinstance(user, GatewayUser) else None)
        return action_type_id in ALLOWED_REQUESTS


def operator() -> GatewayUser | None:
    """The caller of the method being run when it is an operator, else None."""
    caller = CALLER.get()
    return caller if caller is not None and caller.gateway_role == "operator" else None
