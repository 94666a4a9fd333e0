"""Two libvirtd "hosts" on one machine.

The primary serves `qemu:///system` at the system paths (/run/libvirt, /var/lib/libvirt), so
balloond and balloonctl reach it exactly as on a real host. Its configuration is a private
copy bind-mounted over /etc/libvirt in its own mount namespace: the machine's /etc stays
untouched. The second host runs in a mount namespace where /run/libvirt, /var/lib/libvirt,
/etc/libvirt, /var/log/libvirt and /var/cache/libvirt are private folders; it has its own
host UUID, listens on 127.0.0.1 TCP without auth and uses its own migration ports. Processes
that belong to a host (its balloond, Prometheus) join its namespace with `nsenter`, and the
test reaches files inside it through /proc/PID/root.

If a libvirtd already serves /run/libvirt/libvirt-sock, the primary reuses it and never
stops it (it is not ours).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import libvirt

from e2e import NAME_PREFIX, ROOT, RUN, procs
from e2e.wait import wait_for

SYSTEM_DIRS = (
    "/run/libvirt",
    "/var/lib/libvirt",
    "/etc/libvirt",
    "/var/log/libvirt",
    "/var/cache/libvirt",
)


@dataclass(frozen=True)
class HostSpec:
    name: str
    host_uuid: str
    private_state: bool  # True: every libvirt folder private (the second host)
    tcp_port: int | None = None
    migration_ports: tuple[int, int] = (49152, 49215)


# Both listen on loopback TCP: a migration between them is peer-to-peer, the source libvirtd
# connects to the other one, and neither can see the other's unix socket.
PRIMARY = HostSpec("primary", "b0110000-0000-4000-8000-0000000e2e01", False, tcp_port=16509)
SECOND = HostSpec(
    "second",
    "b0110000-0000-4000-8000-0000000e2e02",
    True,
    tcp_port=16510,
    migration_ports=(49300, 49363),
)


@dataclass
class LibvirtHost:
    spec: HostSpec
    dir: Path
    owned: bool = True
    holder: subprocess.Popen[bytes] | None = None
    daemons: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _conn: libvirt.virConnect | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def uri(self) -> str:
        """How a process outside this host's namespace (the test) reaches it."""
        return self.tcp_uri if self.spec.private_state else "qemu:///system"

    @property
    def tcp_uri(self) -> str:
        """How the other host (a migration's source libvirtd, its balloonctl) reaches it."""
        return f"qemu+tcp://127.0.0.1:{self.spec.tcp_port}/system"

    local_uri = "qemu:///system"  # how a process inside its namespace reaches it

    def conn(self) -> libvirt.virConnect:
        if self._conn is None or not self._conn.isAlive():
            self._conn = libvirt.open(self.uri)
        return self._conn

    def nsenter(self, argv: list[str]) -> list[str]:
        """`argv` run inside this host's mount namespace."""
        if self.holder is None:
            return argv
        return ["nsenter", "-t", str(self.holder.pid), "-m", "--", *argv]

    def path(self, inside: str) -> Path:
        """A path as this host's processes see it, reachable from the test process."""
        if self.holder is None or not self.spec.private_state:
            return Path(inside)
        return Path(f"/proc/{self.holder.pid}/root{inside}")

    def free_memory(self) -> int:
        return int(self.conn().getFreeMemory())

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> None:
        if not self.spec.private_state and _system_libvirtd_answers():
            self.owned = False  # someone else's libvirtd: use it, never stop it
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        etc = self.dir / "etc"
        _write_configs(self.spec, etc, self.dir)
        binds = [f"{etc}:/etc/libvirt", *_accounts(self.dir)]
        if self.spec.private_state:
            binds += [
                f"{self.dir / d.strip('/').replace('/', '_')}:{d}"
                for d in SYSTEM_DIRS
                if d != "/etc/libvirt"
            ]
        else:
            for d in ("/run/libvirt", "/var/lib/libvirt/qemu", "/var/log/libvirt"):
                os.makedirs(d, exist_ok=True)
        ready = self.dir / "ns.ready"
        ready.unlink(missing_ok=True)
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        holder = procs.spawn(
            [
                "unshare",
                "-m",
                "--propagation",
                "private",
                "--",
                sys.executable,
                "-m",
                "e2e.nsholder",
                str(ready),
                *binds,
            ],
            self.dir / "nsholder.log",
            env=env,
            cwd=ROOT,
        )
        self.holder = holder
        procs.CLEANUP.push(f"{self.name} host", self.stop)
        wait_for(
            lambda: ready.exists() or holder.poll() is not None, 20, f"{self.name}: mount namespace"
        )
        if not ready.exists():
            log = _tail(self.dir / "nsholder.log")
            raise RuntimeError(f"{self.name}: namespace holder failed: {log}")
        for prog, conf in (("virtlogd", "virtlogd.conf"), ("libvirtd", "libvirtd.conf")):
            argv = [prog, "-f", str(etc / conf), "-p", str(self.dir / f"{prog}.pid")]
            if prog == "libvirtd" and self.spec.tcp_port:
                argv.append("--listen")
            self.daemons.append(procs.spawn(self.nsenter(argv), self.dir / f"{prog}.out"))
        wait_for(self._answers, timeout, f"{self.name}: libvirtd answering on {self.uri}")

    def kill_libvirtd(self) -> None:
        """SIGKILL this host's libvirtd (a crash, not a clean stop). QEMU keeps running."""
        assert self.owned, "this libvirtd is not ours to kill"
        old = next(p for p in self.daemons if "libvirtd" in str(p.args))
        os.kill(old.pid, signal.SIGKILL)
        old.wait(10)
        self.daemons.remove(old)
        self._conn = None
        wait_for(lambda: not self._answers_quietly(), 20, f"{self.name}: libvirtd gone")

    def start_libvirtd(self) -> None:
        """Start libvirtd again after `kill_libvirtd`; it reattaches to the running guests."""
        etc = self.dir / "etc"
        argv = ["libvirtd", "-f", str(etc / "libvirtd.conf"), "-p", str(self.dir / "libvirtd.pid")]
        if self.spec.tcp_port:
            argv.append("--listen")
        self.daemons.append(procs.spawn(self.nsenter(argv), self.dir / "libvirtd.out"))
        wait_for(self._answers, 60, f"{self.name}: libvirtd answering again")

    def _answers_quietly(self) -> bool:
        try:
            libvirt.open(self.uri).close()
            return True
        except libvirt.libvirtError:
            return False

    def _answers(self) -> bool:
        for p in self.daemons:
            if p.poll() is not None:
                raise RuntimeError(
                    f"{self.name}: {p.args!r} exited {p.returncode}: "
                    f"{_tail(self.dir / 'libvirtd.log')}"
                )
        try:
            self.conn()
            return True
        except libvirt.libvirtError:
            return False

    def destroy_lab_domains(self) -> None:
        with contextlib.suppress(libvirt.libvirtError):
            conn = self.conn()
            for dom in conn.listAllDomains():
                if dom.name().startswith(NAME_PREFIX):
                    with contextlib.suppress(libvirt.libvirtError):
                        if dom.isActive():
                            dom.destroy()
                    with contextlib.suppress(libvirt.libvirtError):
                        dom.undefine()

    def stop(self) -> None:
        self.destroy_lab_domains()
        if self._conn is not None:
            with contextlib.suppress(libvirt.libvirtError):
                self._conn.close()
            self._conn = None
        if not self.owned:
            return
        # libvirtd first (it talks to virtlogd), then virtlogd, then the namespace.
        for p in reversed(self.daemons):
            procs.kill_pids([p.pid])
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(5)
        self.daemons.clear()
        if self.holder is not None:
            procs.kill_pids([self.holder.pid])
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.holder.wait(5)
            self.holder = None


