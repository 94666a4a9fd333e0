"""A hostile guest (issue 16): inside a real QEMU guest, a process takes the agent's
virtio-serial port and floods and garbles it (bare newlines, random bytes, endless lines,
reports with 5000-digit numbers, negative sizes) as fast as the guest can write. Next to it
an ordinary guest reports and is balanced. The other guest's decisions and the daemon's tick
interval must not notice; the flood must be counted (rejections, cut-offs); the hostile
guest's channel must come back once its agent behaves again."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator

import pytest

pytest.importorskip("libvirt", reason="the real-VM lab needs libvirt-python")

from balloond.units import MiB
from e2e.daemon import Balloond
from e2e.guests import Guest
from e2e.lab import Lab
from e2e.wait import wait_for

pytestmark = pytest.mark.realvm

FLOOR = 256 * MiB  # the lab policy's floor: 50% of 512 MiB
FLOOD_SECONDS = 25.0
INTERVAL = 1.0  # the lab daemon's tick interval

# Runs in the guest as root: take the agent's port (killing the agent, which init respawns,
# until the port is ours), then write hostile bytes until the time is up.
FLOODER = r"""
import errno, os, random, sys, time
seconds = float(sys.argv[1])
dev = None
for name in os.listdir("/sys/class/virtio-ports"):
    with open(f"/sys/class/virtio-ports/{name}/name") as f:
        if f.read().strip() == "org.balloond.agent.0":
            dev = f"/dev/{name}"

def agents():
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if b"balloond_guest" in f.read():
                        yield int(pid)
            except OSError:
                pass

fd = None
while fd is None:
    try:
        fd = os.open(dev, os.O_RDWR | os.O_NONBLOCK)
    except OSError as e:
        if e.errno != errno.EBUSY:
            raise
        for pid in agents():
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        time.sleep(0.01)
rng = random.Random(16)
payloads = [
    b"\n" * 65536,
    rng.randbytes(65536),
    b"x" * 65536,
    b'{"v":1,"type":"report","seq":' + b"9" * 5000 + b"}\n",
    b'{"v":1,"type":"report","seq":7,"mem_total":-5,"psi_some":NaN}\n' * 500,
]
with open("/run/flood.state", "w") as f:
    f.write("flooding\n")
sent = blocked = 0
end = time.time() + seconds
while time.time() < end:
    try:
        sent += os.write(fd, payloads[rng.randrange(len(payloads))])
    except BlockingIOError:
        blocked += 1  # the host is not reading (or has cut the channel off)
        time.sleep(0.01)
    except OSError:
        time.sleep(0.05)
os.close(fd)
with open("/run/flood.state", "w") as f:
    f.write(f"done {sent} {blocked}\n")
