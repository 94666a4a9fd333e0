#!/usr/bin/env bash
# Install what balloond needs, from Debian's and PyPI's registries, idempotently.
#   scripts/bootstrap.sh demo   the package alone, in .venv (no libvirt headers needed)
#   scripts/bootstrap.sh test   + Debian packages for libvirt, QEMU, Prometheus (when root)
#                               + test extras + the guest agent, in .venv
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-demo}
PY=${PYTHON:-python3}

debs_demo=(python3-venv)
# libvirt-python is published as source only: pip compiles it, so it needs a C compiler, the C
# library's headers and Python's (a minimal Debian 12 has none of them).
debs_test=(python3-venv gcc libc6-dev python3-dev libvirt-dev pkg-config
           libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86
           busybox-static cpio prometheus stress-ng iproute2)

install_debs() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "bootstrap: not root, cannot install Debian packages: ${missing[*]} (tests that need them skip)" >&2
    return 0
  fi
  echo "bootstrap: apt-get install ${missing[*]}" >&2
  apt-get -o DPkg::Lock::Timeout=1200 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=1200 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

if command -v dpkg-query >/dev/null; then
  if [ "$mode" = test ]; then install_debs "${debs_test[@]}"; else install_debs "${debs_demo[@]}"; fi
fi

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$mode
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ guest-agent/pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  if [ "$mode" = test ]; then
    .venv/bin/python -m pip install -q -e ".[test]" -e ./guest-agent
  else
    .venv/bin/python -m pip install -q -e .
  fi
  touch "$stamp"
fi
