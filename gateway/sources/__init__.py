"""Gauge sources: one module per protocol, all behind `base.Source`."""
