"""A simulated measuring machine: an asyncua server on loopback serving `simulator.Gauge` readings.

Each gauge NAME is served as a Double node `ns=2;s=<prefix>.NAME` (the latest reading, with the
time it was measured as source timestamp) and a UInt32 node `ns=2;s=<prefix>.NAME.PartCounter`
that moves once per part after the reading is written, as a PLC's "measurement done" counter does.
A `drop` disturbance closes the server for its length (parts are still made, nobody can read them).
`python -m gateway.sim.opcua_server --port 4840` runs it standalone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as _dt
import logging
import socket
from dataclasses import dataclass, field

from asyncua import Node, Server, ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.user_managers import UserManager

from gateway.core.listen_error import ListenError, check_bindable
from gateway.sim.simulator import Disturbance, Gauge

log = logging.getLogger(__name__)

NAMESPACE = "urn:spc-gateway:simulator"
DEFAULT_PREFIX = "Line3.CMM"


@dataclass(frozen=True)
class SimSecurity:
    """Server-side security for tests and demos: certificate, key, policies, users."""

    certificate: str
    private_key: str
    policies: tuple[ua.SecurityPolicyType, ...] = (ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,)
    users: dict[str, str] = field(default_factory=dict)  # name -> password; empty: anonymous allowed


class _Users(UserManager):
    def __init__(self, users: dict[str, str]):
        self.users = users

    def get_user(self, iserver, username=None, password=None, certificate=None):  # noqa: ANN001, ANN201
        if self.users.get(username or "") == password and username:
            return User(role=UserRole.User)
        return None


class OpcUaSimulator:
    """Serves gauges over OPC UA; `restart()` and `stop()` let tests produce server faults."""

    def __init__(self, port: int, gauges: dict[str, Gauge], interval: float, *, host: str = "127.0.0.1",
                 prefix: str = DEFAULT_PREFIX, security: SimSecurity | None = None):
        self.port, self.host, self.interval, self.prefix = port, host, interval, prefix
        self.gauges = gauges
        self.security = security
        self.endpoint = f"opc.tcp://{host}:{port}/spc-gateway/sim/"
        self.node_ids = {name: f"ns=2;s={prefix}.{name}" for name in gauges}
        self.counter_node_ids = {name: f"ns=2;s={prefix}.{name}.PartCounter" for name in gauges}
        self.running = False  # the server accepts connections
        self.paused = False  # parts are not made (tests drive `make_part` themselves)
        self._server: Server | None = None
        self._nodes: dict[str, tuple[Node, Node]] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._drop_halted = False  # the ticker closed the server for a `drop` disturbance

    async def _wait_bindable(self, timeout: float = 10.0) -> None:
        # After a restart, server-side sockets of the old connections can hold the port until the
        # clients close their ends (FIN_WAIT): wait for it, as a real server's service manager would.
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind((self.host, self.port))
                    return
                except OSError:
                    if asyncio.get_running_loop().time() > deadline:
                        raise
            await asyncio.sleep(0.1)

    async def _serve(self, *, first: bool = False) -> None:
        if first:
            # nothing of ours can hold the port yet: a taken port is someone else's, say so at once
            check_bindable("OPC UA simulator", self.host, self.port)
        else:
            await self._wait_bindable()
        server = Server(user_manager=_Users(self.security.users) if self.security and self.security.users
                        else None)
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name("spc-gateway simulated CMM")
        if self.security is not None:
            await server.load_certificate(self.security.certificate)
            await server.load_private_key(self.security.private_key)
            server.set_security_policy(list(self.security.policies))
            if self.security.users:
                server.set_identity_tokens([ua.UserNameIdentityToken])
        else:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        ns = await server.register_namespace(NAMESPACE)
        folder = await server.nodes.objects.add_folder(_node_id(self.prefix, ns), self.prefix)
        for name, gauge in self.gauges.items():
            value = await folder.add_variable(_node_id(f"{self.prefix}.{name}", ns), name,
                                              ua.Variant(gauge.value, ua.VariantType.Double))
            counter = await folder.add_variable(_node_id(f"{self.prefix}.{name}.PartCounter", ns),
                                                f"{name}.PartCounter",
                                                ua.Variant(gauge.part_counter & 0xFFFFFFFF, ua.VariantType.UInt32))
            self._nodes[name] = (value, counter)
        await server.start()
        self._server = server
        self.running = True

    async def start(self) -> None:
        """Start serving and making parts every `interval` seconds; ListenError when the port is taken."""
        await self._serve(first=True)
        self._ticker = asyncio.create_task(self._tick(), name="sim_opcua")

    async def _halt(self) -> None:
        self.running = False
        if self._server is not None:
            server, self._server = self._server, None
            with contextlib.suppress(Exception):
                await server.stop()

    async def stop(self) -> None:
        """Stop making parts and close the server."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        await self._halt()

    async def restart(self, down_for: float = 0.0) -> None:
        """Close the server (all sessions die), wait, and serve again on the same port."""
        await self._halt()
        await asyncio.sleep(down_for)
        await self._serve()

    async def write(self, name: str, value: float, *, status: int = ua.StatusCodes.Good,
                    counter: int | None = None, at: _dt.datetime | None = None) -> None:
        """Publish a reading (and optionally the part counter) as the PLC would."""
        if self._server is None:
            return
        value_node, counter_node = self._nodes[name]
        # asyncua annotates its own subclasses (ua.UInt32, ua.DateTime) where it takes and sends plain
        # ints and datetimes, as its own defaults are: the values below are what it expects
        when: ua.DateTime = at or _dt.datetime.now(_dt.UTC)  # type: ignore[assignment]
        code = ua.StatusCode(status)  # type: ignore[arg-type]
        await value_node.write_value(ua.DataValue(ua.Variant(value, ua.VariantType.Double),
                                                  StatusCode=code, SourceTimestamp=when, ServerTimestamp=when))
        if counter is not None:
            await counter_node.write_value(ua.DataValue(ua.Variant(counter & 0xFFFFFFFF, ua.VariantType.UInt32),
                                                        SourceTimestamp=when, ServerTimestamp=when))

    async def make_part(self, name: str) -> float:
        """One part on one gauge: a new reading, then the counter moves."""
        gauge = self.gauges[name]
        dropped = gauge.dropped
        value = gauge.next()
        if not dropped:
            await self.write(name, value, counter=gauge.part_counter)
        return value

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if self.paused:
                continue
            dropped = any(g.dropped for g in self.gauges.values())
            if dropped and self.running:
                log.info("simulator: connection drop begins")
                await self._halt()
                self._drop_halted = True
            elif not dropped and self._drop_halted:
                log.info("simulator: connection drop ends")
                self._drop_halted = False
                await self._serve()
            for name in self.gauges:
                try:
                    await self.make_part(name)
                except Exception:  # a write racing a restart: the next tick writes again
                    log.debug("simulator write failed", exc_info=True)


