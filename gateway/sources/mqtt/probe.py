"""`spc-gateway probe` for an MQTT source: listen to the configured topics and show what the gateway
would take from each message.

Each message is decoded with the characteristic's own `value` and `timestamp` paths, as the daemon
does, so a wrong path shows here and not as skipped messages in the journal. Nothing arriving within
the wait is a failure (exit 1) with a message that says so: a gauge that never publishes, or a topic
with a typo, must not look like success. A throw-away client id with a clean session: the running
gateway's session is never touched.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import uuid
from typing import Any, TextIO

import paho.mqtt.client as paho

from gateway.config import Config
from gateway.sources.mqtt.settings import MqttAddress, MqttSettings
from gateway.sources.mqtt.worker import MalformedPayload, new_client, parse_payload
from gateway.sources.plugin import characteristics_of

MAX_MESSAGES = 20  # messages shown at most
WAIT = 5.0  # seconds to listen by default


async def probe(config: Config, source_cfg: MqttSettings, address: str | None, out: TextIO, *,
                wait: float = WAIT) -> int:
    """Listen for up to `wait` seconds; 0 when a value came through, 1 when nothing usable arrived."""
    characteristics = {c.name: c.address for c in characteristics_of(config, source_cfg.name)
                       if isinstance(c.address, MqttAddress)}
    if address is None:
        watched = characteristics
        topics = sorted({a.topic for a in watched.values()}) or ["#"]
    elif address in characteristics:
        watched = {address: characteristics[address]}
        topics = [characteristics[address].topic]
    else:  # a topic (filter): decode with every characteristic it feeds, raw otherwise
        watched = {name: a for name, a in characteristics.items()
                   if paho.topic_matches_sub(address, a.topic) or paho.topic_matches_sub(a.topic, address)}
        topics = [address]
    received: list[paho.MQTTMessage] = []
    state: dict[str, Any] = {}
    done = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_connect(client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        state["reason"] = reason
        if reason.is_failure:
            loop.call_soon_threadsafe(done.set)
        else:
            client.subscribe([(topic, 1) for topic in topics])

    def on_message(client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        if len(received) < MAX_MESSAGES:
            received.append(message)
        # enough seen: every watched topic has spoken, or the screen is full
        heard = {name for name, a in watched.items()
                 if any(paho.topic_matches_sub(a.topic, m.topic) for m in received)}
        if len(received) >= MAX_MESSAGES or (watched and heard == set(watched)):
            loop.call_soon_threadsafe(done.set)

    client_id = f"spc-gateway-probe-{uuid.uuid4().hex[:8]}"
    where = f"{source_cfg.host}:{source_cfg.port}"
    try:
        client = new_client(source_cfg, client_id, persistent=False, manual_ack=False)
        client.on_connect, client.on_message = on_connect, on_message
        await asyncio.to_thread(client.connect, source_cfg.host, source_cfg.port, int(source_cfg.keepalive))
    except Exception as exc:
        out.write(f"{source_cfg.name}: {where}: connection failed / 연결 실패: {exc}\n")
        return 1
    client.loop_start()
    try:
        await asyncio.wait_for(done.wait(), wait)
    except TimeoutError:
        pass
    finally:
        client.disconnect()
        client.loop_stop()
    reason = state.get("reason")
    if reason is None or reason.is_failure:
        out.write(f"{source_cfg.name}: {where}: broker refused or did not answer / 브로커 거부: {reason}\n")
        return 1
    if not received:
        out.write(f"{source_cfg.name}: connected to {where}, but nothing arrived on {', '.join(topics)} within "
                  f"{wait:g} s / {wait:g}초 동안 받은 메시지가 없습니다\n")
        return 1
    usable = 0
    for message in received:
        out.write(f"{message.topic}: {message.payload[:200].decode('utf-8', 'replace')}\n")
        feeds = [(name, a) for name, a in watched.items() if paho.topic_matches_sub(a.topic, message.topic)]
        if not feeds:
            usable += 1  # no characteristic reads this topic: the raw payload is all there is to show
            continue
        for name, mqtt_address in feeds:
            line, ok = _decoded(name, mqtt_address, message.payload)
            out.write(line + "\n")
            usable += ok
    if not usable:
        out.write(f"{source_cfg.name}: messages arrived, but no value could be taken from them / "
                  "값을 읽을 수 없습니다\n")
    return 0 if usable else 1


def _decoded(name: str, address: MqttAddress, payload: bytes) -> tuple[str, bool]:
    """'  diameter: value 10.02, timestamp ...' as the daemon reads it, or why it would skip it."""
    paths = (f"count {address.count!r}, n {address.n!r}" if address.count else
             f"value {address.value!r}" if address.value else "plain number")
    try:
        value, at, raw = parse_payload(payload, address)
    except MalformedPayload as exc:
        return f"  {name} ({paths}): skipped / 무시: {exc}", False
    if at is None:
        stamp = "no timestamp path: the arrival time is used"
    else:
        try:
            iso = _dt.datetime.fromtimestamp(at, _dt.UTC).isoformat()
        except (OverflowError, ValueError, OSError):  # the daemon refuses such a time before SPC sees it
            return (f"  {name} ({paths}): skipped / 무시: time {raw!r} ({at!r} s after 1970) is not a date the "
                    "gateway can store (years 1 to 9999)"), False
        stamp = f"timestamp {iso} (from {address.timestamp!r} = {raw!r})"
    if isinstance(value, tuple):  # a count address
        count, n = value
        return f"  {name}: count {count}, n {n} ({paths}), {stamp}", True
    return f"  {name}: value {value:.9g} ({paths}), {stamp}", True