def _accounts(hostdir: Path) -> list[str]:
    """libvirtd refuses to start unless user libvirt-qemu and groups kvm, libvirt-qemu exist
    (even with user = "root" in qemu.conf). Add them to private copies of /etc/passwd and
    /etc/group bind-mounted in the host's namespace, instead of editing the machine's."""
    passwd = Path("/etc/passwd").read_text()
    group = Path("/etc/group").read_text()
    if not passwd.endswith("\n"):
        passwd += "\n"
    if not group.endswith("\n"):
        group += "\n"
    names = {line.split(":", 1)[0] for line in group.splitlines()}
    gids = {int(line.split(":")[2]) for line in group.splitlines() if line.count(":") >= 3}
    for name in ("kvm", "libvirt-qemu"):
        if name not in names:
            gid = next(g for g in range(64000, 65000) if g not in gids)
            gids.add(gid)
            group += f"{name}:x:{gid}:\n"
    if not any(line.startswith("libvirt-qemu:") for line in passwd.splitlines()):
        qemu_gid = next(
            line.split(":")[2] for line in group.splitlines() if line.startswith("libvirt-qemu:")
        )
        passwd += (
            f"libvirt-qemu:x:64055:{qemu_gid}:Libvirt Qemu:/var/lib/libvirt:/usr/sbin/nologin\n"
        )
    (hostdir / "passwd").write_text(passwd)
    (hostdir / "group").write_text(group)
    return [f"{hostdir / 'passwd'}:/etc/passwd", f"{hostdir / 'group'}:/etc/group"]