async def start_opcua_simulator(port: int, gauges: dict[str, Gauge], interval: float, *,
                                host: str = "127.0.0.1", prefix: str = DEFAULT_PREFIX,
                                security: SimSecurity | None = None) -> OpcUaSimulator:
    """Serve `gauges` on opc.tcp://host:port; the handle has .stop(), .node_ids, .counter_node_ids."""
    sim = OpcUaSimulator(port, gauges, interval, host=host, prefix=prefix, security=security)
    await sim.start()
    return sim


def default_gauges(seed: int = 1) -> dict[str, Gauge]:
    """A shaft OD gauge that shifts after 60 parts, and a runout gauge that trends after 40."""
    od = Gauge(20.0, 0.004, seed=seed)
    od.schedule(Disturbance("shift", 60, 30, 2.0))
    runout = Gauge(0.02, 0.004, seed=seed + 1)
    runout.schedule(Disturbance("trend", 40, 12, 0.3))
    return {"Shaft.OD": od, "Shaft.Runout": runout}


async def _main(port: int, interval: float) -> None:
    sim = await start_opcua_simulator(port, default_gauges(), interval, host="127.0.0.1")
    print(f"serving {sim.endpoint}")
    for name in sim.gauges:
        print(f"  {sim.node_ids[name]}  (counter {sim.counter_node_ids[name]})")
    try:
        await asyncio.Event().wait()
    finally:
        await sim.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="simulated OPC UA gauges on loopback")
    parser.add_argument("--port", type=int, default=4840)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between parts")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_main(args.port, args.interval))
    except ListenError as exc:
        raise SystemExit(str(exc)) from None


def _node_id(identifier: str, namespace: int) -> ua.NodeId:
    # asyncua annotates NodeId with its ua.String / ua.Int16 subclasses but takes plain str and int
    return ua.NodeId(identifier, namespace)  # type: ignore[arg-type]
