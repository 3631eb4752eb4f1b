#!/bin/sh
# Install or upgrade spc-gateway on Debian/Ubuntu: a venv in /opt/spc-gateway, the unit, an example config.
# An upgrade keeps /etc/spc-gateway and /var/lib/spc-gateway; the daemon migrates the database on start.
set -eu
PREFIX=/opt/spc-gateway
SRC=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "run as root (sudo make install)"; exit 1; }
getent passwd spc-gateway >/dev/null || useradd --system --home-dir /var/lib/spc-gateway --shell /usr/sbin/nologin spc-gateway
python3 -m venv "$PREFIX/venv"
"$PREFIX/venv/bin/pip" install --quiet --upgrade pip
"$PREFIX/venv/bin/pip" install --quiet "$SRC"
install -m 0644 "$SRC/README.md" "$PREFIX/README.md"
ln -sf "$PREFIX/venv/bin/spc-gateway" /usr/local/bin/spc-gateway
install -d -m 0750 -o root -g spc-gateway /etc/spc-gateway
if [ ! -f /etc/spc-gateway/gateway.yaml ]; then
  install -m 0640 -o root -g spc-gateway "$SRC/config/gateway.example.yaml" /etc/spc-gateway/gateway.yaml
  echo "edit /etc/spc-gateway/gateway.yaml, then: spc-gateway check-config /etc/spc-gateway/gateway.yaml"
fi
install -m 0644 "$SRC/systemd/spc-gateway.service" /etc/systemd/system/spc-gateway.service
systemctl daemon-reload
if systemctl is-active --quiet spc-gateway; then
  systemctl restart spc-gateway && echo "upgraded and restarted"
else
  echo "installed: systemctl enable --now spc-gateway"
fi
