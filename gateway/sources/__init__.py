"""Gauge sources: one package per protocol (modbus/, opcua/, mqtt/), each behind `base.Source` and
described by its `plugin.SourcePlugin`; `registry.SOURCES` lists them."""
