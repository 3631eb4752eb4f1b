"""The WebSocket protocol without sockets: one client frame -> an immediate reply or a command to run.

`Protocol.receive` validates a frame against `shared/contract/websocket-protocol.md` and either answers
it at once (ping, (un)subscribe, every error) or hands back a `Command` whose fields are checked and
typed; the asyncio shell runs it against the store or the alert service and builds the reply with
`Protocol.reply`. Nothing here awaits or touches a socket, so every rule is tested with plain calls.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.config import Product
from gateway.model import iso_time
from gateway.server.i18n import text

ERROR_CODES = ("invalid_json", "unknown_type", "invalid_field", "not_found", "unauthorized", "rate_limited",
               "too_large")
ERROR_CODES += ("storage_unavailable",)  # a write refused, unapplied, while the database cannot be written
ALERT_STATUSES = ("OPEN", "ACKNOWLEDGED", "SHELVED", "RESOLVED")
ALERT_TYPES = ("OUT_OF_SPEC", "OUT_OF_CONTROL", "RUN_RULE_VIOLATION", "CAPABILITY_LOW", "SOURCE_STALE",
               "STORAGE", "MANUAL")
WRITE_COMMANDS = frozenset({"acknowledge_alert", "comment_alert", "shelve_alert", "resolve_alert",
                            "create_alert", "recalculate_limits"})
MAX_SHELVE_S = 8 * 3600.0
MAX_REQUEST_ID = 100  # characters of a string request_id
FLOOD_CLOSE_AFTER = 200  # rate-limited frames in a row before the connection is closed (1008)

USER = 100
TITLE = 200
LONG_TEXT = 2000


class Reject(Exception):
    """A frame that cannot be served: becomes an `error` reply with a stable code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Session:
    """What the protocol knows about one connection."""

    role: str = "operator"  # viewer | operator
    client_name: str | None = None  # the auth entry's name; None without tokens
    product_id: int | None = None  # the product endpoint's product; None: the general feed
    subscriptions: set[int] = field(default_factory=set)
    tokens: float = -1.0  # rate-limit bucket; -1 until the first frame fills it
    last_refill: float = 0.0
    limited_in_a_row: int = 0


@dataclass(frozen=True)
class Command:
    """A validated client request the shell must run; `fields` hold typed values (defaults applied)."""

    type: str
    fields: dict[str, Any]
    request_id: str | int | None = None


# ---------------------------------------------------------------- field checks

