#!/usr/bin/env bash
# Install what balloond needs, from Debian's and PyPI's registries, idempotently and quietly
# (what pip and apt say goes to .cache/bootstrap.log, printed only when they fail).
#   scripts/bootstrap.sh demo   the package alone, in .venv (no libvirt headers needed)
#   scripts/bootstrap.sh deb    + Debian's packaging tools, for `make deb` (when root)
#   scripts/bootstrap.sh test   + Debian packages for libvirt, QEMU, Prometheus, the package
#                               build and its install test (when root), + test extras and the
#                               guest agent, in .venv
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-demo}
PY=${PYTHON:-python3}
mkdir -p .cache
log=.cache/bootstrap.log

debs_demo=(python3-venv)
# dpkg-buildpackage with debhelper and pybuild; the build writes the man pages and completion
# from the parsers, so it imports balloond: Debian 12's libraries (the same versions the
# floor test runs the unit tests against, scripts/floor-test).
debs_deb=(dpkg-dev debhelper dh-python pybuild-plugin-pyproject python3-all python3-hatchling
          python3-yaml python3-prometheus-client python3-apscheduler python3-rich python3-libvirt)
# libvirt-python is published as source only: pip compiles it, so it needs a C compiler, the C
# library's headers and Python's (a minimal Debian 12 has none of them). mmdebstrap builds the
# clean Debian 12 root the packages are installed into; zsh, groff and systemd-analyze check
# the completion, man pages and units; systemd-nspawn boots that root with systemd as its
# PID 1 to run the hardened unit for real (this machine's PID 1 is not systemd).
debs_test=(python3-venv gcc libc6-dev python3-dev libvirt-dev pkg-config
           libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86
           busybox-static cpio binutils prometheus stress-ng iproute2 openssl
           "${debs_deb[@]}" mmdebstrap zsh groff-base man-db systemd systemd-container)

quietly() {
  if ! "$@" >>"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "bootstrap: failed: $* (whole log: $log)" >&2
    return 1
  fi
}

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
  quietly apt-get -o DPkg::Lock::Timeout=1200 update -qq
  DEBIAN_FRONTEND=noninteractive quietly apt-get -o DPkg::Lock::Timeout=1200 install -y -qq \
    --no-install-recommends "${missing[@]}"
}

if command -v dpkg-query >/dev/null; then
  case $mode in
    test) install_debs "${debs_test[@]}" ;;
    deb) install_debs "${debs_deb[@]}" ;;
    *) install_debs "${debs_demo[@]}" ;;
  esac
fi
[ "$mode" = deb ] && exit 0

if [ ! -x .venv/bin/python ]; then
  quietly "$PY" -m venv .venv
fi
stamp=.venv/.installed-$mode
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ guest-agent/pyproject.toml -nt "$stamp" ]; then
  quietly .venv/bin/python -m pip install -q --upgrade pip
  if [ "$mode" = test ]; then
    quietly .venv/bin/python -m pip install -q -e ".[test]" -e ./guest-agent
  else
    quietly .venv/bin/python -m pip install -q -e .
  fi
  touch "$stamp"
fi
