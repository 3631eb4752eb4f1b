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

from gateway.alerts import types as alert_types
from gateway.alerts.service import MAX_SHELVE_S
from gateway.config import Product
from gateway.core import texts as i18n
from gateway.core.model import iso_time
from gateway.core.texts import Refusal, text
from gateway.outputs.websocket.inputs import INT64_MAX, bad_character

# storage_unavailable: a write refused, unapplied, while the database cannot be written
ERROR_CODES = ("invalid_json", "unknown_type", "invalid_field", "not_found", "unauthorized", "rate_limited",
               "too_large", "storage_unavailable", "write_failed")
ALERT_STATUSES = ("OPEN", "ACKNOWLEDGED", "SHELVED", "RESOLVED")
ALERT_TYPES = tuple(alert_types.ALERT_TYPES)  # every type, in the order of the table
# The types a person or another system may create; the others are raised (and resolved) by the gateway
# itself, and an operator's alert typed like them would pass for the gateway's own.
OPERATOR_ALERT_TYPES = alert_types.operator_alert_types()
WRITE_COMMANDS = frozenset({"acknowledge_alert", "comment_alert", "shelve_alert", "resolve_alert",
                            "create_alert", "recalculate_limits", "unshelve_alert", "test_output"})
MAX_REQUEST_ID = 100  # characters of a string request_id
FLOOD_CLOSE_AFTER = 200  # rate-limited frames in a row before the connection is closed (1008)

USER = 100
TITLE = 200
LONG_TEXT = 2000


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
    # ids are SQLite INTEGERs: a larger one would raise OverflowError in the store
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= INT64_MAX else None


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):  # math.isfinite(10**400) raises OverflowError; SQLite stops at int64 anyway
        return -INT64_MAX - 1 <= value <= INT64_MAX
    return isinstance(value, float) and math.isfinite(value)


@dataclass(frozen=True)
class F:
    """One field of a client message: its kind, whether it is required, its bounds and default."""

    kind: str  # id | int | number | text | choice
    required: bool = False
    lo: float | None = None
    hi: float | None = None
    default: Any = None
    choices: tuple[str, ...] = ()
    lines: bool = False  # text that may span lines: newline, carriage return and tab are allowed


def _long(required: bool, lo: int) -> F:
    """A long text (message, comment, reason...), which may span lines."""
    return F("text", required, lo, LONG_TEXT, lines=True)


