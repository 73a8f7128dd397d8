#!/usr/bin/env bash
# Prepare a fresh Debian 12 machine (as root) for ocirun: the Debian packages the
# runtime, its tests and its benchmarks use, a virtualenv with ocirun installed
# in it, and the offline busybox bundle. Idempotent: re-running it is cheap.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  busybox-static   # the offline example image
  libcap-dev       # python-prctl builds against it
  libseccomp2      # seccomp filters are compiled by libseccomp, as runc does
  python3-venv
  runc crun        # side-by-side comparison in conformance/ and bench/
  docker-registry skopeo umoci   # local registry and image tooling for tests and bench
  podman conmon containerd uidmap   # engines that drive ocirun in the engine tests
  netavark aardvark-dns catatonit   # podman's default network and --init, named in case recommends are off
  iproute2 procps util-linux
  time debootstrap   # bench: peak RSS (GNU time) and the Debian base image
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  # With recommends: podman's bring netavark (its default network), catatonit
  # (--init) and slirp4netns, which the engine tests use.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Debian starts these services on install; the tests start their own instances.
for svc in docker-registry containerd; do
  systemctl disable --now "$svc" >/dev/null 2>&1 || true
done

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c 'import ocirun, click, jsonschema, prctl, requests, zstandard, pytest' 2>/dev/null \
   || [ pyproject.toml -nt .venv/.installed ]; then
  .venv/bin/pip install -q --upgrade pip
  # compat mode: a plain path entry instead of an import hook, which would
  # cost every ocirun command ~15 ms of start-up.
  .venv/bin/pip install -q -e '.[test,bench]' --config-settings editable_mode=compat
  touch .venv/.installed
fi
# Every ocirun command pays Python start-up: ship compiled bytecode, so that
# environments with PYTHONDONTWRITEBYTECODE set do not recompile on each run.
.venv/bin/python -m compileall -q ocirun >/dev/null

bash bundles/busybox/build-rootfs.sh
