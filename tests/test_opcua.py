"""OPC UA source against a real asyncua server (the simulator) on a free loopback port."""

from __future__ import annotations

import asyncio
import datetime as _dt
import ipaddress
import time
from pathlib import Path

import pytest
from asyncua import ua
from asyncua.crypto import cert_gen
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from gateway.config import Backoff as BackoffConfig
from gateway.config import Characteristic, Product, Sampling
from gateway.core.model import Measurement
from gateway.sim.opcua_server import OpcUaSimulator, SimSecurity, start_opcua_simulator
from gateway.sim.simulator import Gauge
from gateway.sources.base import Binding
from gateway.sources.opcua import source as opcua
from gateway.sources.opcua.settings import OpcUaAddress, OpcUaSecurity
from gateway.sources.opcua.settings import OpcUaSettings as OpcUaSourceConfig
from tests.conftest import free_port

pytestmark = [pytest.mark.timeout(40), pytest.mark.anyio]


class Collector:
    def __init__(self) -> None:
        self.got: list[Measurement] = []

    async def __call__(self, m: Measurement) -> None:
        self.got.append(m)

    def of(self, name: str) -> list[float]:
        return [m.value for m in self.got if m.key.characteristic == name]

    async def wait(self, name: str, n: int, timeout: float = 8.0) -> list[float]:
        deadline = time.monotonic() + timeout
        while len(self.of(name)) < n:
            assert time.monotonic() < deadline, f"{name}: only {self.of(name)} after {timeout}s"
            await asyncio.sleep(0.02)
        return self.of(name)


def _source(sim: OpcUaSimulator, sink: Collector, mode: str, *, extra: tuple[Characteristic, ...] = (),
            **cfg: object) -> opcua.OpcUaSource:
    chars = (
        Characteristic("od", "cmm", address=OpcUaAddress(sim.node_ids["OD"]), sampling=Sampling("on_change")),
        Characteristic("runout", "cmm", address=OpcUaAddress(sim.node_ids["RUNOUT"]),
                       sampling=Sampling("part_counter", OpcUaAddress(sim.counter_node_ids["RUNOUT"]))),
        Characteristic("ghost", "cmm", address=OpcUaAddress("ns=2;s=Line3.CMM.NoSuchGauge")),
    ) + extra
    product = Product(2, "SHAFT-20", "shaft", chars)
    config = OpcUaSourceConfig("cmm", sim.endpoint, mode=mode, sampling_interval=0.05, poll_interval=0.05,
                               backoff=BackoffConfig(0.2, 1.0), **cfg)  # type: ignore[arg-type]
    return opcua.OpcUaSource(config, [Binding(product, c) for c in chars], sink)


async def _simulator(**kwargs: object) -> OpcUaSimulator:
    gauges = {"OD": Gauge(20.0, 0.01, seed=1), "RUNOUT": Gauge(0.02, 0.005, seed=2)}
    return await start_opcua_simulator(free_port(), gauges, kwargs.pop("interval", 3600.0), **kwargs)  # type: ignore[arg-type]


def _at(seconds: float) -> _dt.datetime:
    return _dt.datetime(2025, 3, 1, 8, 0, 0, tzinfo=_dt.UTC) + _dt.timedelta(seconds=seconds)