_USER = F("text", True, 1, USER)
SCHEMA: dict[str, dict[str, F]] = {
    "subscribe_product": {"product_id": F("id", True)},
    "unsubscribe_product": {"product_id": F("id", True)},
    "get_alerts": {"limit": F("int", False, 1, 500, 10), "status": F("choice", choices=ALERT_STATUSES),
                   "product_id": F("id"), "before_id": F("id")},
    "get_measurements": {"product_id": F("id", True), "characteristic": F("text", False, 1, TITLE),
                         "limit": F("int", False, 1, 5000, 100)},
    "acknowledge_alert": {"alert_id": F("id", True), "user": _USER, "comment": _long(False, 0)},
    "comment_alert": {"alert_id": F("id", True), "user": _USER, "comment": _long(True, 1)},
    "shelve_alert": {"alert_id": F("id", True), "user": _USER, "duration_s": F("number", True, 0, MAX_SHELVE_S),
                     "reason": _long(True, 1)},
    # an extension of the contract: ends a shelve before its time (the line restarted early)
    "unshelve_alert": {"alert_id": F("id", True), "user": _USER},
    "resolve_alert": {"alert_id": F("id", True), "user": _USER, "cause": _long(True, 1),
                      "action": _long(False, 0)},
    "create_alert": {"product_id": F("id", True), "alert_type": F("choice", True, choices=OPERATOR_ALERT_TYPES),
                     "priority": F("int", True, 1, 5), "title": F("text", True, 1, TITLE),
                     "message": _long(True, 1), "characteristic": F("text", False, 1, TITLE),
                     "user": F("text", False, 1, USER)},
    "recalculate_limits": {"product_id": F("id", True), "characteristic": F("text", True, 1, TITLE),
                           "user": _USER, "reason": _long(True, 1),
                           "from_subgroup": F("id"), "subgroups": F("int", False, 2, 1000, 25)},
    # commissioning an andon or interlock output (`spc-gateway outputs test`): written now, held a while
    "test_output": {"output": F("text", True, 1, TITLE), "state": F("choice", True, choices=("on", "off")),
                    "user": _USER, "hold_s": F("number", False, 0, 600, 10)},
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

    def error(self, code: str, message: str | Mapping[str, str],
              request_id: str | int | None = None) -> dict[str, Any]:
        """An `error` message with a stable code. Given the words in every language ({language: text}),
        `message` is the configured language's and `texts` carries them all, like an alert's, so a
        client in the other language (the English CLI, a screen switched over) shows its own."""
        assert code in ERROR_CODES, code
        if isinstance(message, str):
            return self.message("error", request_id=request_id, code=code, message=message)
        own = message.get(self.language) or message["en"]
        return self.message("error", request_id=request_id, code=code, message=own, texts=i18n.error_texts(message))

    def connection(self, *, gateway: str, seq: int, role: str, epoch: str = "") -> dict[str, Any]:
        """The first message after the handshake, with the seed's text in the configured language; `epoch`
        names the database `seq` counts in (a client resuming sends both back)."""
        return self.message("connection", message=text(self.language, "connection"), protocol=1,
                            gateway=gateway, seq=seq, role=role, epoch=epoch)

    def reply(self, command: Command, type_: str, **payload: Any) -> dict[str, Any]:
        """The reply to `command`; `result` replies also carry `success: true`."""
        if type_ == "result":
            payload = {"success": True, **payload}
        return self.message(type_, request_id=command.request_id, **payload)

    # ------------------------------------------------------------------ receiving

    def receive(self, session: Session, frame: str | bytes) -> Command | dict[str, Any]:
        """One client frame -> a Command to run, or the reply to send right away (often an error)."""
        if not self._take_token(session):
            return self.error("rate_limited", i18n.texts("error.rate_limited", rate=self.rate))
        request_id = None
        try:
            if isinstance(frame, bytes):
                raise Refusal("invalid_json", i18n.texts("error.binary"))
            try:
                data = json.loads(frame)
            except json.JSONDecodeError as exc:
                raise Refusal("invalid_json", i18n.texts("error.json_syntax", detail=str(exc), line=exc.lineno,
                                                   column=exc.colno)) from None
            except ValueError:  # not a JSONDecodeError: Python's limit on the digits of an int
                raise Refusal("invalid_json", i18n.texts("error.json_number")) from None
            except RecursionError:
                raise Refusal("invalid_json", i18n.texts("error.json_deep")) from None
            if not isinstance(data, dict):
                raise Refusal("invalid_json", _not_object(data))
            request_id = self._request_id(data)
            return self._command(session, data, request_id)
        except Refusal as rejected:
            return self.error(rejected.code, rejected.texts, request_id)

    def http_command(self, session: Session, type_: str, body: Any) -> Command | dict[str, Any]:
        """A command whose fields came as an HTTP request body (a JSON object, no `type`): the Command
        to run, or the `error` message. The same checks as over the WebSocket, the rate limit included
        (the caller keeps one session per sender)."""
        if not self._take_token(session):
            return self.error("rate_limited", i18n.texts("error.rate_limited", rate=self.rate))
        try:
            if not isinstance(body, dict):
                raise Refusal("invalid_json", _not_object(body))
            return self._command(session, {**body, "type": type_}, None)
        except Refusal as rejected:
            return self.error(rejected.code, rejected.texts)

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
        if not (isinstance(rid, str) or _is_number(rid)):  # echoed back: NaN would come back as null
            raise Refusal("invalid_field", i18n.texts("error.wrong", field="request_id",
                                                     expected=i18n.texts("expect.request_id")))
        if isinstance(rid, str):
            if len(rid) > MAX_REQUEST_ID:
                raise Refusal("too_large", i18n.texts("error.too_long", field="request_id", length=len(rid),
                                                     limit=MAX_REQUEST_ID))
            self._check_characters("request_id", rid, multiline=False)
        return rid

    def _command(self, session: Session, data: dict[str, Any], request_id: str | int | None) -> Command | dict:
        type_ = data.get("type")
        if not isinstance(type_, str):
            raise Refusal("invalid_field", i18n.texts("error.missing", field="type", expected=i18n.texts("expect.type")))
        schema = SCHEMA.get(type_)
        if schema is None:
            raise Refusal("unknown_type", i18n.texts("error.unknown_type", type=type_[:50], allowed=", ".join(SCHEMA)))
        if type_ in WRITE_COMMANDS and session.role != "operator":
            raise Refusal("unauthorized", i18n.texts("error.unauthorized", role=session.role, type=type_))
        if type_ == "create_alert" and "product_id" not in data and "product" in data:
            data = {**data, "product_id": data["product"]}  # the seed's POST /api/spc/alerts/ body
        if type_ == "create_alert" and data.get("alert_type") in ALERT_TYPES \
                and data["alert_type"] not in OPERATOR_ALERT_TYPES:
            raise Refusal("invalid_field", i18n.texts("error.gateway_type", alert_type=data["alert_type"],
                                                     allowed=", ".join(OPERATOR_ALERT_TYPES)))
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
        if value is None:
            if spec.required:
                raise Refusal("invalid_field", i18n.texts("error.missing", field=name, expected=_expected(spec)))
            return spec.default
        if spec.kind == "id":
            if _id(value) is None:
                raise Refusal("invalid_field", i18n.texts("error.wrong", field=name, expected=_expected(spec)))
            return value
        if spec.kind in ("int", "number"):
            ok = _is_number(value) and (spec.kind == "number" or isinstance(value, int))
            if ok and spec.kind == "number":
                ok = (spec.lo is None or value > spec.lo) and (spec.hi is None or value <= spec.hi)
            elif ok:
                ok = (spec.lo is None or value >= spec.lo) and (spec.hi is None or value <= spec.hi)
            if not ok:
                raise Refusal("invalid_field", i18n.texts("error.wrong", field=name, expected=_expected(spec)))
            return value
        if spec.kind == "choice":
            if value not in spec.choices:
                raise Refusal("invalid_field", i18n.texts("error.wrong", field=name, expected=_expected(spec)))
            return value
        if not isinstance(value, str):
            raise Refusal("invalid_field", i18n.texts("error.wrong", field=name, expected=_expected(spec)))
        value = value.strip()
        if spec.hi is not None and len(value) > spec.hi:
            raise Refusal("too_large", i18n.texts("error.too_long", field=name, length=len(value), limit=int(spec.hi)))
        self._check_characters(name, value, multiline=spec.lines)
        if spec.lo and len(value) < spec.lo:
            if spec.required:
                raise Refusal("invalid_field", i18n.texts("error.missing", field=name, expected=_expected(spec)))
            return spec.default
        return value

    def _check_characters(self, name: str, value: str, *, multiline: bool) -> None:
        bad = bad_character(value, multiline=multiline)
        if bad is not None:
            key = "error.bad_character_lines" if multiline else "error.bad_character"
            raise Refusal("invalid_field", i18n.texts(key, field=name, char=bad))

    def _check_references(self, type_: str, fields: dict[str, Any]) -> None:
        product_id = fields.get("product_id")
        if product_id is None:
            return
        product = self.products.get(product_id)
        if product is None:
            raise Refusal("not_found", i18n.texts("error.no_product", product_id=product_id))
        name = fields.get("characteristic")
        if name is not None and all(c.name != name for c in product.characteristics):
            raise Refusal("not_found", i18n.texts("error.no_characteristic", product_id=product_id, characteristic=name))


def _expected(spec: F) -> dict[str, str]:
    """What a field must be, in every language (spliced into error.wrong / error.missing)."""
    if spec.kind == "id":
        return i18n.texts("expect.int", lo="1", hi=str(INT64_MAX))
    if spec.kind == "int":
        return i18n.texts("expect.int", lo=f"{spec.lo:g}", hi=f"{spec.hi:g}")
    if spec.kind == "number":
        return i18n.texts("expect.number", lo=f"{spec.lo:g}", hi=f"{spec.hi:g}")
    if spec.kind == "choice":
        return i18n.texts("expect.choice", choices=", ".join(spec.choices))
    return i18n.texts("expect.text", hi=f"{spec.hi:g}") if spec.hi else i18n.texts("expect.any_text")


def _not_object(value: Any) -> dict[str, str]:
    """'not a JSON object: got list', in every language."""
    kind = type(value).__name__
    return i18n.texts("error.invalid_json", detail=i18n.texts(f"json.{kind}") if f"json.{kind}" in _JSON_KINDS
                 else f"got {kind}")


_JSON_KINDS = frozenset(f"json.{k}" for k in ("list", "str", "int", "float", "bool", "NoneType"))
