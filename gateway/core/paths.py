"""Where an installed gateway keeps its files (systemd/install.sh puts them there)."""

DEFAULT_CONFIG = "/etc/spc-gateway/gateway.yaml"
