# ocirun: `make demo` and `make test` work on a fresh Debian 12 machine, as root.
VENV := .venv
BIN := $(VENV)/bin
OCIRUN := $(BIN)/ocirun
DEMO_ROOT := /run/ocirun-demo

.PHONY: setup demo test unit conformance bench install clean

setup:
	bash scripts/setup-host.sh

demo: setup
	@echo "== ocirun run: the offline busybox bundle (bundles/busybox) =="
	$(OCIRUN) --root $(DEMO_ROOT) run demo-$$$$ --bundle bundles/busybox
	@if bash scripts/have-internet.sh; then \
	  echo "== bundle-from-hub alpine, then ocirun run =="; \
	  tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	  $(BIN)/bundle-from-hub alpine $$tmp/alpine && \
	  $(OCIRUN) --root $(DEMO_ROOT) run demo-alpine-$$$$ --bundle $$tmp/alpine; \
	else echo "(no internet: skipping the Docker Hub part of the demo)"; fi

test: setup
	$(BIN)/python scripts/reaper.py $(BIN)/python -m pytest -q -ra tests

unit: setup
	$(BIN)/python -m pytest -q tests -m "not root and not registry and not engines"

bench: setup
	$(BIN)/python scripts/reaper.py $(BIN)/python -m bench

install: setup
	ln -sf $(CURDIR)/$(BIN)/ocirun /usr/local/bin/ocirun
	ln -sf $(CURDIR)/$(BIN)/bundle-from-hub /usr/local/bin/bundle-from-hub

clean:
	rm -rf $(VENV) bundles/busybox/rootfs