async def _until(predicate, timeout: float = 8.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("mode", ["subscribe", "poll"])
async def test_values_bad_status_unknown_node_and_part_counter(mode: str) -> None:
    sim = await _simulator()
    sink = Collector()
    source = _source(sim, sink, mode, extra=(
        Characteristic("od_every", "cmm", address=OpcUaAddress(sim.node_ids["OD"]), sampling=Sampling("every_poll")),
    ) if mode == "poll" else ())
    await source.start()
    try:
        await sim.write("OD", 20.001, at=_at(1))
        assert await sink.wait("od", 1) == [20.001]
        # Equal readings with new source timestamps are two parts (StatusValueTimestamp trigger).
        await sim.write("OD", 20.002, at=_at(2))
        await sink.wait("od", 2)
        await sim.write("OD", 20.002, at=_at(3))
        await sink.wait("od", 3)
        # A Bad status is counted and never reaches SPC; the next good reading flows.
        await sim.write("OD", 99.0, status=ua.StatusCodes.BadSensorFailure, at=_at(4))
        await _until(lambda: source.health.bad_readings >= 1)
        await sim.write("OD", 20.003, at=_at(5))
        assert await sink.wait("od", 4) == [20.001, 20.002, 20.002, 20.003]
        # part_counter: the first look (counter 0 at subscription) only learns; two consecutive parts with
        # the same value both count.
        await sim.write("RUNOUT", 0.021, counter=1, at=_at(6))
        await sink.wait("runout", 1)
        await sim.write("RUNOUT", 0.021, counter=2, at=_at(7))
        await sink.wait("runout", 2)
        await sim.write("RUNOUT", 0.022, counter=3, at=_at(8))
        if mode == "poll":  # a poll sees only the latest counter; a subscription sees every move
            await sink.wait("runout", 3)
        await sim.write("RUNOUT", 0.025, counter=6, at=_at(9))  # two parts missed
        assert await sink.wait("runout", 4) == [0.021, 0.021, 0.022, 0.025]
        assert source.health.details["missed_parts"] == 2
        # The unknown node failed alone.
        assert source.health.details["failed_nodes"] == {"ns=2;s=Line3.CMM.NoSuchGauge": "BadNodeIdUnknown"}
        assert source.health.state == "connected" and source.health.reconnects == 0
        od = [m for m in sink.got if m.key.characteristic == "od"]
        assert od[-1].source_time == _at(5).timestamp()
        if mode == "poll":
            assert len(sink.of("od_every")) > len(sink.of("od"))  # every poll is a reading
    finally:
        await source.stop()
        await sim.stop()


async def test_server_restart_mid_stream_resumes() -> None:
    sim = await _simulator(interval=0.05)
    sink = Collector()
    source = _source(sim, sink, "subscribe")
    await source.start()
    try:
        await sink.wait("od", 5)
        await sim.restart(down_for=0.5)
        before, restarted = len(sink.of("od")), time.monotonic()
        await sink.wait("od", before + 3, timeout=10.0)
        assert time.monotonic() - restarted < 10.0
        assert source.health.reconnects >= 1 and source.health.state == "connected"
        await sink.wait("runout", 3)  # the part counter is resubscribed too
    finally:
        await source.stop()
        await sim.stop()


async def test_dead_subscription_is_detected_and_rebuilt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(opcua, "KEEPALIVE_PERIOD", 0.2)
    monkeypatch.setattr(opcua, "STALE_MIN", 1.0)
    sim = await _simulator(interval=0.05)
    sink = Collector()
    source = _source(sim, sink, "subscribe")
    await source.start()
    try:
        await sink.wait("od", 3)
        # The server forgets the subscription while the connection stays up: no data, no keep-alive.
        service = sim._server.iserver.subscription_service  # type: ignore[union-attr]
        await service.delete_subscriptions(list(service.subscriptions))
        before = len(sink.of("od"))
        await sink.wait("od", before + 3, timeout=10.0)
        assert source.health.reconnects >= 1
        assert "subscription" in (source.health.last_error or "")
    finally:
        await source.stop()
        await sim.stop()


def _write_cert(folder: Path, name: str, uri: str, server: bool) -> tuple[str, str]:
    key = cert_gen.generate_private_key()
    names = [x509.UniformResourceIdentifier(uri), x509.DNSName("localhost"),
             x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    usage = [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
    cert = cert_gen.generate_self_signed_app_certificate(key, name, {}, names, usage, days=30)
    cert_path, key_path = folder / f"{name}.der", folder / f"{name}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    key_path.write_bytes(cert_gen.dump_private_key_as_pem(key))
    return str(cert_path), str(key_path)


@pytest.mark.parametrize("policy,mode", [("Basic256Sha256", "SignAndEncrypt"), ("Aes128Sha256RsaOaep", "Sign")])
async def test_security_policy_with_certificates_and_password(tmp_path: Path, policy: str, mode: str) -> None:
    server_cert, server_key = _write_cert(tmp_path, "server", "urn:spc-gateway:test:server", True)
    client_cert, client_key = _write_cert(tmp_path, "client", "urn:spc-gateway:test:client", False)
    (tmp_path / "password").write_text("s3cret\n")
    (tmp_path / "wrong").write_text("nope\n")
    policy_type = getattr(ua.SecurityPolicyType, f"{policy}_{mode}")
    sim = await _simulator(security=SimSecurity(server_cert, server_key, (policy_type,), {"spcgw": "s3cret"}))
    security = OpcUaSecurity(policy=policy, mode=mode, certificate=client_cert, private_key=client_key)  # type: ignore[arg-type]
    sink = Collector()
    source = _source(sim, sink, "subscribe", security=security, username="spcgw",
                     password_file=str(tmp_path / "password"))
    refused = _source(sim, Collector(), "subscribe", security=security, username="spcgw",
                      password_file=str(tmp_path / "wrong"))
    await source.start()
    await refused.start()
    try:
        await sim.write("OD", 20.004, at=_at(1))
        assert (await sink.wait("od", 1))[-1] == 20.004
        assert source.health.state == "connected"
        await _until(lambda: refused.health.reconnects >= 1)
        assert refused.health.state != "connected" and refused.health.last_error
    finally:
        await source.stop()
        await refused.stop()
        await sim.stop()
