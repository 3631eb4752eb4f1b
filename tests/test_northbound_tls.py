"""Northbound over TLS with a client certificate and a password, against a mosquitto set up by the test."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import Mosquitto
from test_northbound_harness import CHARACTERISTIC, PRODUCT, Subscriber, check_delivery, measurement_body

from gateway.config import MQTTTLS, NorthboundMQTT
from gateway.outputs.mqtt import Northbound, topic_for
from gateway.outputs.mqtt_link import NorthboundError
from gateway.store import Store

MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def issue(cwd: Path, name: str, ca: str, subject: str, san: str | None = None) -> None:
    """A P-256 key and a certificate signed by `ca` (fast to make, unlike RSA)."""
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=cwd)
    ext = []
    if san:
        (cwd / f"{name}.ext").write_text(f"subjectAltName={san}\n")
        ext = ["-extfile", f"{name}.ext"]
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", *ext, cwd=cwd)


def make_ca(cwd: Path, name: str) -> None:
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={name}", cwd=cwd)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    make_ca(d, "plant-ca")
    make_ca(d, "other-ca")
    issue(d, "broker", "plant-ca", "/CN=localhost", "DNS:localhost,IP:127.0.0.1")
    issue(d, "gateway", "plant-ca", "/CN=spc-gw-line3")
    subprocess.run([MOSQUITTO_PASSWD, "-b", "-c", str(d / "passwd"), "line3", "s3cret"], check=True)
    (d / "mqtt.password").write_text("s3cret\n")
    (d / "wrong.password").write_text("guess\n")
    return d


@pytest.fixture
def tls_broker(tmp_path: Path, pki: Path):
    broker = Mosquitto(tmp_path)
    broker.conf.write_text(
        f"listener {broker.port} 127.0.0.1\nallow_anonymous false\npassword_file {pki}/passwd\n"
        f"cafile {pki}/plant-ca.pem\ncertfile {pki}/broker.pem\nkeyfile {pki}/broker.key\n"
        f"require_certificate true\npersistence false\nuser root\n")
    broker.start()
    yield broker
    broker.stop()


def tls_config(pki: Path, port: int, *, ca: str = "plant-ca", password: str = "mqtt.password",
               protocol: str = "5") -> NorthboundMQTT:
    return NorthboundMQTT(
        host="127.0.0.1", port=port, client_id="spc-gw-line3", username="line3",
        password_file=str(pki / password), protocol=protocol,  # type: ignore[arg-type]
        tls=MQTTTLS(ca_file=str(pki / f"{ca}.pem"), certificate=str(pki / "gateway.pem"),
                    private_key=str(pki / "gateway.key")),
        keepalive=5, reconnect_min=0.1, reconnect_max=0.3)


async def run_gateway(tmp_path: Path, cfg: NorthboundMQTT, count: int, until, timeout: float) -> dict:
    store = Store(str(tmp_path / "gw.db"))
    await store.open()
    northbound = Northbound(cfg, store, gateway_name="line3", version="t", product_codes=[PRODUCT],
                            on_alert=lambda kind, **values: None)
    await northbound.start()
    topic = topic_for(cfg, "measurement", PRODUCT, CHARACTERISTIC)
    with store.batch() as batch:
        for _ in range(count):
            batch.event("measurement", 1, measurement_body(store.last_seq + 1), outbox_topic=topic)
    await batch.committed
    northbound.wake()
    deadline = time.monotonic() + timeout
    while not until(northbound.stats()) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await northbound.stop()
    stats = northbound.stats() | {"outbox": await store.outbox_stats()}
    await store.close()
    return stats


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_tls_client_certificate_and_password(tmp_path: Path, pki: Path, tls_broker, protocol: str):
    subscriber = Subscriber(tls_broker.port, username="line3", password="s3cret", tls={
        "ca_certs": str(pki / "plant-ca.pem"), "certfile": str(pki / "gateway.pem"),
        "keyfile": str(pki / "gateway.key")}).start()
    subscriber.wait_for(lambda s: s.client.is_connected(), 5, "subscriber connected over TLS")
    stats = asyncio.run(run_gateway(tmp_path, tls_config(pki, tls_broker.port, protocol=protocol), 300,
                                    lambda st: st["published"] >= 300, 10))
    subscriber.wait_for(lambda s: len(s.seqs()) >= 300, 5, "300 events")
    subscriber.stop()
    check_delivery(subscriber.events(), range(1, 301))
    assert stats["outbox"]["depth"] == 0 and stats["last_error"] is None
    assert subscriber.statuses()[0].body["status"] == "online"


def test_wrong_password_keeps_everything(tmp_path: Path, pki: Path, tls_broker):
    stats = asyncio.run(run_gateway(tmp_path, tls_config(pki, tls_broker.port, password="wrong.password"), 20,
                                    lambda st: st["last_error"] and st["reconnects"] >= 2, 5))
    assert "refused" in stats["last_error"] and not stats["connected"]
    assert stats["published"] == 0 and stats["outbox"]["depth"] == 20


def test_unknown_broker_certificate_is_refused(tmp_path: Path, pki: Path, tls_broker):
    stats = asyncio.run(run_gateway(tmp_path, tls_config(pki, tls_broker.port, ca="other-ca"), 5,
                                    lambda st: st["last_error"], 5))
    assert "CERTIFICATE_VERIFY_FAILED" in stats["last_error"]
    assert stats["published"] == 0 and stats["outbox"]["depth"] == 5


def test_unreadable_files_fail_at_start_with_the_setting_named(tmp_path: Path, pki: Path):
    async def start(cfg: NorthboundMQTT) -> None:
        await Northbound(cfg, None, gateway_name="g", version="t", product_codes=[], on_alert=print).start()

    cfg = tls_config(pki, 1, password="missing.password")
    with pytest.raises(NorthboundError, match="password_file: cannot read .*missing.password"):
        asyncio.run(start(cfg))
    cfg = NorthboundMQTT(host="127.0.0.1", tls=MQTTTLS(ca_file=str(tmp_path / "no-ca.pem")))
    with pytest.raises(NorthboundError, match="northbound.mqtt.tls"):
        asyncio.run(start(cfg))
