"""What every link to another machine is configured with: host, port, credentials, TLS, backoff.

Shared by the northbound section and the source plugins (gateway.sources.<protocol>.settings), so a
host or a password file is checked by one rule wherever it is written.
"""

from __future__ import annotations

from typing import Any

from gateway.config.loader import Reader
from gateway.config.model import MQTTTLS, Backoff
from gateway.config.values import (
    NAME_MAX,
    boolean,
    both_or_neither,
    choice,
    duration,
    file_path,
    integer,
    section,
    text_of,
)

PORT = integer(1, 65535)
HOST = text_of(253)  # the longest DNS name
CLIENT_ID = text_of(128)  # MQTT 3.1.1 brokers need only accept 23; mosquitto and EMQX take far more
USERNAME = text_of(256)
SOURCE_NAME = text_of(NAME_MAX)  # not `name`: spaces have always been allowed here


def check_tls(r: Reader, values: dict[str, Any], path: str) -> bool:
    return both_or_neither(r, values, path, "certificate", "private_key")


TLS = section(MQTTTLS, {"ca_file": file_path, "certificate": file_path, "private_key": file_path,
                         "insecure": boolean}, check=check_tls)
QOS = integer(0, 2)
PROTOCOL = choice("3.1.1", "5")


def check_credentials(r: Reader, values: dict[str, Any], path: str) -> bool:
    if "password_file" in values and "username" not in values:
        r.at(f"{path}.password_file", "password_file is given without username", "both, or neither")
        return False
    return True


def check_backoff(r: Reader, values: dict[str, Any], path: str) -> bool:
    if values.get("initial", 1.0) > values.get("maximum", 30.0):
        r.at(f"{path}.initial", "initial is longer than maximum", "initial <= maximum")
        return False
    return True


BACKOFF = section(Backoff, {"initial": duration(), "maximum": duration()}, check=check_backoff)