def _id(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class F:
    """One field of a client message: its kind, whether it is required, its bounds and default."""

    kind: str  # id | int | number | text | choice
    required: bool = False
    lo: float | None = None
    hi: float | None = None
    default: Any = None
    choices: tuple[str, ...] = ()


_USER = F("text", True, 1, USER)
SCHEMA: dict[str, dict[str, F]] = {
    "subscribe_product": {"product_id": F("id", True)},
    "unsubscribe_product": {"product_id": F("id", True)},
    "get_alerts": {"limit": F("int", False, 1, 500, 10), "status": F("choice", choices=ALERT_STATUSES),
                   "product_id": F("id"), "before_id": F("id")},
    "get_measurements": {"product_id": F("id", True), "characteristic": F("text", False, 1, TITLE),
                         "limit": F("int", False, 1, 5000, 100)},
    "acknowledge_alert": {"alert_id": F("id", True), "user": _USER, "comment": F("text", False, 0, LONG_TEXT)},
    "comment_alert": {"alert_id": F("id", True), "user": _USER, "comment": F("text", True, 1, LONG_TEXT)},
    "shelve_alert": {"alert_id": F("id", True), "user": _USER, "duration_s": F("number", True, 0, MAX_SHELVE_S),
                     "reason": F("text", True, 1, LONG_TEXT)},
    "resolve_alert": {"alert_id": F("id", True), "user": _USER, "cause": F("text", True, 1, LONG_TEXT),
                      "action": F("text", False, 0, LONG_TEXT)},
    "create_alert": {"product_id": F("id", True), "alert_type": F("choice", True, choices=ALERT_TYPES),
                     "priority": F("int", True, 1, 5), "title": F("text", True, 1, TITLE),
                     "message": F("text", True, 1, LONG_TEXT), "characteristic": F("text", False, 1, TITLE),
                     "user": F("text", False, 1, USER)},
    "recalculate_limits": {"product_id": F("id", True), "characteristic": F("text", True, 1, TITLE),
                           "user": _USER, "reason": F("text", True, 1, LONG_TEXT),
                           "from_subgroup": F("id"), "subgroups": F("int", False, 2, 1000, 25)},
    "ping": {},
}


class Protocol:
    """Validates client frames and builds server messages for one gateway configuration."""

    def __init__(self, products: Mapping[int, Product], *, language: str = "ko", tz: dt.tzinfo = dt.UTC,
                 commands_per_second: float = 20.0, clock: Callable[[], float] | None = None):
        self.products = dict(products)
        self.language = language
        self.tz = tz
        self.rate = commands_per_second
        self.burst = 2 * commands_per_second
        self.clock = clock or time.time

    # ------------------------------------------------------------------ building messages

    def message(self, type_: str, *, request_id: str | int | None = None, **payload: Any) -> dict[str, Any]:
        """A server message with `type`, `timestamp` and, when the client sent one, `request_id`."""
        body: dict[str, Any] = {"type": type_, **payload, "timestamp": iso_time(self.clock(), self.tz)}
        if request_id is not None:
            body["request_id"] = request_id
        return body

    def error(self, code: str, message: str, request_id: str | int | None = None) -> dict[str, Any]:
        """An `error` message with a stable code."""
        assert code in ERROR_CODES, code
        return self.message("error", request_id=request_id, code=code, message=message)

    def connection(self, *, gateway: str, seq: int, role: str) -> dict[str, Any]:
        """The first message after the handshake, with the seed's text in the configured language."""
        return self.message("connection", message=text(self.language, "connection"), protocol=1,
                            gateway=gateway, seq=seq, role=role)

    def reply(self, command: Command, type_: str, **payload: Any) -> dict[str, Any]:
        """The reply to `command`; `result` replies also carry `success: true`."""
        if type_ == "result":
            payload = {"success": True, **payload}
        return self.message(type_, request_id=command.request_id, **payload)

    # ------------------------------------------------------------------ receiving

    def receive(self, session: Session, frame: str | bytes) -> Command | dict[str, Any]:
        """One client frame -> a Command to run, or the reply to send right away (often an error)."""
        if not self._take_token(session):
            return self.error("rate_limited", text(self.language, "error.rate_limited", rate=self.rate))
        request_id = None
        try:
            if isinstance(frame, bytes):
                raise Reject("invalid_json", text(self.language, "error.binary"))
            try:
                data = json.loads(frame)
            except (ValueError, RecursionError) as exc:
                raise Reject("invalid_json", text(self.language, "error.invalid_json", detail=str(exc))) from None
            if not isinstance(data, dict):
                raise Reject("invalid_json", text(self.language, "error.invalid_json",
                                                  detail=f"got {type(data).__name__}"))
            request_id = self._request_id(data)
            return self._command(session, data, request_id)
        except Reject as rejected:
            return self.error(rejected.code, rejected.message, request_id)

    def http_command(self, session: Session, type_: str, body: Any) -> Command | dict[str, Any]:
        """A command whose fields came as an HTTP request body (a JSON object, no `type`): the Command
        to run, or the `error` message. The same checks as over the WebSocket, the rate limit included
        (the caller keeps one session per sender)."""
        if not self._take_token(session):
            return self.error("rate_limited", text(self.language, "error.rate_limited", rate=self.rate))
        try:
            if not isinstance(body, dict):
                raise Reject("invalid_json", text(self.language, "error.invalid_json",
                                                  detail=f"got {type(body).__name__}"))
            return self._command(session, {**body, "type": type_}, None)
        except Reject as rejected:
            return self.error(rejected.code, rejected.message)

    def flooding(self, session: Session) -> bool:
        """True when a client keeps sending after being told to slow down: close it (1008)."""
        return session.limited_in_a_row >= FLOOD_CLOSE_AFTER

    def _take_token(self, session: Session) -> bool:
        now = self.clock()
        if session.tokens < 0:
            session.tokens, session.last_refill = self.burst, now
        session.tokens = min(self.burst, session.tokens + (now - session.last_refill) * self.rate)
        session.last_refill = now
        if session.tokens < 1.0:
            session.limited_in_a_row += 1
            return False
        session.tokens -= 1.0
        session.limited_in_a_row = 0
        return True

    def _request_id(self, data: dict[str, Any]) -> str | int | None:
        rid = data.get("request_id")
        if rid is None:
            return None
        if isinstance(rid, bool) or not isinstance(rid, str | int | float):
            raise Reject("invalid_field", text(self.language, "error.wrong", field="request_id",
                                               expected="a string or a number"))
        if isinstance(rid, str) and len(rid) > MAX_REQUEST_ID:
            raise Reject("too_large", text(self.language, "error.too_long", field="request_id",
                                           length=len(rid), limit=MAX_REQUEST_ID))
        return rid

    def _command(self, session: Session, data: dict[str, Any], request_id: str | int | None) -> Command | dict:
        type_ = data.get("type")
        if not isinstance(type_, str):
            raise Reject("invalid_field", text(self.language, "error.missing", field="type",
                                               expected="a string such as 'get_alerts'"))
        schema = SCHEMA.get(type_)
        if schema is None:
            raise Reject("unknown_type", text(self.language, "error.unknown_type", type=type_[:50],
                                              allowed=", ".join(SCHEMA)))
        if type_ in WRITE_COMMANDS and session.role != "operator":
            raise Reject("unauthorized", text(self.language, "error.unauthorized", role=session.role, type=type_))
        if type_ == "create_alert" and "product_id" not in data and "product" in data:
            data = {**data, "product_id": data["product"]}  # the seed's POST /api/spc/alerts/ body
        fields = {name: self._field(name, spec, data.get(name)) for name, spec in schema.items()}
        self._check_references(type_, fields)
        command = Command(type_, fields, request_id)
        if type_ == "ping":
            return self.reply(command, "pong")
        if type_ == "subscribe_product":
            session.subscriptions.add(fields["product_id"])
            return self.reply(command, "subscribed", product_id=fields["product_id"])
        if type_ == "unsubscribe_product":
            session.subscriptions.discard(fields["product_id"])
            return self.reply(command, "unsubscribed", product_id=fields["product_id"])
        if type_ == "get_alerts" and fields["product_id"] is None and session.product_id is not None:
            fields["product_id"] = session.product_id  # the product endpoint asks about its product
        return command

    def _field(self, name: str, spec: F, value: Any) -> Any:
        lang = self.language
        if value is None:
            if spec.required:
                raise Reject("invalid_field", text(lang, "error.missing", field=name, expected=_expected(spec)))
            return spec.default
        if spec.kind == "id":
            if _id(value) is None:
                raise Reject("invalid_field", text(lang, "error.wrong", field=name, expected=_expected(spec)))
            return value
        if spec.kind in ("int", "number"):
            ok = _is_number(value) and (spec.kind == "number" or isinstance(value, int))
            if ok and spec.kind == "number":
                ok = (spec.lo is None or value > spec.lo) and (spec.hi is None or value <= spec.hi)
            elif ok:
                ok = (spec.lo is None or value >= spec.lo) and (spec.hi is None or value <= spec.hi)
            if not ok:
                raise Reject("invalid_field", text(lang, "error.wrong", field=name, expected=_expected(spec)))
            return value
        if spec.kind == "choice":
            if value not in spec.choices:
                raise Reject("invalid_field", text(lang, "error.wrong", field=name, expected=_expected(spec)))
            return value
        if not isinstance(value, str):
            raise Reject("invalid_field", text(lang, "error.wrong", field=name, expected=_expected(spec)))
        value = value.strip()
        if spec.hi is not None and len(value) > spec.hi:
            raise Reject("too_large", text(lang, "error.too_long", field=name, length=len(value), limit=int(spec.hi)))
        if spec.lo and len(value) < spec.lo:
            if spec.required:
                raise Reject("invalid_field", text(lang, "error.missing", field=name, expected=_expected(spec)))
            return spec.default
        return value

    def _check_references(self, type_: str, fields: dict[str, Any]) -> None:
        product_id = fields.get("product_id")
        if product_id is None:
            return
        product = self.products.get(product_id)
        if product is None:
            raise Reject("not_found", text(self.language, "error.no_product", product_id=product_id))
        name = fields.get("characteristic")
        if name is not None and all(c.name != name for c in product.characteristics):
            raise Reject("not_found", text(self.language, "error.no_characteristic", product_id=product_id,
                                           characteristic=name))


def _expected(spec: F) -> str:
    if spec.kind == "id":
        return "a positive whole number"
    if spec.kind == "int":
        return f"a whole number from {spec.lo:g} to {spec.hi:g}"
    if spec.kind == "number":
        return f"a number above {spec.lo:g} and at most {spec.hi:g}"
    if spec.kind == "choice":
        return "one of " + ", ".join(spec.choices)
    return f"text of at most {spec.hi:g} characters" if spec.hi else "text"
