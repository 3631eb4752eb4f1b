"""The OPC UA server itself, as the worker process runs it (gateway.outputs.opcua_server.worker).

It builds the address space, the alarm bridge, the users and the security, seeds the values from the
database file, and then applies each committed event's body the daemon sends: the values with the
measurement's own time as the source timestamp; asyncua hands each change to the subscribed clients
at their next publishing interval, with every change kept in a monitored item's queue.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import socket
from typing import Any

from gateway import __version__
from gateway.config import Config
from gateway.config.model import OpcUaServerSection
from gateway.core.listen_error import check_bindable, is_bind_error, listen_error

log = logging.getLogger("gateway.outputs.opcua_server")

QUEUE_LIMIT = 100_000  # events waiting for the writer task; beyond, the oldest are dropped (counted)


class ServerCore:
    """`opcua_server:` (contract plant-integration §2): the address space, alarms, users, security.

    `store` reads the database (the seed, limits versions), `alerts` acts on alerts (the daemon's
    AlertService, through the worker's pipe) and lists the unresolved ones."""

    def __init__(self, config: Config, settings: OpcUaServerSection, store: Any, alerts: Any):
        self.config = config
        self.settings = settings
        self.store = store
        self.alerts = alerts
        self.sources_connected = -1
        self.queue: collections.deque[dict[str, Any]] = collections.deque()
        self.wake = asyncio.Event()
        self.server: Any = None
        self.space: Any = None
        self.alarms: Any = None
        self.users: Any = None
        self.endpoint = f"opc.tcp://{self._host()}:{settings.listen.port}/spc-gateway/"
        self.certificate_expires: str | None = None
        self.written = 0
        self.dropped = 0
        self.writes_refused = 0
        self.errors = 0
        self._task: asyncio.Task[None] | None = None

    def _host(self) -> str:
        host = self.settings.listen.host
        return f"[{host}]" if ":" in host else host

    def _files(self) -> tuple[str, str]:
        folder = os.path.dirname(os.path.abspath(self.config.storage.path))
        return (self.settings.certificate or os.path.join(folder, "opcua-server.der"),
                self.settings.private_key or os.path.join(folder, "opcua-server.pem"))

    async def start(self) -> None:
        # asyncua is imported here, not with the registry: a gateway without opcua_server never loads it
        from asyncua import Server, ua
        from asyncua.common.callback import CallbackType

        from gateway.outputs.opcua_server.alarms import AlarmBridge
        from gateway.outputs.opcua_server.security import POLICIES, ensure_certificate, expires
        from gateway.outputs.opcua_server.space import AddressSpace
        from gateway.outputs.opcua_server.users import Permissions, UserManager, read_users

        check_bindable("opcua_server.listen", self.settings.listen.host, self.settings.listen.port)
        self.users = UserManager(await asyncio.to_thread(read_users, self.settings.users_file))
        server = Server(user_manager=self.users)
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name(f"spc-gateway {self.config.gateway.name}")
        uri = f"urn:spc-gateway:{self.config.gateway.name}"
        if any(policy != "None" for policy in self.settings.security):
            certificate, key = self._files()
            hosts = [self.settings.listen.host if self.settings.listen.host not in ("0.0.0.0", "::") else "",
                     "localhost", socket.gethostname()]
            uri = await asyncio.to_thread(ensure_certificate, certificate, key, uri, hosts)
            await server.load_certificate(certificate)
            await server.load_private_key(key)
            when = expires(certificate)
            self.certificate_expires = when.isoformat() if when else None
        await server.set_application_uri(uri)
        server.set_security_policy([POLICIES[p] for p in self.settings.security],
                                   permission_ruleset=Permissions())  # type: ignore[arg-type]  # any ruleset works
        server.set_identity_tokens([ua.AnonymousIdentityToken, ua.UserNameIdentityToken])
        server.subscribe_server_callback(CallbackType.PostWrite, self._refused_writes)
        self.space = AddressSpace(server, self.config)
        await self.space.build(__version__)
        self.alarms = AlarmBridge(server, self.space, self.alerts)
        await self.alarms.start()
        self.server = server
        for node_id, value in await self.space.seed(self.store, self.alerts.unresolved()):
            await server.write_attribute_value(node_id, value)
        for alert in reversed(self.alerts.unresolved()):  # oldest first: the conditions open now
            await self.alarms.on_alert(alert)
        try:
            await server.start()
        except OSError as exc:
            if is_bind_error(exc):
                raise listen_error("opcua_server.listen", self.settings.listen.host, self.settings.listen.port,
                                   exc) from None
            raise
        self._task = asyncio.create_task(self._run(), name="opcua-server")
        log.info("OPC UA server on %s (%s), %d users", self.endpoint, ", ".join(self.settings.security),
                 len(self.users.users))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.server is not None:
            await self.server.stop()

    def publish(self, bodies: list[dict[str, Any]]) -> None:
        self.queue.extend(bodies)
        while len(self.queue) > QUEUE_LIMIT:
            self.queue.popleft()
            self.dropped += 1
        self.wake.set()

    async def set_sources_connected(self, connected: int) -> None:
        from asyncua import ua

        if connected != self.sources_connected:
            self.sources_connected = connected
            await self.server.write_attribute_value(
                self.space.sources_connected, ua.DataValue(ua.Variant(connected, ua.VariantType.Int32)))

    async def _run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            try:
                while self.queue:
                    await self._apply(self.queue.popleft())
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad event must not end the server's updates
                self.errors += 1
                log.exception("OPC UA server: applying an event failed")

    async def _apply(self, body: dict[str, Any]) -> None:
        for node_id, value in self.space.updates(body):
            await self.server.write_attribute_value(node_id, value)
            self.written += 1
        kind = body.get("type")
        if kind == "alert":
            await self.alarms.on_alert(body["alert"])
        elif kind == "subgroup":
            s = body["subgroup"]
            c = self.space.products[s["product_id"]].characteristics.get(s["characteristic"]) \
                if s.get("product_id") in self.space.products else None
            if c is not None and c.limits != c.versioned:  # new limits came with this point: their version
                c.versioned = c.limits
                for node_id, value in await self.space.limits_version(self.store, s["product_id"],
                                                                       s["characteristic"]):
                    await self.server.write_attribute_value(node_id, value)
                    self.written += 1

    async def _refused_writes(self, event: Any, _dispatcher: Any) -> None:
        """Every variable is read-only. asyncua answers a write to one with BadUserAccessDenied (it checks
        AccessLevel and UserAccessLevel together); OPC UA Part 4 says BadNotWritable when the AccessLevel
        forbids it, whoever asks, so that is what the client gets."""
        from asyncua import ua

        from gateway.outputs.opcua_server.space import status

        results = event.response_params
        for i, result in enumerate(results or ()):
            if result.value == ua.StatusCodes.BadUserAccessDenied:
                results[i] = status(ua.StatusCodes.BadNotWritable)
                self.writes_refused += 1

    def stats(self) -> dict[str, Any]:
        alarms = self.alarms.stats() if self.alarms is not None else {}
        return {"endpoint": self.endpoint, "security": list(self.settings.security),
                "users": len(self.users.users) if self.users else 0,
                "logins_refused": self.users.refused if self.users else 0,
                "values_written": self.written, "queue": len(self.queue), "dropped": self.dropped,
                "writes_refused": self.writes_refused, "errors": self.errors,
                "certificate_expires": self.certificate_expires, **alarms}
