"""The registry of source protocols: one line per protocol, and the way in for loading a config.

A new protocol is one package under gateway/sources/ with its PLUGIN (gateway.sources.plugin) and one
line in SOURCES below. Nothing outside its package names a protocol: the config reads the file through
the kinds given here, the daemon builds sources, the probe command dispatches and the pipeline judges
staleness through the plugin of a source's `type`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from gateway.alerts.types import ALERT_TYPES
from gateway.config import Config, Problem, SourceKind
from gateway.config.load import load_config as load_config_with
from gateway.sources import modbus, mqtt, opcua
from gateway.sources.plugin import SourcePlugin


class UnknownSourceType(KeyError):
    """A source type no plugin is registered for (a programming error: the config refuses such a file)."""

    def __str__(self) -> str:
        return str(self.args[0])


class SourceRegistry:
    """The source plugins by type, in registration order (the order messages list them in)."""

    def __init__(self, plugins: Iterable[SourcePlugin]):
        self._plugins: dict[str, SourcePlugin] = {}
        for plugin in plugins:
            self.register(plugin)

    def register(self, plugin: SourcePlugin) -> None:
        """Add a protocol (tests register a fake one); a type is registered once."""
        if plugin.type in self._plugins:
            raise ValueError(f"source type {plugin.type!r} is registered twice")
        self._plugins[plugin.type] = plugin

    def unregister(self, source_type: str) -> None:
        """Take a protocol out again (the other half of a test's `register`)."""
        del self._plugins[source_type]

    def __getitem__(self, source_type: str) -> SourcePlugin:
        try:
            return self._plugins[source_type]
        except KeyError:
            raise UnknownSourceType(f"unknown source type {source_type!r} (known: {', '.join(self._plugins)})") \
                from None

    def __contains__(self, source_type: object) -> bool:
        return source_type in self._plugins

    def __iter__(self) -> Iterator[SourcePlugin]:
        return iter(list(self._plugins.values()))

    def types(self) -> list[str]:
        return list(self._plugins)

    def kinds(self) -> list[SourceKind]:
        """What the config needs of every protocol (gateway.config.load.load_config's `kinds`)."""
        return [plugin.kind for plugin in self._plugins.values()]


SOURCES = SourceRegistry([
    modbus.PLUGIN,
    opcua.PLUGIN,
    mqtt.PLUGIN,
])


def alert_type_names() -> tuple[str, ...]:
    """The alert types an `outputs:` entry may name (config sits below the alert table and is handed them)."""
    return tuple(ALERT_TYPES)


def load_config(path: str) -> tuple[Config, list[Problem]]:
    """Read and check a config file with every registered protocol: the way in for every caller."""
    return load_config_with(path, SOURCES.kinds(), alert_type_names())
