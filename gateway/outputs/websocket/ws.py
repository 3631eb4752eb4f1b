"""The line-side server: the websockets asyncio shell around protocol, hub and HTTP routes.

One port serves the HMI page, the read-only HTTP API and both WebSocket endpoints. The handshake is
checked in `process_request` (route, Origin -> 403, token -> 401, connection cap -> 503); a connection
then gets `connection`, the snapshot of unresolved alerts, the `?since=` replay and `replay_complete`,
and goes live. Every rule about messages lives in protocol.py; every rule about fan-out in hub.py.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import re
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from gateway.alerts import ACTING_CLIENT, AlertService
from gateway.config import Config
from gateway.core.listen_error import is_bind_error, listen_error
from gateway.core.model import Event
from gateway.core.secrets import read_secret
from gateway.core.texts import Refusal
from gateway.outputs.base import Output
from gateway.outputs.websocket.http import (
    STATIC_DIR,
    HttpRoutes,
    json_response,
    measurement_object,
    render_metrics,
    response,
)
from gateway.outputs.websocket.hub import Client, Hub, carries, encode, event_json
from gateway.outputs.websocket.inputs import INT64_MAX, request_problem, whole_number
from gateway.outputs.websocket.protocol import Command, Protocol, Session
from gateway.outputs.websocket.websockets_private import BodyReadingConnection

log = logging.getLogger("gateway.server")

REPLAY_PAGE = 1000  # events read from the store per query while replaying
SNAPSHOT_LIMIT = 1000  # unresolved alerts sent after `connection` at most
MAX_INCOMING_FRAMES = 8  # frames buffered per connection before websockets stops reading the socket
CLOSE_TIMEOUT = 2.0
FLOOD_CLOSE_CODE = 1008
_PRODUCT_ENDPOINT = re.compile(r"^/ws/spc/product/([0-9]{1,9})/?$")  # ASCII digits: \d takes '١' too
_GENERAL_ENDPOINT = re.compile(r"^/ws/spc/notifications/?$")
HISTORY_SUBGROUPS = 500  # charted points sent with a `measurements` reply (the page draws 500)
ALERTS_PATH = "/api/spc/alerts/"  # GET lists alerts; POST creates one (the seed's third way)
# other protocol errors are the body's: 400; storage_unavailable: the disk is full or the database lost,
# and nothing was changed
HTTP_STATUS_OF_ERROR = {"unauthorized": 403, "rate_limited": 429, "storage_unavailable": 503}
HTTP_SENDERS = 256  # rate-limit buckets kept for senders of POST /api/spc/alerts/ (a plant has a few)
EPOCH = re.compile(r"[0-9a-f]{1,32}")  # a database epoch as the client echoes it (store_schema makes 16)


@dataclass(frozen=True)
class Handshake:
    """What process_request learned about a WebSocket request, for the handler."""

    product_id: int | None
    role: str
    client_name: str | None
    since: int | None
    subprotocol: str | None
    # ?subscribe=1,2 on the general feed: subscribed from the start, so a `since` replay carries those
    # products' measurements too (a new connection could not subscribe before its replay otherwise)
    subscribe: frozenset[int] = frozenset()
    # ?epoch=: the database the client's `since` counts in; another one (a lost file) makes it a gap
    epoch: str | None = None


class LineServer(Output):
    """Serves the endpoints on `server.listen`; `start()`/`stop()` (stop closes clients with 1001)."""

    name = "clients"  # its stats in /healthz: the WebSocket clients
    stop_timeout = 1.5

    def __init__(self, config: Config, store: Any, alerts: AlertService, hub: Hub, *,
                 health: Callable[[], dict[str, Any]], metrics: Callable[[], dict[str, Any] | str],
                 recalculate: Callable[..., Awaitable[dict[str, Any]]], static_dir: Path = STATIC_DIR,
                 test_output: Callable[..., Awaitable[dict[str, Any]]] | None = None):
        self.config = config
        self.store = store
        self.alerts = alerts
        self.hub = hub
        self.app_health = health
        self.app_metrics = metrics
        self.recalculate = recalculate
        self.test_output = test_output  # (name, on, hold_s, user) -> the output's state; None: no outputs
        self.tz = ZoneInfo(config.gateway.timezone)
        settings = config.server
        self.protocol = Protocol({p.id: p for p in config.products}, language=config.gateway.language,
                                 tz=self.tz, commands_per_second=settings.commands_per_second)
        self.tokens: list[tuple[bytes, str, str]] = []  # (token, name, role)
        self.http = HttpRoutes(config, store, health=self.health, metrics=self.metrics_text,
                               static_dir=static_dir, authorized=self._http_authorized)
        self.server: Server | None = None
        self.refused = {"origin": 0, "token": 0, "capacity": 0}
        self._http_sessions: dict[str, Session] = {}  # rate-limit buckets of HTTP writers, oldest first

    # ------------------------------------------------------------------ lifecycle

    def reconfigure(self, config: Config) -> None:
        """SIGHUP: products and server checks follow the new config; listen, TLS and tokens need a restart."""
        self.config = config
        self.protocol.products = {p.id: p for p in config.products}
        self.http.config = config
        self.hub.reconfigure(config)

    async def start(self) -> None:
        """Read the token files, bind the port, start serving."""
        settings = self.config.server
        self.tokens = [(_read_token(entry.token_file).encode(), entry.name, entry.role) for entry in settings.auth]
        if not self.tokens and not _loopback(settings.listen.host):
            log.warning("server.listen is %s with no server.auth tokens: anyone who reaches the port is an "
                        "operator (may acknowledge, shelve and resolve alerts)", settings.listen.host)
        tls = None
        if settings.tls is not None:
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.load_cert_chain(settings.tls.certificate, settings.tls.private_key)
        try:
            self.server = await serve(
                self._handler, settings.listen.host, settings.listen.port, process_request=self._process_request,
                select_subprotocol=self._select_subprotocol, compression=None, max_size=settings.max_frame,
                max_queue=MAX_INCOMING_FRAMES, ping_interval=settings.ping_interval,
                ping_timeout=settings.ping_interval, close_timeout=CLOSE_TIMEOUT, server_header=None, ssl=tls,
                create_connection=BodyReadingConnection)
        except OSError as exc:  # a taken port is one line for the journal, not a traceback
            if not is_bind_error(exc):
                raise
            raise listen_error("server.listen", settings.listen.host, settings.listen.port, exc) from None
        log.info("serving %s://%s:%d/ (WebSocket /ws/spc/notifications/, /ws/spc/product/{id}/)",
                 "https" if tls else "http", settings.listen.host, self.port)

    async def stop(self) -> None:
        """Close every client with 1001 (going away) and stop listening."""
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    @property
    def port(self) -> int:
        """The bound port (useful with `listen: 127.0.0.1:0`)."""
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]

    # ------------------------------------------------------------------ handshake

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        problem = request_problem(request.path, request.headers)
        if problem is not None:  # before any route reads the head: a clear 400, never a 500
            return json_response(400, {"error": problem})
        path = urlsplit(request.path).path
        if request.method == "POST" and path == ALERTS_PATH:
            return await self._post_alert(connection, request)
        if not path.startswith("/ws/") or request.method != "GET":
            return await self.http.handle(request.method, request.path, request.headers)
        general, product = _GENERAL_ENDPOINT.match(path), _PRODUCT_ENDPOINT.match(path)
        product_id = int(product.group(1)) if product else None
        if not general and (product_id is None or product_id not in self.protocol.products):
            return json_response(404, {"error": f"no such endpoint: {path[:200]} (use /ws/spc/notifications/ "
                                                "or /ws/spc/product/{id}/ with a configured product id)"})
        if not self._origin_allowed(request):
            self.refused["origin"] += 1
            log.warning("refused %s: Origin %r is not in server.allowed_origins", _peer(connection),
                        request.headers.get("Origin"))
            return response(403, "This Origin may not open the gateway's WebSocket (server.allowed_origins).\n")
        query = parse_qs(urlsplit(request.path).query)
        identity = self._identify(query.get("token", [None])[-1], _offered(request))
        if identity is None:
            self.refused["token"] += 1
            log.warning("refused %s: missing or wrong token", _peer(connection))
            return response(401, "A valid token is required: ?token=... or subprotocol bearer.TOKEN.\n",
                            extra={"WWW-Authenticate": 'Bearer realm="spc-gateway"'})
        if len(self.hub.clients) >= self.config.server.max_connections:
            self.refused["capacity"] += 1
            log.warning("refused %s: %d connections already (server.max_connections)", _peer(connection),
                        len(self.hub.clients))
            return response(503, "Too many connections; try again later.\n", extra={"Retry-After": "5"})
        since_raw = query.get("since", [None])[-1]
        since = whole_number(since_raw) if since_raw else None
        if since_raw and since is None:
            return json_response(400, {"error": f"since must be the last seq the client saw (a whole number "
                                                f"from 0 to {INT64_MAX}, ASCII digits)"})
        epoch = query.get("epoch", [None])[-1]
        if epoch is not None and not EPOCH.fullmatch(epoch):
            return json_response(400, {"error": "epoch must be the `epoch` of the events the client saw "
                                                "(up to 32 hexadecimal digits)"})
        subscribe_raw = query.get("subscribe", [""])[-1]
        parts = [whole_number(p.strip(), 1) for p in subscribe_raw.split(",") if p.strip()]
        subscribe = frozenset(p if p is not None else -1 for p in parts)
        if not subscribe <= self.protocol.products.keys():
            return json_response(400, {"error": "subscribe must list configured product ids, e.g. ?subscribe=1,2"})
        name, role, subprotocol = identity
        # kept on the connection itself: a handshake that fails after this point leaves nothing behind
        connection.spc_handshake = Handshake(product_id, role, name,  # type: ignore[attr-defined]
                                             since, subprotocol, subscribe, epoch)
        return None

    async def _post_alert(self, connection: ServerConnection, request: Request) -> Response:
        """The seed's `POST /api/spc/alerts/`: its JSON body is a `create_alert` command's fields."""
        error = getattr(connection, "http_body_error", None)
        if error is not None:
            return json_response(error[0], {"error": error[1]})
        if not self._origin_allowed(request):  # a page of another site must not raise alerts
            self.refused["origin"] += 1
            log.warning("refused a POST from %s: Origin %r is not in server.allowed_origins", _peer(connection),
                        request.headers.get("Origin"))
            return json_response(403, {"error": "this Origin may not create alerts (server.allowed_origins)"})
        identity = self._http_identity(request.path, request.headers)
        if identity is None:
            self.refused["token"] += 1
            return json_response(401, {"error": "a valid token is required (?token= or Authorization: Bearer)"},
                                 extra={"WWW-Authenticate": 'Bearer realm="spc-gateway"'})
        content_type = (request.headers.get("Content-Type") or "").partition(";")[0].strip().lower()
        if content_type != "application/json":  # also keeps plain cross-site form posts out
            return json_response(415, {"error": "send the alert as JSON, with Content-Type: application/json"})
        try:
            body = json.loads(getattr(connection, "http_body", None) or b"")
        except (ValueError, RecursionError) as exc:
            return json_response(400, {"error": f"the body is not JSON: {exc}", "code": "invalid_json"})
        name, role, _ = identity
        outcome = self.protocol.http_command(self._http_session(connection, name, role), "create_alert", body)
        if isinstance(outcome, Command):
            ACTING_CLIENT.set(name or _peer(connection))
            outcome = await self._run(outcome, Session(role=role, client_name=name))
        if outcome["type"] == "error":
            status = HTTP_STATUS_OF_ERROR.get(outcome["code"], 400)
            body = {"error": outcome["message"], "code": outcome["code"]}
            if "texts" in outcome:  # the same words in every language, as on the WebSocket
                body["texts"] = outcome["texts"]
            return json_response(status, body)
        return json_response(201, outcome["alert"])

    def _http_session(self, connection: ServerConnection, name: str | None, role: str) -> Session:
        """One rate-limit bucket per sender (token name, else address) across its one-shot HTTP requests."""
        sender = name or str(connection.remote_address[0])
        session = self._http_sessions.pop(sender, None) or Session(role=role, client_name=name)
        self._http_sessions[sender] = session  # most recent last: the oldest sender is forgotten first
        while len(self._http_sessions) > HTTP_SENDERS:
            del self._http_sessions[next(iter(self._http_sessions))]
        return session

    def _select_subprotocol(self, connection: ServerConnection,
                            offered: Sequence[Subprotocol]) -> Subprotocol | None:
        handshake = getattr(connection, "spc_handshake", None)
        return handshake.subprotocol if handshake is not None else None

    def _origin_allowed(self, request: Request) -> bool:
        origin = request.headers.get("Origin")
        if origin is None:  # not a browser: Origin protects browsers from cross-site hijacking
            return True
        if origin in self.config.server.allowed_origins:
            return True
        host = request.headers.get("Host")
        return host is not None and urlsplit(origin).netloc.lower() == host.lower()  # the gateway's own page

    def _identify(self, query_token: str | None, offered: list[str]) -> tuple[str | None, str, str | None] | None:
        """(client name, role, subprotocol to echo) for a valid token; None when refused."""
        bearer = next((p for p in offered if p.startswith("bearer.")), None)
        if not self.tokens:
            return None, "operator", bearer
        for candidate, subprotocol in ((query_token, None), (bearer[7:] if bearer else None, bearer)):
            if candidate is None:
                continue
            match = None
            for token, name, role in self.tokens:  # compare with every token: no early exit on a match
                if hmac.compare_digest(token, candidate.encode()) and match is None:
                    match = (name, role, subprotocol)
            if match is not None:
                return match
        return None

    def _http_authorized(self, target: str, headers: Any) -> bool:
        return self._http_identity(target, headers) is not None

    def _http_identity(self, target: str, headers: Any) -> tuple[str | None, str, str | None] | None:
        """Who sends a plain HTTP request (?token= or Authorization: Bearer); None when refused."""
        token = parse_qs(urlsplit(target).query).get("token", [None])[-1]
        auth = headers.get("Authorization") if headers is not None else None
        if token is None and auth and auth.lower().startswith("bearer "):
            token = auth[7:].strip()
        return self._identify(token, [])

    # ------------------------------------------------------------------ one connection

    async def _handler(self, connection: ServerConnection) -> None:
        handshake: Handshake = connection.spc_handshake  # type: ignore[attr-defined]
        session = Session(role=handshake.role, client_name=handshake.client_name, product_id=handshake.product_id)
        session.subscriptions.update(handshake.subscribe)
        # operator acts through this connection are recorded with the screen they came from
        ACTING_CLIENT.set(handshake.client_name or _peer(connection))
        client = self.hub.attach(connection, handshake.product_id, subscriptions=session.subscriptions,
                                 address=_peer(connection),
                                 user_agent=(_user_agent(connection) or "?")[:200])
        try:
            await self._send(connection, self.protocol.connection(
                gateway=self.config.gateway.name, seq=self.store.last_seq, role=handshake.role,
                epoch=self.store.epoch))
            # while the disk fails, alerts raised since (STORAGE first of all) exist in memory only
            in_memory = getattr(self.store, "failing", False)
            unresolved = (sorted(self.alerts.unresolved(), key=lambda a: a["id"]) if in_memory
                          else await self.store.unresolved_alerts())
            snapshot = [a for a in unresolved
                        if handshake.product_id is None or a.get("product_id") in (handshake.product_id, None)]
            await self._send(connection, self.protocol.message("alerts", alerts=snapshot[:SNAPSHOT_LIMIT],
                                                               snapshot=True))
            horizon = None
            if handshake.since is not None:
                horizon = await self._replay(connection, handshake.product_id, handshake.since,
                                             session.subscriptions, client,
                                             other_epoch=handshake.epoch not in (None, self.store.epoch))
            if not client.closed:
                self.hub.go_live(client, horizon)
            async for frame in connection:
                outcome = self.protocol.receive(session, frame)
                if isinstance(outcome, Command):
                    outcome = await self._run(outcome, session)
                await self._send(connection, outcome)
                if self.protocol.flooding(session):
                    log.warning("client %s (%s) keeps flooding commands; disconnecting", client.address,
                                client.user_agent)
                    await connection.close(FLOOD_CLOSE_CODE, "too many commands")
                    break
        except ConnectionClosed:
            pass
        finally:
            await self.hub.detach(client)

    async def _send(self, connection: ServerConnection, message: dict[str, Any]) -> None:
        await connection.send(encode(message), text=True)

    async def _replay(self, connection: ServerConnection, product_id: int | None, since: int,
                      subscriptions: set[int], client: Client, *, other_epoch: bool = False) -> int | None:
        """Send the stored events after `since` this endpoint carries; returns the seq the replay covered.

        Live events published meanwhile wait in the client's queue; those its bound had no room for
        (`client.dropped_through`) are read from the store here too, so the replay runs until it has
        sent them, however long the socket takes to drain."""
        last = self.store.last_seq
        oldest = await self.store.oldest_event_seq()
        gap = other_epoch or since > last or (since < last and (oldest is None or since + 1 < oldest))
        if gap:  # older than what is kept (or from another database): the client reloads with get_alerts
            await self._send(connection, self.protocol.message("replay_complete", from_seq=since, to_seq=last,
                                                               complete=False))
            return None
        cursor, sent, complete = since, 0, True

        async def send_through(target: int) -> None:
            nonlocal cursor, sent, complete
            while cursor < target and complete:
                events = await self.store.events_after(cursor, REPLAY_PAGE)
                if not events:
                    break
                for event in events:
                    if carries(product_id, subscriptions, event):
                        await connection.send(event_json(event), text=True)
                        sent += 1
                cursor = events[-1].seq
                if sent > self.config.server.replay_limit:
                    complete = False
                target = max(target, client.dropped_through)

        await send_through(last)
        await self._send(connection, self.protocol.message("replay_complete", from_seq=since, to_seq=cursor,
                                                           complete=complete))
        # dropped from the queue while replay_complete was being sent: they follow it, as live events would
        await send_through(client.dropped_through)
        return cursor

    async def _run(self, command: Command, session: Session) -> dict[str, Any]:
        """Run a validated command against the store, the alert service or the pipeline."""
        f = command.fields
        try:
            if command.type == "get_alerts":
                alerts = await self.store.alerts(status=f["status"], product_id=f["product_id"], limit=f["limit"],
                                                 before_id=f["before_id"])
                return self.protocol.reply(command, "alerts", alerts=alerts, snapshot=False)
            if command.type == "get_measurements":
                return await self._measurements(command)
            if command.type == "acknowledge_alert":
                alert = await self.alerts.acknowledge(f["alert_id"], f["user"], f["comment"])
            elif command.type == "comment_alert":
                alert = await self.alerts.comment(f["alert_id"], f["user"], f["comment"])
            elif command.type == "shelve_alert":
                alert = await self.alerts.shelve(f["alert_id"], f["user"], f["duration_s"], f["reason"])
            elif command.type == "unshelve_alert":
                alert = await self.alerts.unshelve(f["alert_id"], f["user"])
            elif command.type == "resolve_alert":
                alert = await self.alerts.resolve(f["alert_id"], f["user"], f["cause"], f["action"])
            elif command.type == "create_alert":
                alert = await self.alerts.create(f["product_id"], f["alert_type"], f["priority"], f["title"],
                                                 f["message"], user=f["user"] or session.client_name,
                                                 characteristic=f["characteristic"])
            elif command.type == "recalculate_limits":
                limits = await self.recalculate(f["product_id"], f["characteristic"], user=f["user"],
                                                reason=f["reason"], from_subgroup=f["from_subgroup"],
                                                subgroups=f["subgroups"])
                return self.protocol.reply(command, "result", limits=limits)
            elif command.type == "test_output":
                if self.test_output is None:
                    raise LookupError("this gateway has no outputs")
                try:
                    output = await self.test_output(f["output"], f["state"] == "on", f["hold_s"], f["user"])
                except (ConnectionError, TimeoutError, OSError, ValueError) as exc:  # the device said no
                    return self.protocol.error("write_failed", f"the write failed: {exc or type(exc).__name__}",
                                               command.request_id)
                return self.protocol.reply(command, "result", output=output)
            else:  # pragma: no cover - the schema and this table list the same commands
                raise AssertionError(command.type)
            return self.protocol.reply(command, "result", alert=alert)
        except Refusal as exc:
            return self.protocol.error(exc.code, exc.texts, command.request_id)
        except LookupError as exc:
            return self.protocol.error("not_found", str(exc), command.request_id)
        except ValueError as exc:
            return self.protocol.error("invalid_field", str(exc), command.request_id)

    async def _measurements(self, command: Command) -> dict[str, Any]:
        f = command.fields
        product = self.protocol.products[f["product_id"]]
        name = f["characteristic"]
        if name is None and len(product.characteristics) == 1:
            name = product.characteristics[0].name
        rows = [measurement_object(r, self.tz) for r in
                await self.store.measurements(product.id, f["characteristic"], f["limit"])]
        limits, subgroups = None, []
        if name is not None:
            characteristic = next(c for c in product.characteristics if c.name == name)
            stored = await self.store.latest_limits(product.id, name) or {}
            spec = characteristic.spec
            limits = {key: stored.get(key) for key in ("center", "ucl", "lcl", "sigma", "dispersion_center",
                                                         "dispersion_ucl", "dispersion_lcl")}
            limits["spec"] = {"lsl": spec.lsl, "target": spec.target, "usl": spec.usl}
            if characteristic.short_run is not None:  # short-run SPC: the plot and each part's own spec
                limits["short_run"] = characteristic.short_run
                limits["parts"] = {p.name: {"target": p.target, "sigma": p.sigma, "lsl": p.lsl, "usl": p.usl}
                                   for p in characteristic.parts}
            # the charted points these measurements form, with the rule numbers they broke when charted
            subgroups = await self.store.subgroups(product.id, name, HISTORY_SUBGROUPS)
        return self.protocol.reply(command, "measurements", product_id=product.id, characteristic=name,
                                   measurements=rows, limits=limits, subgroups=subgroups)

    # ------------------------------------------------------------------ health and metrics

    def publish(self, events: list[Event]) -> None:
        """Committed events to every screen that carries them (the hub: one frame each, bounded queues)."""
        self.hub.publish(events)

    def announce(self, events: list[Event]) -> None:
        """The screens must see a STORAGE alert before it can be stored: sent now, without seq."""
        self.hub.announce(events)

    def stats(self) -> dict[str, Any]:
        """The clients, their queues and the refused handshakes (`clients` in /healthz)."""
        return {**self.hub.stats(), "refused": dict(self.refused)}

    def health(self) -> dict[str, Any]:
        """The app's health report (which holds every output's stats, these too)."""
        return self.app_health()

    def metrics_text(self) -> str:
        """Prometheus text: the app's numbers, the hub's, the alerts by state and type."""
        app = self.app_metrics()
        if isinstance(app, dict):  # our own numbers are rendered as ws_*, not a second time from the report
            app = {key: value for key, value in app.items() if key != self.name}
        return render_metrics(app, self.hub.stats(), self.alerts.stats(), self.refused)


def _offered(request: Request) -> list[str]:
    values = request.headers.get_all("Sec-WebSocket-Protocol")
    return [p.strip() for value in values for p in value.split(",") if p.strip()]


def _peer(connection: ServerConnection) -> str:
    try:
        host, port = connection.remote_address[:2]
        forwarded = connection.request.headers.get("X-Forwarded-For") if connection.request else None
        return f"{host}:{port}" + (f" (for {forwarded[:100]})" if forwarded else "")
    except Exception:
        return "?"


def _loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _read_token(path: str) -> str:
    """A token file by the one rule for every secret file (gateway.core.secrets.read_secret)."""
    return read_secret(path)


def _user_agent(connection: ServerConnection) -> str | None:
    """The client's User-Agent; a handler's connection always has its request (after the handshake)."""
    request = connection.request
    return request.headers.get("User-Agent") if request is not None else None
