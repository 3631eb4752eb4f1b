"""The gateway's configuration: YAML -> frozen dataclasses (model), read and checked by the loader.

The public names are re-exported here, so `from gateway.config import Config, ConfigError` works for
every caller outside the package; inside it, modules import from their neighbours directly. A file is
read with the source protocols it may use: `gateway.config.load.load_config(path, kinds)`, which every
caller reaches through `gateway.sources.registry.load_config(path)` (all registered protocols).
"""

from gateway.config.kinds import SourceKind
from gateway.config.loader import missing_files, require_files
from gateway.config.model import (
    ALL_TESTS,
    MQTTTLS,
    AlertPriority,
    AuthEntry,
    Backoff,
    CapabilitySettings,
    Characteristic,
    Config,
    ConfigError,
    GatewaySection,
    Limits,
    Listen,
    NorthboundMQTT,
    NorthboundSection,
    NorthboundSparkplug,
    Part,
    PartFrom,
    Problem,
    Product,
    Role,
    Rules,
    Sampling,
    ServerSection,
    ServerTLS,
    SourceSettings,
    Spec,
    StorageSection,
)

__all__ = [
    "ALL_TESTS",
    "AlertPriority",
    "AuthEntry",
    "Backoff",
    "CapabilitySettings",
    "Characteristic",
    "Config",
    "ConfigError",
    "GatewaySection",
    "Limits",
    "Listen",
    "MQTTTLS",
    "NorthboundMQTT",
    "NorthboundSection",
    "NorthboundSparkplug",
    "Part",
    "PartFrom",
    "Problem",
    "Product",
    "Role",
    "Rules",
    "Sampling",
    "ServerSection",
    "ServerTLS",
    "SourceSettings",
    "SourceKind",
    "Spec",
    "StorageSection",
    "missing_files",
    "require_files",
]
