#!/bin/sh
# Install or upgrade spc-gateway on Debian/Ubuntu: a venv in /opt/spc-gateway, the unit, an example config.
# An upgrade keeps /etc/spc-gateway and /var/lib/spc-gateway; the daemon migrates the database on start.
# The folders can be moved for a staged install or a test: PREFIX, ETC_DIR, UNIT_DIR, BIN_DIR;
# SPC_GATEWAY_USER= (empty) skips creating the service user.
set -eu
PREFIX=${PREFIX:-/opt/spc-gateway}
ETC_DIR=${ETC_DIR:-/etc/spc-gateway}
UNIT_DIR=${UNIT_DIR:-/etc/systemd/system}
BIN_DIR=${BIN_DIR:-/usr/local/bin}
SERVICE_USER=${SPC_GATEWAY_USER-spc-gateway}
SRC=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "run as root (sudo make install)"; exit 1; }
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "spc-gateway needs Python 3.11 or newer"; exit 1; }
if [ -n "$SERVICE_USER" ] && ! getent passwd "$SERVICE_USER" >/dev/null; then
  useradd --system --home-dir /var/lib/spc-gateway --shell /usr/sbin/nologin "$SERVICE_USER"
fi
GROUP=${SERVICE_USER:-root}
python3 -m venv "$PREFIX/venv"
"$PREFIX/venv/bin/pip" install --quiet --upgrade pip
"$PREFIX/venv/bin/pip" install --quiet --upgrade "$SRC"
# The documentation, beside the venv: README.md, docs/ with its images, and the files their links name
# (the example config, the unit, the benchmark figures), so every link works in the installed copy too.
# An upgrade replaces docs/ whole: a page that was removed does not linger.
rm -rf "$PREFIX/docs"
(cd "$SRC" && for f in README.md docs/*.md docs/images/* config/gateway.example.yaml systemd/spc-gateway.service \
    bench/results.md bench/soak-results.md bench/relay-results.md; do
  install -D -m 0644 "$f" "$PREFIX/$f"
done)
install -d "$BIN_DIR"
ln -sf "$PREFIX/venv/bin/spc-gateway" "$BIN_DIR/spc-gateway"
install -d -m 0750 -o root -g "$GROUP" "$ETC_DIR"
if [ ! -f "$ETC_DIR/gateway.yaml" ]; then
  install -m 0640 -o root -g "$GROUP" "$SRC/config/gateway.example.yaml" "$ETC_DIR/gateway.yaml"
  echo "edit $ETC_DIR/gateway.yaml, then: spc-gateway check-config $ETC_DIR/gateway.yaml"
else
  echo "kept the existing $ETC_DIR/gateway.yaml"
fi
install -d "$UNIT_DIR"
install -m 0644 "$SRC/systemd/spc-gateway.service" "$UNIT_DIR/spc-gateway.service"
if [ -d /run/systemd/system ] && [ "$UNIT_DIR" = /etc/systemd/system ]; then
  systemctl daemon-reload
  if systemctl is-active --quiet spc-gateway; then
    systemctl restart spc-gateway && echo "upgraded and restarted (the database migrates on start)"
  else
    echo "installed: systemctl enable --now spc-gateway"
  fi
else
  echo "installed in $PREFIX; unit in $UNIT_DIR (systemd not running here: enable it on the target)"
fi
