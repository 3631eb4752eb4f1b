"""Outputs beyond the built-in ones, made known to the app by one registration each.

The built-in outputs (the line-side service, the northbound broker, Sparkplug B) are built by the app itself: each
needs parts of the gateway in a set order. Any other output is one module behind `gateway.outputs.base.
Output` and one `OutputKind` in OUTPUTS: the app builds it once the store is open and the pipeline runs,
starts it after the built-in ones, feeds it every commit and reports its `stats()` in /healthz under its
`name` (null when its builder returns None: not configured). Tests append a fake one and remove it again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.outputs import andon, opcua_server
from gateway.outputs.base import Output


@dataclass(frozen=True)
class OutputKind:
    """One kind of output: its class (whose `name` keys /healthz) and how to build it."""

    output: type[Output]
    # (the running Gateway: config, store, alerts, pipeline) -> the output, not started; None: not configured.
    # Typed Any: outputs may not import the app (tests/test_layout.py keeps the import graph acyclic).
    build: Callable[[Any], Output | None]


OUTPUTS: list[OutputKind] = [
    OutputKind(andon.AndonOutputs, andon.build),
    OutputKind(opcua_server.OpcUaServer, opcua_server.build),
]