"""


@pytest.fixture(scope="module")
def daemon(lab: Lab) -> Iterator[Balloond]:
    d = lab.daemon("primary", interval=f"{INTERVAL:g}s")
    yield d
    d.stop()


@pytest.fixture(scope="module")
def quiet(lab: Lab, daemon: Balloond) -> Iterator[Guest]:
    with lab.guest("q1") as guest:
        yield guest


@pytest.fixture(scope="module")
def hostile(lab: Lab, daemon: Balloond) -> Iterator[Guest]:
    with lab.guest("h1") as guest:
        yield guest


def _fresh(daemon: Balloond, guest: Guest) -> bool:
    age = daemon.metric("balloond_domain_report_age_seconds", domain=guest.name)
    return age is not None and age < 10


def _accepted(daemon: Balloond, guest: Guest) -> float:
    return daemon.metric("balloond_reports_accepted_total", domain=guest.name) or 0.0


def _counted(daemon: Balloond, hostile: Guest) -> tuple[float, float]:
    """(rejections of every reason, cut-offs of the hostile guest's channel)."""
    metrics = daemon.metrics()
    rejected = sum(v for (n, _), v in metrics.items() if n == "balloond_reports_rejected_total")
    cutoffs = daemon.metric("balloond_channel_cutoffs_total", domain=hostile.name) or 0.0
    return rejected, cutoffs


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start_flood(hostile: Guest) -> None:
    write = f"open('/run/flood.py', 'w').write({FLOODER!r})"
    hostile.call("run", argv=["/usr/bin/python3", "-c", write])
    hostile.call(
        "run",
        argv=[
            "/bin/sh",
            "-c",
            f"/usr/bin/python3 /run/flood.py {FLOOD_SECONDS} </dev/null >/dev/null 2>&1 &",
        ],
    )


def _flood_state(hostile: Guest) -> str:
    done = hostile.call("run", argv=["/bin/cat", "/run/flood.state"])
    return str(done.get("stdout", "")).strip()


def test_a_hostile_guest_floods_its_channel_and_nothing_else_notices(
    lab: Lab, daemon: Balloond, quiet: Guest, hostile: Guest
) -> None:
    wait_for(lambda: _fresh(daemon, quiet) and _fresh(daemon, hostile), 120, "both reporting")
    rejected_before, cutoffs_before = _counted(daemon, hostile)
    accepted_before = _accepted(daemon, quiet)
    assert daemon.proc is not None
    cpu_before, started = _cpu_seconds(daemon.proc.pid), time.monotonic()

    _start_flood(hostile)
    wait_for(lambda: _flood_state(hostile) == "flooding", 60, "the flooder to hold the port")
    ticks: list[float] = []
    ages: list[float] = []
    quiet_sizes: list[int] = []
    until = time.monotonic() + FLOOD_SECONDS - 3
    while time.monotonic() < until:
        tick = daemon.metric("balloond_last_tick_timestamp_seconds")
        if tick is not None:
            ticks.append(tick)
        ages.append(daemon.metric("balloond_domain_report_age_seconds", domain=quiet.name) or 99)
        quiet_sizes.append(quiet.current())
        time.sleep(0.5)
    cpu_share = (_cpu_seconds(daemon.proc.pid) - cpu_before) / (time.monotonic() - started)
    state = wait_for(lambda: (s := _flood_state(hostile)).startswith("done") and s, 60, "the end")
    rejected, cutoffs = _counted(daemon, hostile)
    distinct = sorted(set(ticks))
    gap = max(b - a for a, b in itertools.pairwise(distinct))
    sent = int(state.split()[1])

    lab.report.record("hostile", "flood_bytes_written_by_the_guest", sent)
    lab.report.record("hostile", "rejections_counted", rejected - rejected_before)
    lab.report.record("hostile", "channel_cutoffs_counted", cutoffs - cutoffs_before)
    lab.report.record("hostile", "tick_gap_max_seconds_during_flood", round(gap, 2))
    lab.report.record("hostile", "daemon_cpu_share_during_flood", round(cpu_share, 3))
    lab.report.record("hostile", "quiet_guest_report_age_max_seconds", round(max(ages), 1))

    assert sent > 0, state
    assert cutoffs - cutoffs_before >= 1, "the flooding channel was never cut off"
    assert rejected - rejected_before > 0 or cutoffs > cutoffs_before, "the flood was not counted"
    # The tick interval: a tick at least every INTERVAL + 2 s while the guest floods.
    assert gap <= INTERVAL + 2.0, f"ticks {gap:.1f} s apart during the flood"
    # The other guest: its reports keep arriving and its balloon is decided as before
    # (an idle guest goes to its floor and no further).
    assert max(ages) < 10, f"the quiet guest's reports went stale ({max(ages):.0f} s)"
    assert _accepted(daemon, quiet) > accepted_before + FLOOD_SECONDS / 4
    wait_for(lambda: quiet.current() <= FLOOR + 8 * MiB, 120, "the quiet guest at its floor")
    assert min(quiet_sizes) >= FLOOR

    # The flooder is gone; the agent comes back on the port, and once the cut-off is over
    # the daemon reads the hostile guest's reports again.
    wait_for(lambda: _fresh(daemon, hostile), 120, "the hostile guest's channel back")