def _system_libvirtd_answers() -> bool:
    if not os.path.exists("/run/libvirt/libvirt-sock"):
        return False
    try:
        libvirt.open("qemu:///system").close()
        return True
    except libvirt.libvirtError:
        return False


def _write_configs(spec: HostSpec, etc: Path, logdir: Path) -> None:
    if etc.exists():
        shutil.rmtree(etc)
    (etc / "qemu").mkdir(parents=True)
    lines = [
        f'host_uuid = "{spec.host_uuid}"',
        'auth_unix_rw = "none"',
        'auth_unix_ro = "none"',
        f'log_outputs = "3:file:{logdir}/libvirtd.log"',
    ]
    if spec.tcp_port:
        lines += [
            "listen_tcp = 1",
            "listen_tls = 0",
            f'tcp_port = "{spec.tcp_port}"',
            'listen_addr = "127.0.0.1"',
            'auth_tcp = "none"',
        ]
    (etc / "libvirtd.conf").write_text("\n".join(lines) + "\n")
    (etc / "virtlogd.conf").write_text(f'log_outputs = "3:file:{logdir}/virtlogd.log"\n')
    lo, hi = spec.migration_ports
    (etc / "qemu.conf").write_text(
        "\n".join(
            [
                # Root without a security driver: the lab's kernel and console files stay root's and
                # no AppArmor/SELinux profile is needed on a build machine.
                'user = "root"',
                'group = "root"',
                'security_driver = "none"',
                "dynamic_ownership = 0",
                "remember_owner = 0",
                f"migration_port_min = {lo}",
                f"migration_port_max = {hi}",
            ]
        )
        + "\n"
    )
    (etc / "libvirt.conf").write_text("")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no {path})"


def start_hosts(names: tuple[HostSpec, ...] = (PRIMARY, SECOND)) -> list[LibvirtHost]:
    hosts = []
    for spec in names:
        host = LibvirtHost(spec, RUN / "hosts" / spec.name)
        host.start()
        hosts.append(host)
    return hosts


def wait_stopped(timeout: float = 20.0) -> list[tuple[int, str]]:
    """After teardown: wait for every process of ours to be gone; kill and return leftovers."""
    deadline = time.monotonic() + timeout
    left = procs.ours()
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = procs.ours()
    if left:
        procs.kill_pids([pid for pid, _ in left], grace=5)
    return left
