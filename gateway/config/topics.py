"""The MQTT topic of an event, from northbound.mqtt's settings (topic_prefix, publish).

It lives with the configuration, below both its users: the northbound output publishes on these
topics, and the alert service and the pipeline name the topic of each event they store in the outbox.
"""

from __future__ import annotations

from gateway.config.model import NorthboundMQTT
from gateway.core.model import EVENT_TYPES

TOPIC_TYPES = EVENT_TYPES
PER_CHARACTERISTIC = ("measurement", "subgroup")  # topics with a characteristic level
_UNSAFE = str.maketrans({"/": "_", "+": "_", "#": "_", "\0": "_"})


def topic_for(config: NorthboundMQTT, event_type: str, product_code: str,
              characteristic: str | None = None) -> str | None:
    """The MQTT topic of an event, or None when `northbound.mqtt.publish` does not send this type."""
    if event_type not in config.publish or event_type not in TOPIC_TYPES:
        return None
    # '+', '#' are illegal in a published topic and '/' would add a level: a name cannot change the tree
    topic = f"{config.topic_prefix}/{event_type}/{product_code.translate(_UNSAFE)}"
    if event_type in PER_CHARACTERISTIC:
        topic += f"/{(characteristic or '').translate(_UNSAFE)}"
    return topic
