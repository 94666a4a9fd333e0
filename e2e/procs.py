"""Processes the lab starts, and the guarantee that none of them outlives the test session.

Everything the lab starts (namespace holders, virtlogd, libvirtd, the QEMU processes those
libvirtds fork, balloond daemons, Prometheus) carries the lab's cache folder in its command
line: config files, pid files, kernel paths live there. That is how `ours()` tells our
processes from anyone else's, also those left behind by a run that was killed -9.

Cleanup runs from the pytest session finalizer, from `atexit`, and from SIGTERM/SIGHUP
handlers (SIGINT becomes KeyboardInterrupt, which pytest turns into finalizers).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from e2e import CACHE, LAB_LOCK

# Programs of ours that may be running; matched against /proc/PID/exe's basename or argv[0].
KINDS = ("qemu-system", "libvirtd", "virtlogd", "nsholder", "balloond", "prometheus", "python")


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def ours() -> list[tuple[int, str]]:
    """(pid, command line) of every live process whose command line names our cache folder
    (never this pytest process or its ancestors)."""
    mine = {os.getpid(), os.getppid()}
    marker = str(CACHE)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        argv = cmdline(int(entry.name))
        if not argv or not any(marker in a for a in argv) or not alive(int(entry.name)):
            continue
        if any(k in Path(argv[0]).name or k in " ".join(argv[:3]) for k in KINDS):
            found.append((int(entry.name), " ".join(argv)))
    return found


def kill_pids(pids: list[int], grace: float = 10.0) -> None:
    """SIGTERM, wait up to `grace` seconds, then SIGKILL what is left."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        _reap(pids)
        time.sleep(0.1)
    for pid in pids:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    _reap(pids)


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    """Stop a process we spawned (TERM, then KILL after the grace) and reap it."""
    if proc is None:
        return
    kill_pids([proc.pid], grace=15)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def _reap(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


class Cleanup:
    """A stack of teardown callbacks run once, newest first, whatever ends the session."""

    def __init__(self) -> None:
        self._steps: list[tuple[str, Callable[[], Any]]] = []
        self._installed = False
        self.errors: list[str] = []

    def push(self, what: str, step: Callable[[], Any]) -> None:
        self._install()
        self._steps.append((what, step))

    def run(self) -> list[str]:
        while self._steps:
            what, step = self._steps.pop()
            try:
                step()
            except Exception as exc:  # teardown must go on to the next step
                self.errors.append(f"{what}: {type(exc).__name__}: {exc}")
        return self.errors

    def _install(self) -> None:
        if self._installed:
            return
        self._installed = True
        atexit.register(self.run)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            previous = signal.getsignal(sig)

            def handler(signum: int, frame: Any, previous: Any = previous) -> None:
                self.run()
                if callable(previous):
                    previous(signum, frame)
                # Like Ctrl-C: pytest stops the session (instead of failing one test and
                # going on with the next, on a lab that is gone).
                raise KeyboardInterrupt(f"signal {signum}")

            signal.signal(sig, handler)


CLEANUP = Cleanup()


@contextlib.contextmanager
def session_lock(timeout: float = 3600.0) -> Iterator[IO[str]]:
    """One lab session at a time on this machine, whichever checkout it runs from: two would
    fight over the same libvirtd, and each TCG lab (QEMU guests, nested Xen) takes both cores."""
    LAB_LOCK.parent.mkdir(parents=True, exist_ok=True)
    f = open(LAB_LOCK, "a+")  # noqa: SIM115 (held for the whole session)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"another lab session holds {LAB_LOCK}") from None
                # Short polls: `flock` callers (benchmarks) wait blocked and are woken first
                # when the lock is released; a slow poll here would lose that race every time.
                time.sleep(0.05)
    except BaseException:
        # Timed out, or interrupted while waiting (a test's timeout, Ctrl-C): no lock to
        # release, but the file must not be left open for the GC to warn about.
        f.close()
        raise
    try:
        yield f
    finally:
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()


def spawn(argv: list[str], log: Path, **kw: Any) -> subprocess.Popen[bytes]:
    """Start a process of ours with stdout/stderr into `log`, in its own process group."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            **kw,
        )
