"""The gateway's configuration: YAML -> frozen dataclasses.

Field names mirror the YAML keys. Durations are float seconds, sizes int bytes.
Every error a technician can cause carries file:line:column and the key path (see `load_config`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from gateway.spc.charts.base import ChartParameters
from gateway.spc.charts.registry import default_chart

Role = Literal["viewer", "operator"]
SamplingMode = Literal["per_message", "on_change", "every_poll", "part_counter"]


# ---------------------------------------------------------------- gateway, storage, server

@dataclass(frozen=True)
class GatewaySection:
    name: str
    language: Literal["ko", "en"] = "ko"
    timezone: str = "UTC"
    log_level: str = "INFO"


@dataclass(frozen=True)
class StorageSection:
    path: str
    retention: float | None = None  # seconds
    max_size: int | None = None  # bytes
    batch_max: int = 1000  # rows per write transaction at most
    flush_interval: float = 0.0  # seconds a batch may wait for more rows; 0: rows that queue up while
    # a commit is in flight form the next group anyway, so waiting only adds latency


@dataclass(frozen=True)
class AuthEntry:
    name: str
    role: Role
    token_file: str


@dataclass(frozen=True)
class ServerTLS:
    certificate: str
    private_key: str


@dataclass(frozen=True)
class Listen:
    host: str
    port: int


@dataclass(frozen=True)
class ServerSection:
    listen: Listen = Listen("127.0.0.1", 8000)
    allowed_origins: tuple[str, ...] = ()
    auth: tuple[AuthEntry, ...] = ()
    tls: ServerTLS | None = None
    max_connections: int = 500
    client_queue: int = 2000  # messages buffered per client before it is cut off
    max_frame: int = 65536  # bytes; larger client frames close with 1009
    commands_per_second: float = 20.0  # per connection, burst of twice that
    ping_interval: float = 20.0
    replay_limit: int = 100000  # events a `since` reconnect may replay at most


# ---------------------------------------------------------------- northbound

@dataclass(frozen=True)
class MQTTTLS:
    ca_file: str | None = None
    certificate: str | None = None
    private_key: str | None = None
    insecure: bool = False  # skip host name check (test rigs only)


@dataclass(frozen=True)
class NorthboundMQTT:
    host: str
    port: int = 1883
    client_id: str = "spc-gateway"
    username: str | None = None
    password_file: str | None = None
    tls: MQTTTLS | None = None
    topic_prefix: str = "spc"
    qos: Literal[0, 1, 2] = 1
    publish: tuple[str, ...] = ("alert", "capability", "violation", "measurement")
    buffer_limit: int = 1 << 30  # bytes of outbox on disk
    protocol: Literal["3.1.1", "5"] = "5"
    keepalive: float = 30.0
    max_inflight: int = 100
    reconnect_min: float = 1.0
    reconnect_max: float = 30.0


@dataclass(frozen=True)
class NorthboundSparkplug:
    """Sparkplug B on the broker of northbound.mqtt (contract plant-integration §1)."""

    group_id: str
    edge_node_id: str
    primary_host_id: str | None = None  # publish only while this host's STATE is online


@dataclass(frozen=True)
class NorthboundSection:
    mqtt: NorthboundMQTT
    sparkplug: NorthboundSparkplug | None = None


@dataclass(frozen=True)
class OpcUaServerSection:
    """The OPC UA server for SCADA and PLCs (contract plant-integration §2; gateway.config.opcua_server)."""

    listen: Listen = Listen("0.0.0.0", 4841)
    security: tuple[str, ...] = ("Basic256Sha256_SignAndEncrypt",)
    # None: opcua-server.der / opcua-server.pem beside the database; generated on first start when absent
    certificate: str | None = None
    private_key: str | None = None
    users_file: str | None = None


# ---------------------------------------------------------------- sources

class SourceSettings(Protocol):
    """One `sources:` entry as its plugin built it (gateway.config.kinds); the config reads only these."""

    @property
    def name(self) -> str: ...

    @property
    def type(self) -> str: ...


@dataclass(frozen=True)
class Backoff:
    initial: float = 1.0
    maximum: float = 30.0


# ---------------------------------------------------------------- products and characteristics

@dataclass(frozen=True)
class Sampling:
    mode: SamplingMode
    # for part_counter: where the counter is (same source as the value), as the source's plugin parsed it
    counter: object | None = None


@dataclass(frozen=True)
class Spec:
    lsl: float | None = None
    target: float | None = None
    usl: float | None = None


@dataclass(frozen=True)
class Limits:
    center: float | None = None
    sigma: float | None = None
    baseline_subgroups: int | None = None

    @property
    def fixed(self) -> bool:
        return self.center is not None and self.sigma is not None


@dataclass(frozen=True)
class Rules:
    convention: Literal["nelson", "western_electric"]
    tests: tuple[int, ...]  # numbers in the convention's own numbering

    @property
    def label(self) -> str:
        return self.convention if self.tests == ALL_TESTS[self.convention] else ",".join(map(str, self.tests))


ALL_TESTS = {"nelson": (1, 2, 3, 4, 5, 6, 7, 8), "western_electric": (1, 2, 3, 4)}


@dataclass(frozen=True)
class CapabilitySettings:
    every_subgroups: int = 25
    window_subgroups: int = 100
    min_cpk: float = 1.33
    distribution: str = "normal"  # a name in gateway.spc.distributions.CHOICES


@dataclass(frozen=True)
class AlertPriority:
    out_of_spec: int = 4
    out_of_control: int = 3
    run_rule: int = 2
    capability: int = 2
    source_stale: int = 3


@dataclass(frozen=True)
class Part:
    """One part number of a short-run characteristic (`parts:`): its nominal, spread and spec."""

    name: str
    target: float
    sigma: float | None = None  # the part's process sigma: Z needs it, DNOM does not
    lsl: float | None = None
    usl: float | None = None


@dataclass(frozen=True)
class PartFrom:
    """Where the part now running is read (`part_from:`).

    Either a channel of its own (`address`, parsed by `source`'s plugin: a PLC register, an OPC UA
    node, an MQTT topic), read apart from the value, or `field`, a field of the value's own message."""

    source: str
    address: object = None
    field: str | None = None
    codes: tuple[tuple[int, str], ...] = ()  # the PLC's numeric code -> part number


