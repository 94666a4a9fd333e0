"""Install the project's .debs into a clean Debian 12 root and use them as an operator would.

    python -m e2e.install_test dist/deb/*.deb

Prints one line per check and ends with "install-test: N passed, M failed"; exits 1 if any
check failed. Everything the root said is in .cache/debroot/install-test.log. The root is
made by e2e.debroot (mmdebstrap from Debian's registry, a fresh copy each run), never this
machine. No QEMU: it does not take the lab lock.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

from e2e import boot_proof
from e2e.debroot import CACHE, Chroot, Result, fresh_root

# What the packages must bring themselves (Depends), absent from the base root.
BROUGHT = (
    "python3",
    "python3-libvirt",
    "python3-yaml",
    "python3-prometheus-client",
    "python3-apscheduler",
    "python3-rich",
)
MAN_PAGES = (
    "man8/balloond.8",
    "man8/balloonctl.8",
    "man8/balloond-guest.8",
    "man5/balloond.yaml.5",
    "man5/balloond-policy.5",
)
UNITS = ("balloond.service", "balloond-guest.service")
EXPOSURE_AT_MOST = 2.6  # systemd-analyze security of the shipped unit (docs/daemon.md)


class Checks:
    def __init__(self, root: Chroot) -> None:
        self.root = root
        self.passed = 0
        self.failed: list[str] = []

    def check(self, name: str, command: str, ok: Callable[[Result], bool] | None = None) -> Result:
        started = time.monotonic()
        result = self.root.run(command)
        good = result.returncode == 0 if ok is None else ok(result)
        took = time.monotonic() - started
        self.record(name, good, result.output, took)
        return result

    def record(self, name: str, good: bool, detail: str = "", took: float | None = None) -> None:
        timing = f" ({took:.1f} s)" if took is not None else ""
        print(f"  {'ok  ' if good else 'FAIL'} {name}{timing}", flush=True)
        if good:
            self.passed += 1
        else:
            self.failed.append(name)
            for line in detail.strip().splitlines()[-15:]:
                print(f"       | {line}")


def run_checks(root: Chroot, debs: list[Path]) -> Checks:
    checks = Checks(root)
    inside = [root.put(deb, f"/root/debs/{deb.name}") for deb in debs]
    checks.check(
        "the base root has none of the packages' dependencies",
        f"! dpkg-query -W -f='${{Status}}\\n' {' '.join(BROUGHT)} 2>/dev/null"
        " | grep -q 'install ok installed'",
    )
    checks.check("apt-get update", "apt-get -qq update")
    checks.check(
        "apt-get install the two .debs (dependencies from their control files)",
        f"apt-get install -y --no-install-recommends {' '.join(inside)}",
    )
    _use(checks)
    _integrate(checks)
    _booted(checks, root)
    _purge(checks)
    return checks


def _use(checks: Checks) -> None:
    for program in ("balloond", "balloonctl", "balloond-guest"):
        checks.check(
            f"{program} --version",
            f"{program} --version",
            lambda r: r.returncode == 0 and "0." in r.output,
        )
    checks.check("balloond check-config", "balloond check-config")
    checks.check(
        "balloond check-policy /etc/balloond/policies (only the default policy enabled)",
        "balloond check-policy /etc/balloond/policies && ls /etc/balloond/policies",
        lambda r: r.returncode == 0 and r.output.split()[-1] == "default.yaml",
    )
    checks.check(
        "balloonctl --connect test:///default list",
        "balloonctl --connect test:///default list",
        lambda r: r.returncode == 0 and re.search(r"^test\s", r.output, re.M) is not None,
    )
    checks.check(
        "balloond run --connect test:///default --once --dry-run",
        "balloond run --connect test:///default --once --dry-run",
    )
    checks.check(
        "LIBVIRT_DEFAULT_URI is the URI when --connect is not given",
        "LIBVIRT_DEFAULT_URI=test:///default balloonctl list --name",
        lambda r: r.returncode == 0 and r.output.split() == ["test"],
    )


def _integrate(checks: Checks) -> None:
    units = " ".join(f"/lib/systemd/system/{unit}" for unit in UNITS)
    checks.check(
        "systemd-analyze verify of both units",
        f"systemd-analyze verify {units}",
        lambda r: r.returncode == 0 and "balloon" not in r.output,
    )
    checks.check(
        "balloond.service is installed but not enabled (dry-run first); the agent's is",
        "test ! -e /etc/systemd/system/multi-user.target.wants/balloond.service && "
        "test -L /etc/systemd/system/multi-user.target.wants/balloond-guest.service",
    )
    checks.check(
        "every Documentation= of the units is installed",
        "for unit in " + " ".join(UNITS) + "; do"
        " for doc in $(sed -n 's/^Documentation=//p' /lib/systemd/system/$unit); do"
        '  case $doc in man:*) page=${doc#man:}; man -w "${page%(*}" >/dev/null || exit 1;;'
        '  file://*) test -e "${doc#file://}" || exit 1;; esac; done; done',
    )
    for page in MAN_PAGES:
        checks.check(
            f"man -l {page}",
            f"MANWIDTH=80 man -l /usr/share/man/{page}.gz 2>&1 >/dev/null"
            f" | grep . ; MANWIDTH=80 man -l /usr/share/man/{page}.gz | grep -c .",
            lambda r: r.returncode == 0 and r.output.strip().isdigit() and int(r.output) > 20,
        )
    checks.check(
        "bash completion loads and completes domain names",
        "bash -c 'source /usr/share/bash-completion/completions/balloonctl &&"
        ' COMP_LINE="balloonctl -c test:///default explain " && COMP_POINT=${#COMP_LINE} &&'
        ' _balloonctl && echo "${COMPREPLY[*]}"\'',
        lambda r: r.returncode == 0 and r.output.split() == ["test"],
    )
    checks.check("the agent's init script is valid sh", "sh -n /etc/init.d/balloond-guest")
    checks.check(
        "example policies and docs under /usr/share/doc/balloond",
        "ls /usr/share/doc/balloond/examples/policies/web-tier.yaml"
        " /usr/share/doc/balloond/daemon.md*",
    )


def _booted(checks: Checks, root: Chroot) -> None:
    """The unit as systemd runs it, hardening and all (e2e.boot_proof)."""
    why = boot_proof.available()
    if why is not None:
        print(f"  skip the booted unit: {why}")
        return
    started = time.monotonic()
    answers = boot_proof.boot(root)
    took = time.monotonic() - started
    files = {name: _read(root, name) for name in ("status", "metrics", "security")}
    errors, everything = _read(root, "journal-err"), _read(root, "journal-all")
    checks.record(
        "booted with systemd (nspawn): balloond.service active under the shipped hardening,"
        " connected to libvirtd (qemu:///system)",
        answers.get("active") == "active",
        repr(answers) + "\n" + everything,
        took,
    )
    checks.record(
        "  balloonctl status through the control socket in /run/balloond",
        answers.get("status") == "0" and "qemu:///system" in files["status"],
        files["status"],
    )
    checks.record(
        "  metrics served on 127.0.0.1:9877",
        answers.get("metrics") == "0" and "balloond_build_info" in files["metrics"],
        files["metrics"][-2000:],
    )
    checks.record(
        "  state written to /var/lib/balloond under ProtectSystem=strict",
        answers.get("state") == "written",
        everything,
    )
    checks.record(
        "  a broken policy at reload: logged at priority err, the daemon keeps running",
        answers.get("after-reload") == "active"
        and "policy reload failed" in errors
        and "connected to qemu:///system" not in errors
        and "connected to qemu:///system" in everything,
        errors + "\n---\n" + everything,
    )
    checks.record("  no restart", answers.get("restarts") == "0", repr(answers))
    score = re.search(r"Overall exposure level for balloond.service: ([0-9.]+)", files["security"])
    checks.record(
        f"  systemd-analyze security of the running unit: {score[1] if score else '?'}",
        score is not None and float(score[1]) <= EXPOSURE_AT_MOST,
        files["security"][-3000:],
    )
    root.run(
        "systemctl disable balloond.service balloond-proof.service >/dev/null 2>&1;"
        " rm -rf /etc/systemd/system/balloond.service.d /etc/systemd/system/balloond-proof.service"
        " /root/proof.sh /root/*.txt /root/proof.out"
    )


def _read(root: Chroot, name: str) -> str:
    path = root.path / "root" / (name if name.endswith(".out") else f"{name}.txt")
    return path.read_text(errors="replace") if path.exists() else ""


def _purge(checks: Checks) -> None:
    checks.check(
        "apt-get purge --autoremove both packages",
        "rm -rf /root/debs && apt-get purge -y --autoremove balloond balloond-guest",
    )
    # man-db's cache of formatted pages (systemd-analyze verify runs `man` for each
    # Documentation=) is man-db's, which expires it itself; everything else counts.
    checks.check(
        "purge leaves no file named balloon* anywhere (but man-db's own page cache)",
        "find / -xdev -path /var/cache/man -prune -o -name '*balloon*' -print",
        lambda r: r.returncode == 0 and not r.output.strip(),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.install_test", description=__doc__)
    parser.add_argument("debs", nargs="+", type=Path, help="the .deb files to install")
    args = parser.parse_args(argv)
    CACHE.mkdir(parents=True, exist_ok=True)
    log = CACHE / "install-test.log"
    log.write_text("")
    started = time.monotonic()
    print(f"install-test: {', '.join(d.name for d in args.debs)} into a clean Debian 12 root")
    with fresh_root(log) as root:
        checks = run_checks(root, args.debs)
    took = time.monotonic() - started
    print(f"install-test: {took:.0f} s; the root's own words: {log}")
    print(f"install-test: {checks.passed} passed, {len(checks.failed)} failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
