"""The one place that leans on paho-mqtt's internals: a faster client for the MQTT-in worker.

Why it exists: draining a broker backlog, paho's public path costs the worker 3.6 times the CPU per
message of this one (it builds a Properties object and an MQTTMessage per MQTT 5 PUBLISH, reads
every packet with three recv() calls, and writes every PUBACK with its own send()); see
docs/internals.md ("MQTT in") for the figures. Everything else in the gateway uses paho's public API.

Why it is safe: it is used only with the exact paho version it was tested with (`TESTED_VERSION`, the
pin in pyproject.toml) and only when every internal it touches is there; otherwise `fast_client_class`
returns None and the worker uses the public path (`manual_ack=True`, `Client.ack`). The worker also
takes the public path when SPC_GATEWAY_MQTT_PAHO=public is set (the benchmark compares both).
tests/test_mqtt_paho_private.py fails loudly when paho changes any of these internals.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt import __version__ as PAHO_VERSION
from paho.mqtt.enums import MQTTErrorCode

TESTED_VERSION = "2.2.0"  # keep equal to the paho-mqtt pin in pyproject.toml
FORCE_PUBLIC = "SPC_GATEWAY_MQTT_PAHO"  # environment: "public" = never use this module's client
RECV_CHUNK = 64 * 1024  # bytes read from the socket at once
_PUBACK = struct.Struct("!BBH")  # PUBACK, remaining length 2, packet id (MQTT 3.1.1 and 5: success)

# The private methods overridden or called, and the private attributes read (all of paho.Client).
METHODS = ("_sock_recv", "_sock_close", "_handle_publish", "_packet_queue")
ATTRIBUTES = ("_in_packet", "_protocol", "_sock", "_manual_ack")


def internals_missing() -> list[str]:
    """The internals this module needs that paho's Client lacks (an empty list: all there)."""
    probe = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    missing = [name for name in METHODS if not callable(getattr(paho.Client, name, None))]
    missing += [name for name in ATTRIBUTES if not hasattr(probe, name)]
    if not isinstance(getattr(probe, "_in_packet", None), dict):
        missing.append("_in_packet as a dict")
    return missing


def fast_client_class() -> type[paho.Client] | None:
    """The fast client, or None when the public path must be used (and why is in `why_public`)."""
    return FastClient if why_public() is None else None


def why_public() -> str | None:
    """Why the worker uses paho's public path, or None when the fast client may be used."""
    if os.environ.get(FORCE_PUBLIC, "").strip().lower() == "public":
        return f"{FORCE_PUBLIC}=public"
    if PAHO_VERSION != TESTED_VERSION:
        return f"paho-mqtt {PAHO_VERSION} is not the tested {TESTED_VERSION}"
    try:
        missing = internals_missing()
    except Exception as exc:  # a paho that cannot even build the probe client: the public path it is
        return f"paho-mqtt internals could not be checked ({type(exc).__name__}: {exc})"
    if missing:
        return "paho-mqtt lacks " + ", ".join(missing)
    return None


class FastClient(paho.Client):
    """paho's client, reading the socket in chunks, cutting QoS 0/1 PUBLISH packets itself and
    acknowledging in bulk. Only with `manual_ack=True` and `on_publish_packet` set.

    paho reads every packet with three or more recv() calls (type byte, length bytes, rest); here one
    recv() fetches whatever has arrived and `loop_read` handles every packet in it. For QoS 0/1 the
    topic, packet id and payload are cut out directly: paho builds a Properties object and an
    MQTTMessage per message, which is most of its cost, and we use neither (we announce no topic alias
    maximum, so every PUBLISH carries its topic). `ack_many` queues the PUBACKs of a whole commit as
    one write. QoS 2 and anything unexpected go the paho way (`on_message`).
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._rbuf = b""
        self._rpos = 0
        # Called as (topic bytes, payload, mid, qos) for QoS 0/1 PUBLISH packets instead of on_message.
        self.on_publish_packet: Callable[[bytes, bytes, int, int], None] | None = None

    def _handle_publish(self) -> MQTTErrorCode:
        handler = self.on_publish_packet
        header, packet = self._in_packet["command"], self._in_packet["packet"]
        qos = (header & 0x06) >> 1
        if handler is None or qos == 2 or len(packet) < 2 or not self._manual_ack:
            return super()._handle_publish()
        pos = 2 + ((packet[0] << 8) | packet[1])
        topic = bytes(packet[2:pos])
        mid = 0
        if qos:
            mid = (packet[pos] << 8) | packet[pos + 1]
            pos += 2
        if self._protocol == paho.MQTTv5:
            length, shift = 0, 0
            while True:  # the properties' length, a variable byte integer
                byte = packet[pos]
                pos += 1
                length |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80 or shift > 21:
                    break
            pos += length
        if not topic or pos > len(packet):
            return super()._handle_publish()
        handler(topic, bytes(packet[pos:]), mid, qos)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _sock_recv(self, bufsize: int) -> bytes:
        pos, buf = self._rpos, self._rbuf
        if pos >= len(buf):
            buf = super()._sock_recv(RECV_CHUNK)  # BlockingIOError when nothing arrived; b"" at EOF
            if not buf:
                return buf
            self._rbuf, pos = buf, 0
        end = pos + bufsize
        self._rpos = end
        return buf[pos:end]

    def _sock_close(self) -> None:
        self._rbuf, self._rpos = b"", 0  # bytes of a lost connection mean nothing on the next one
        super()._sock_close()

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """Handle every packet already read from the socket, not just one."""
        rc = super().loop_read(max_packets)
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and self._rpos < len(self._rbuf) and self._sock is not None:
            rc = super().loop_read(max_packets)
        return rc

    def ack_many(self, mids: list[int]) -> None:
        """PUBACK for each QoS-1 message id, queued as one write (manual_ack)."""
        packet = b"".join([_PUBACK.pack(paho.PUBACK, 2, mid) for mid in mids])
        self._packet_queue(paho.PUBACK, packet, 0, 0)
