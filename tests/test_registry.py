"""The source registry: a protocol is named only in its own package, and found through SOURCES.

The first test reads every module of gateway/ and fails on a protocol name outside the places that
may hold one. The allow-list is short on purpose; each entry says why.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.sources.registry import SOURCES, UnknownSourceType

GATEWAY = Path(__file__).resolve().parent.parent / "gateway"

# A protocol named in code: its type as a string, a characteristic's old per-protocol field, or a
# class of one protocol's source, settings or address.
PROTOCOL_NAME = re.compile(r'"(modbus|opcua|mqtt)"|\.modbus\b|\.opcua\b'
                           r'|\b(Modbus|OpcUa|Mqtt)(Source|Settings|Address)\b')

ALLOWED = {
    # the protocols' own packages
    **{f"sources/{p}/": "the protocol's own package" for p in ("modbus", "opcua", "mqtt")},
    # the registry itself: one line per protocol
    "sources/registry.py": "the registry: its one line per protocol",
    # the simulators of a PLC and a CMM serve their protocol, and the demo configures them
    "sim/": "simulators of a Modbus PLC and an OPC UA CMM",
    # the northbound is an output that speaks MQTT, not a source: its module and its config section
    "outputs/mqtt.py": "the MQTT northbound output (an output, not a source)",
    "config/sections.py": "the northbound's config section (`northbound: {mqtt: ...}`)",
}

# What the allowed output and config files may name: the northbound only (`northbound.mqtt`), never a
# source. A hit there that is not about the northbound is still a failure.
NORTHBOUND_ONLY = ("outputs/mqtt.py", "config/sections.py")


def protocol_names() -> list[tuple[str, int, str]]:
    """(path under gateway/, line number, line) of every protocol name outside its own package."""
    found = []
    for path in sorted(GATEWAY.rglob("*.py")):
        relative = path.relative_to(GATEWAY).as_posix()
        allowed = next((prefix for prefix in ALLOWED if relative.startswith(prefix)), None)
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not PROTOCOL_NAME.search(line):
                continue
            if allowed is None:
                found.append((relative, number, line.strip()))
            elif allowed in NORTHBOUND_ONLY and not re.search(r"northbound|CONSUMER|Northbound", line):
                found.append((relative, number, line.strip()))
    return found


def test_no_protocol_is_named_outside_its_package():
    found = protocol_names()
    assert not found, "protocol names outside gateway/sources/<protocol>/ (ask gateway.sources.registry):\n" + \
        "\n".join(f"  gateway/{path}:{number}: {line}" for path, number, line in found)


def test_the_check_sees_a_protocol_name_where_it_does_not_belong():
    # the reader itself: these lines would fail it
    for line in ('if source.type == "opcua":', "address = characteristic.modbus", "ModbusSource(config)"):
        assert PROTOCOL_NAME.search(line), line
    assert not PROTOCOL_NAME.search("plugin = SOURCES[source.type]")


def test_the_registry_lists_the_protocols_in_their_order():
    assert SOURCES.types() == ["modbus", "opcua", "mqtt"]
    assert [kind.type for kind in SOURCES.kinds()] == SOURCES.types()


def test_an_unknown_type_is_a_clear_error_naming_the_known_ones():
    with pytest.raises(UnknownSourceType) as caught:
        SOURCES["bacnet"]
    assert isinstance(caught.value, KeyError)
    assert str(caught.value) == "unknown source type 'bacnet' (known: modbus, opcua, mqtt)"


def test_a_type_is_registered_once():
    with pytest.raises(ValueError, match="registered twice"):
        SOURCES.register(SOURCES["mqtt"])
