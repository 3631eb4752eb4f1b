# spc-gateway: two commands for a fresh Debian/Ubuntu machine with Python 3.11+
#   make demo   the embedded demo: simulated line over real OPC UA + Modbus, page at http://127.0.0.1:8000/
#               (another port: make demo PORT=8001)
#   make test   the whole test suite (installs what it needs; system packages via apt-get when root)

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# nodejs/npm: the independent peers of the plant-integration tests (Tahu's Sparkplug decoder, node-opcua's client)
SYSTEM_PACKAGES := mosquitto mosquitto-clients chromium socat openssl curl fonts-nanum nodejs npm
SYSTEM_BINARIES := /usr/sbin/mosquitto /usr/bin/mosquitto_pub /usr/bin/chromium /usr/bin/socat /usr/bin/openssl /usr/bin/curl \
                   /usr/bin/node /usr/bin/npm
# the HMI tests' Chromium draws Hangul only with a Korean font (else empty boxes): fonts-nanum's, or any
KOREAN_FONT := /usr/share/fonts/truetype/nanum/NanumGothic.ttf

.PHONY: demo test lint bench soak install system-deps clean

# one venv: `make demo` installs the runtime dependencies only; the test tools (pytest, hypothesis,
# playwright, ruff) come on top with the first `make test`. Each stamp is redone when pyproject.toml
# changes, and the test stamp also after the runtime one (a newer runtime install).
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "spc-gateway needs Python 3.11 or newer (found: $$($(PYTHON) --version))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e .
	@touch $(STAMP)

$(TEST_STAMP): $(STAMP) pyproject.toml
	$(PIP) install --quiet -e '.[test]'
	@touch $(TEST_STAMP)

system-deps:
	@missing=""; for b in $(SYSTEM_BINARIES); do [ -x $$b ] || missing="$$missing $$b"; done; \
	[ -f $(KOREAN_FONT) ] || fc-list :lang=ko 2>/dev/null | grep -q . || missing="$$missing $(KOREAN_FONT)"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing system packages for the tests: $(SYSTEM_PACKAGES)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
	  else \
	    echo "missing:$$missing"; \
	    echo "install them with: sudo apt-get install -y $(SYSTEM_PACKAGES)"; exit 1; \
	  fi; \
	fi

PORT ?= 8000
demo: $(STAMP)
	$(VENV)/bin/spc-gateway demo --listen 127.0.0.1:$(PORT)

test: $(TEST_STAMP) system-deps
	$(VENV)/bin/ruff check gateway tests bench
	$(VENV)/bin/mypy gateway
	$(VENV)/bin/pytest -q -p no:cacheprovider

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check gateway tests bench
	$(VENV)/bin/mypy gateway

bench: $(TEST_STAMP) system-deps
	$(PY) bench/run_all.py

soak: $(TEST_STAMP) system-deps
	$(PY) bench/soak.py --minutes 30 --rate 2000 --clients 50 --results bench/soak-results.md

install:
	sh systemd/install.sh

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache test-artifacts
