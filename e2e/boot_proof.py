"""The hardened unit, run for real: the test root booted with systemd as its PID 1.

This machine's PID 1 is not systemd, so `systemctl start` cannot run here; systemd-nspawn
can boot the Debian 12 root the packages were installed into, with its own systemd and
journald and a private network (its own loopback: port 9877 there is not this machine's).
Inside, balloond.service starts under every restriction of the shipped unit and connects to
a real libvirtd (qemu:///system; LIBVIRT_DEFAULT_URI in a drop-in, as the environment wins
over the config for virsh too), and a one-shot unit checks it and powers the container off.
Its answers are read back from the root's files. No QEMU: no lab lock.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from e2e.debroot import Chroot

PROOF = """#!/bin/sh
# Runs inside the booted root, after balloond.service; one "name: value" line per check.
out=/root/proof.out
: >$out
for i in $(seq 60); do systemctl is-active -q balloond && break; sleep 0.5; done
echo "active: $(systemctl is-active balloond)" >>$out
balloonctl status >/root/status.txt 2>&1; echo "status: $?" >>$out
python3 -c 'import urllib.request as u; print(u.urlopen("http://127.0.0.1:9877/metrics").read())' \\
  >/root/metrics.txt 2>&1; echo "metrics: $?" >>$out
for i in $(seq 20); do test -s /var/lib/balloond/state.json && break; sleep 0.5; done
echo "state: $(test -s /var/lib/balloond/state.json && echo written || echo missing)" >>$out
printf 'policies:\\n  - name: broken\\n    flor: 1GiB\\n' >/etc/balloond/policies/zz-broken.yaml
systemctl reload balloond; sleep 3
echo "after-reload: $(systemctl is-active balloond)" >>$out
journalctl -u balloond -p err -o cat --no-pager >/root/journal-err.txt
journalctl -u balloond -o cat --no-pager >/root/journal-all.txt
rm /etc/balloond/policies/zz-broken.yaml
echo "restarts: $(systemctl show balloond -p NRestarts --value)" >>$out
systemd-analyze security balloond.service --no-pager >/root/security.txt 2>&1
echo "done: 1" >>$out
systemctl poweroff
"""

PROOF_UNIT = """[Unit]
Description=balloond install test: check the hardened unit, then power off
After=balloond.service
Wants=balloond.service

[Service]
Type=oneshot
ExecStart=/root/proof.sh

[Install]
WantedBy=multi-user.target
"""

DROP_IN = "[Service]\nEnvironment=LIBVIRT_DEFAULT_URI=qemu:///system\n"
# libvirtd with its QEMU driver (no QEMU itself: no domain is started), so the daemon talks to
# a real libvirtd socket under its hardening, as on a host.
LIBVIRTD = ("libvirt-daemon-system", "libvirt-daemon-driver-qemu")


def available() -> str | None:
    """Why the boot proof cannot run here, or None."""
    if shutil.which("systemd-nspawn") is None:
        return "no systemd-nspawn (Debian package systemd-container)"
    return None


def boot(root: Chroot, timeout: float = 120.0) -> dict[str, str]:
    """Boot the root, let the proof unit run, return its "name: value" answers; the
    files it wrote (status, metrics, journal, security) stay in the root for the checks."""
    path = root.path
    _write(path / "root/proof.sh", PROOF, 0o755)
    _write(path / "etc/systemd/system/balloond-proof.service", PROOF_UNIT)
    _write(path / "etc/systemd/system/balloond.service.d/test-driver.conf", DROP_IN)
    setup = root.run(
        f"apt-get install -y -qq --no-install-recommends {' '.join(LIBVIRTD)} >/dev/null 2>&1 && "
        "systemctl enable balloond.service balloond-proof.service >/dev/null 2>&1 && "
        "rm -f /usr/sbin/policy-rc.d"  # daemons may start now: the container is the host
    )
    if setup.returncode != 0:
        return {"setup": f"failed: {setup.output.strip()}"}
    argv = [
        "systemd-nspawn",
        f"--directory={path}",
        "--boot",
        "--private-network",
        "--register=no",
        "--keep-unit",
        "--quiet",
        "--console=pipe",
    ]
    with root.log.open("a") as log:
        log.write(f"\n$ {' '.join(argv)}\n")
        log.flush()
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.terminate()  # nspawn passes it on as a shutdown request
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    time.sleep(0.1)
    answers = {}
    proof = path / "root/proof.out"
    if proof.exists():
        for line in proof.read_text().splitlines():
            name, _, value = line.partition(": ")
            answers[name] = value
    return answers


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
