"""spc-gateway: statistical process control at the edge of a production line."""

__version__ = "0.1.0"
