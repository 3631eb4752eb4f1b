"""The OPC UA server for SCADA and PLCs (contract plant-integration §2), an output of its own.

output (the Output: the daemon's side of the worker process), worker (the process: a pipe each way),
server (the server the worker runs), space (the address space and what each event writes into it),
alarms (alerts as AlarmConditionType events; Acknowledge and AddComment through the alert service),
users (the users file, the password check, the roles), security (policies, the certificate made on
first start), asyncua_private (the one internal it leans on).
`build` is what gateway.outputs.registry registers: the server when `opcua_server:` is configured.
"""

from __future__ import annotations

from typing import Any

from gateway.outputs.opcua_server.output import OpcUaServer


def build(gateway: Any) -> OpcUaServer | None:
    """The server for a running Gateway (store open, alerts started), or None when not configured."""
    settings = gateway.config.opcua_server
    if settings is None:
        return None
    return OpcUaServer(gateway.config, settings, gateway.store, gateway.alerts,
                       lambda: sum(s.health.state == "connected" for s in gateway.sources.values()))


__all__ = ["OpcUaServer", "build"]
