"""The source registry: a protocol is named only in its own package, and found through SOURCES.

The first test reads every module of gateway/ and fails on a protocol name outside the places that
may hold one. The allow-list is short on purpose; each entry says why. The last ones register a
made-up protocol from the test and use it through the config, staleness and the probe command.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.config import Backoff, ConfigError, Sampling, SourceKind
from gateway.config.connections import BACKOFF
from gateway.config.loader import Convert
from gateway.config.values import duration, integer, section
from gateway.sources.plugin import SourcePlugin
from gateway.sources.registry import SOURCES, UnknownSourceType, load_config
from gateway.tools import probe

pytestmark = pytest.mark.anyio

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


# ---------------------------------------------------------------- a protocol registered from a test

@dataclass(frozen=True)
class CounterBoxSettings:
    """A made-up protocol: a box with eight channels, read every `interval`."""

    name: str
    type: str = "counterbox"
    interval: float = 2.0
    backoff: Backoff = Backoff()


@dataclass(frozen=True)
class Channel:
    channel: int


def _channel(context: object) -> Convert:
    return section(Channel, {"channel": integer(0, 7)}, required=("channel",))


COUNTERBOX = SourcePlugin(
    kind=SourceKind(type="counterbox", label="CounterBox", settings=CounterBoxSettings,
                    spec={"interval": duration(), "backoff": BACKOFF}, required=("name",), check=None,
                    address=_channel, sampling_modes=("on_change", "every_poll"), default_sampling="every_poll",
                    polled=True),
    build=lambda settings, bindings, sink: None,  # type: ignore[arg-type,return-value]
    probe=lambda config, settings, address, out, **_: _probe(settings, out),
    reading_interval=lambda settings: settings.interval,
    probe_address="CounterBox a channel", probe_all="CounterBox every channel",
)


async def _probe(settings: CounterBoxSettings, out) -> int:
    out.write(f"{settings.name}: counted\n")
    return 0


CONFIG = """\
gateway: {name: LINE-1}
storage: {path: data/spc.sqlite3}
sources:
  - {name: box, type: counterbox, interval: 4s}
products:
  - id: 1
    code: P1
    name: Part
    characteristics:
      - {name: d, source: box, counterbox: {channel: 3}, spec: {lsl: 1, usl: 2}}
"""


@pytest.fixture
def counterbox():
    SOURCES.register(COUNTERBOX)
    try:
        yield COUNTERBOX
    finally:
        SOURCES.unregister("counterbox")


async def test_a_protocol_is_one_plugin_and_one_registration(tmp_path: Path, counterbox) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(CONFIG)
    config, _warnings = load_config(str(path))
    box = config.source("box")
    characteristic = config.products[0].characteristics[0]
    assert box == CounterBoxSettings("box", interval=4.0)
    assert characteristic.address == Channel(3) and characteristic.sampling == Sampling("every_poll")
    assert counterbox.stale_after(box, characteristic) == 12.0  # three intervals
    out = io.StringIO()
    assert await probe.probe_source(config, "box", None, out) == 0 and out.getvalue() == "box: counted\n"
    # its name joins the lists the messages give
    path.write_text(CONFIG.replace("type: counterbox", "type: counterbx"))
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    assert "'counterbx' is not a source type; did you mean 'counterbox'? (modbus, opcua, mqtt or counterbox)" \
        in str(caught.value)


def test_without_its_registration_the_protocol_is_unknown(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(CONFIG)
    with pytest.raises(ConfigError, match="'counterbox' is not a source type"):
        load_config(str(path))