@dataclass(frozen=True)
class Characteristic:
    name: str
    source: str
    unit: str = ""
    # where the value is read, as the source's plugin parsed the block named after its type (`modbus:`...)
    address: object = None
    sampling: Sampling = Sampling("on_change")
    spec: Spec = Spec()
    chart: str = default_chart(1).name  # a name in gateway.spc.charts.registry.CHARTS
    subgroup_size: int = 1
    limits: Limits = Limits(baseline_subgroups=25)
    rules: Rules = Rules("nelson", ALL_TESTS["nelson"])
    capability: CapabilitySettings = CapabilitySettings()
    alert_priority: AlertPriority = AlertPriority()
    # a characteristic with no good value for this long is stale; None: 3 x the source's interval
    stale_after: float | None = None
    # EWMA lambda, L and CUSUM k, h, fir (the keys `lambda`, `L`, `k`, `h`, `fir` beside `chart:`)
    parameters: ChartParameters = ChartParameters()
    # short-run SPC (gateway.spc.shortrun): the part numbers, how they are plotted, where the part is read
    parts: tuple[Part, ...] = ()
    short_run: str | None = None  # dnom | z
    part_from: PartFrom | None = None


@dataclass(frozen=True)
class Product:
    id: int
    code: str
    name: str
    characteristics: tuple[Characteristic, ...]


# ---------------------------------------------------------------- outputs (andon, interlock)

@dataclass(frozen=True)
class OutputWhen:
    """Which alerts hold an output on (contract plant-integration §3)."""

    alert_types: tuple[str, ...]
    priority_at_least: int = 1
    products: tuple[str, ...] = ()  # product codes; empty: any product, and alerts without one
    state: Literal["unacknowledged", "open"] = "open"  # unacknowledged: OPEN only; open: OPEN and ACKNOWLEDGED


@dataclass(frozen=True)
class OutputWrite:
    """Where an output is written: a source's name and the target its plugin parsed (a coil, a node...)."""

    source: str
    target: object


@dataclass(frozen=True)
class OutputRule:
    """One `outputs:` entry: on while at least one alert matches `when`, written to `write`."""

    name: str
    when: OutputWhen
    write: OutputWrite


# ---------------------------------------------------------------- the whole file

@dataclass(frozen=True)
class Config:
    gateway: GatewaySection
    storage: StorageSection
    sources: tuple[SourceSettings, ...]
    products: tuple[Product, ...]
    server: ServerSection = ServerSection()
    northbound: NorthboundSection | None = None
    outputs: tuple[OutputRule, ...] = ()
    opcua_server: OpcUaServerSection | None = None
    path: str = field(default="", compare=False)  # the file it came from
    # key path -> (line, column) of every value read, so later checks (missing files) can point at it
    marks: Mapping[str, tuple[int, int]] = field(default_factory=dict, compare=False, repr=False)
    # (key path, absolute path) of every file the config names: secrets, certificates
    named_files: tuple[tuple[str, str], ...] = field(default=(), compare=False, repr=False)

    def source(self, name: str) -> SourceSettings:
        return next(s for s in self.sources if s.name == name)

    def product(self, product_id: int) -> Product:
        return next(p for p in self.products if p.id == product_id)


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a config file, printed as FILE:LINE:COLUMN: key.path: message (allowed)."""

    file: str
    line: int
    column: int
    path: str
    message: str
    allowed: str | None = None
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        tail = f" ({self.allowed})" if self.allowed else ""
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{self.file}:{self.line}:{self.column}: {prefix}{self.path}: {self.message}{tail}"


class ConfigError(Exception):
    """The file cannot be used: carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
