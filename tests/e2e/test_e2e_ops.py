"""balloonctl save/restore and live migration between the two lab hosts, next to running
daemons (scenarios 5 and 6 of the lab issue; the real-VM tests of the commands issue)."""

from __future__ import annotations

import json
import re
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

pytest.importorskip("libvirt", reason="the real-VM lab needs libvirt-python")

import libvirt

from balloond.backend.libvirt_xml import HOLD_NS
from balloond.units import MiB, parse_size
from e2e import ROOT, RUN
from e2e.daemon import VENV_BIN, Balloond
from e2e.guests import Guest
from e2e.lab import Lab
from e2e.wait import wait_for

pytestmark = pytest.mark.realvm

FLOOR = 256 * MiB
PINNED = 384 * MiB  # below maxmem (512 MiB), above the floor
MIGRATED = re.compile(
    r"migrated to \S+ in ([0-9.]+) s \(migration ([0-9.]+) s\), (.+?) "
    r"transferred, downtime (\S+(?: ms)?)"
)


@pytest.fixture(scope="module")
def daemons(lab: Lab) -> Iterator[tuple[Balloond, Balloond]]:
    d1, d2 = lab.daemon("primary"), lab.daemon("second")
    yield d1, d2
    d1.stop()
    d2.stop()


@pytest.fixture(scope="module")
def o1(lab: Lab, daemons: tuple[Balloond, Balloond]) -> Iterator[Guest]:
    with lab.guest("o1") as guest:
        yield guest


def ok(done: object) -> str:
    """stdout of a balloonctl run that must have succeeded."""
    rc, out, err = done.returncode, done.stdout, done.stderr  # type: ignore[attr-defined]
    assert rc == 0, f"balloonctl exited {rc}: {err.strip() or out.strip()}"
    return str(out)


def hold_full_and_dirty(daemon: Balloond, guest: Guest) -> None:
    """Pin the guest at 512 MiB with a hold and write 300 MiB of its memory, then free it:
    the pages keep their content, so an unsqueezed image or migration must carry them."""
    ok(daemon.ctl("balloon", guest.name, "512M", "--for", "10m"))
    wait_for(lambda: guest.current() >= 500 * MiB, 60, f"{guest.name} held at 512 MiB")
    guest.call("hog", size=300 * MiB, step=300 * MiB, interval=0.1)
    wait_for(
        lambda: guest.call("hog_status")["allocated"] >= 300 * MiB,
        60,
        "300 MiB written in the guest",
    )
    guest.call("unhog")


def counting(guest: Guest, timeout: float = 60) -> None:
    """The guest's counter process advances (the guest runs, not just exists)."""
    now = guest.counter()
    wait_for(lambda: guest.counter() >= now + 2, timeout, f"{guest.name}'s counter to advance")


def daemon_has_it(daemon: Balloond, guest: Guest, timeout: float = 90) -> None:
    """The host's daemon lists the guest under the lab policy with a fresh agent report."""

    def listed() -> bool:
        done = daemon.ctl("list", "--json")
        if done.returncode != 0:
            return False
        rows = {r["name"]: r for r in json.loads(done.stdout)}
        row = rows.get(guest.name)
        return bool(
            row
            and row.get("policy") == "lab"
            and row.get("report_age") is not None
            and row["report_age"] < 10
        )

    wait_for(
        listed,
        timeout,
        f"balloond on {daemon.host.name} to manage {guest.name} with a fresh agent report",
    )


def hold_on(guest: Guest) -> str | None:
    """The hold element in the guest's live libvirt metadata (None: no hold at all, not even
    an expired one), read straight from libvirt rather than through balloond."""
    try:
        return str(
            guest.dom().metadata(
                libvirt.VIR_DOMAIN_METADATA_ELEMENT, HOLD_NS, libvirt.VIR_DOMAIN_AFFECT_LIVE
            )
        )
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_METADATA:
            return None
        raise


def operations(daemon: Balloond, operation: str, result: str) -> float:
    """balloond_operations_total{operation,result} on the daemon's metrics (0 if absent)."""
    return daemon.metric("balloond_operations_total", operation=operation, result=result) or 0.0


def counted(daemon: Balloond, operation: str, result: str, at_least: float) -> None:
    """balloonctl reports to the daemon just before it exits: the count is there by now,
    the wait only covers a slow scrape."""
    wait_for(
        lambda: operations(daemon, operation, result) >= at_least,
        15,
        f"balloond on {daemon.host.name}: operations_total{{operation={operation!r}, "
        f"result={result!r}}} >= {at_least:g} (now {operations(daemon, operation, result):g})",
    )


def test_save_and_restore_with_and_without_squeeze(
    lab: Lab, daemons: tuple[Balloond, Balloond], o1: Guest
) -> None:
    d1, _ = daemons
    images = RUN / "images"
    images.mkdir(parents=True, exist_ok=True)
    daemon_has_it(d1, o1)
    ops_before = {op: operations(d1, op, "ok") for op in ("save", "restore")}
    for squeeze in (False, True):
        label = "squeeze" if squeeze else "plain"
        path = images / f"{o1.name}-{label}.img"
        if squeeze:
            ok(d1.ctl("release", o1.name))
        else:
            # Written pages at 512 MiB, then pinned below maxmem: the restored guest must
            # come back at the pinned size (the pin travels in the image), not at maxmem.
            hold_full_and_dirty(d1, o1)
            ok(d1.ctl("balloon", o1.name, str(PINNED >> 20)))  # a bare number is MiB
            wait_for(
                lambda: abs(o1.current() - PINNED) <= 4 * MiB,
                60,
                f"{o1.name} ballooned to {PINNED >> 20} MiB",
            )
        before = o1.counter()
        size_before = o1.current()
        started = time.monotonic()
        out = ok(d1.ctl("save", o1.name, str(path), *(["--squeeze"] if squeeze else [])))
        lab.report.record("save_restore", f"save_{label}_seconds", time.monotonic() - started)
        assert path.exists() and stat.S_IMODE(path.stat().st_mode) == 0o600, out
        lab.report.record("save_restore", f"save_{label}_image_bytes", path.stat().st_size)
        with pytest.raises(libvirt.libvirtError):
            o1.dom()  # saved: gone from the host
        started = time.monotonic()
        ok(d1.ctl("restore", str(path)))
        lab.report.record("save_restore", f"restore_{label}_seconds", time.monotonic() - started)
        after = o1.current()
        if squeeze:
            assert after <= FLOOR + 16 * MiB, f"squeezed guest restored at {after >> 20} MiB"
        else:
            assert abs(after - size_before) <= 8 * MiB, (
                f"restored at {after >> 20} MiB, saved at {size_before >> 20} MiB"
            )
            assert abs(after - PINNED) <= 8 * MiB, (
                f"pinned at {PINNED >> 20} MiB, restored at {after >> 20} MiB"
            )
        assert o1.counter() >= before
        counting(o1)
        daemon_has_it(d1, o1)
        if not squeeze:  # still at the pinned size once the daemon manages it again
            after = o1.current()
            assert abs(after - PINNED) <= 8 * MiB, (
                f"pinned at {PINNED >> 20} MiB, {after >> 20} MiB after the daemon took over"
            )
    for op in ("save", "restore"):  # each run was reported to the daemon
        counted(d1, op, "ok", ops_before[op] + 2)
    plain = lab.report.figures["save_restore"]["save_plain_image_bytes"]
    squeezed = lab.report.figures["save_restore"]["save_squeeze_image_bytes"]
    assert squeezed < plain, f"squeezed image {squeezed} not smaller than plain {plain}"


def back_possible(lab: Lab) -> None:
    if not lab.primary.owned:
        pytest.skip(
            "the primary libvirtd is not ours: it does not listen on loopback TCP, so "
            "the guest cannot migrate back to it"
        )


def migrate(
    lab: Lab, daemon: Balloond, guest: Guest, dest: str, label: str, *extra: str, live: bool = True
) -> re.Match[str]:
    """Run `balloonctl migrate` and return the figures of its summary line."""
    started = time.monotonic()
    out = ok(daemon.ctl("migrate", *(["--live"] if live else []), guest.name, dest, *extra))
    lab.report.record("migration", f"{label}_command_seconds", time.monotonic() - started)
    m = MIGRATED.search(out)
    assert m, f"no figures in balloonctl's output: {out!r}"
    lab.report.record("migration", f"{label}_total_seconds", float(m.group(1)))
    lab.report.record("migration", f"{label}_migration_seconds", float(m.group(2)))
    lab.report.record("migration", f"{label}_transferred", m.group(3))
    lab.report.record("migration", f"{label}_downtime", m.group(4))
    return m


def test_live_migration_there_and_back(
    lab: Lab, daemons: tuple[Balloond, Balloond], o1: Guest
) -> None:
    """Scenario 6: to the second host without squeeze, back with --squeeze; the guest keeps
    running, each host's daemon takes it over, the agent channel reconnects."""
    d1, d2 = daemons
    back_possible(lab)
    hold_full_and_dirty(d1, o1)
    migrate(lab, d1, o1, lab.second.tcp_uri, "plain")
    assert o1.name not in [
        d.name() for d in lab.primary.conn().listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
    ]
    o1.host = lab.second
    counting(o1)
    assert o1.meminfo()["MemTotal"] > 0  # the lab channel answers on the new host
    d2.ctl("release", o1.name)  # the hold may or may not have travelled
    daemon_has_it(d2, o1)
    hold_full_and_dirty(d2, o1)
    ok(d2.ctl("release", o1.name))
    migrate(lab, d2, o1, lab.primary.tcp_uri, "squeeze", "--squeeze")
    o1.host = lab.primary
    counting(o1)
    daemon_has_it(d1, o1)


def summary_figures(m: re.Match[str]) -> tuple[float, float, int, float]:
    """Total and migration seconds, bytes and downtime (seconds) from the summary line;
    each must be a real figure (not 'n/a')."""
    total, duration = float(m.group(1)), float(m.group(2))
    transferred = parse_size(m.group(3))
    downtime = re.fullmatch(r"([0-9]+) ms", m.group(4))
    assert downtime, f"no measured downtime in the summary line: {m.group(0)!r}"
    assert 0 < duration <= total + 0.05, m.group(0)
    assert transferred > 0, m.group(0)
    return total, duration, transferred, int(downtime.group(1)) / 1000


def migration_gauges_show(daemon: Balloond, m: re.Match[str]) -> None:
    """The daemon's migration gauges hold the figures balloonctl printed (rounded there to
    0.1 s and 1 ms)."""
    _, duration, _, downtime = summary_figures(m)
    last = daemon.metric("balloond_migration_last_duration_seconds")
    assert last is not None and abs(last - duration) <= 0.051, (
        f"balloond_migration_last_duration_seconds {last}, balloonctl printed {duration} s"
    )
    worst = daemon.metric("balloond_migration_max_duration_seconds")
    assert worst is not None and worst >= last, f"max duration {worst} < last {last}"
    last_down = daemon.metric("balloond_migration_last_downtime_seconds")
    assert last_down is not None and abs(last_down - downtime) <= 0.0006, (
        f"balloond_migration_last_downtime_seconds {last_down}, balloonctl printed "
        f"{downtime * 1000:.0f} ms"
    )
    worst_down = daemon.metric("balloond_migration_max_downtime_seconds")
    assert worst_down is not None and worst_down >= last_down, (
        f"max downtime {worst_down} < last {last_down}"
    )


@dataclass
class SourceSeen:
    # libvirt domain states, polled while memory is being copied (after the destination is
    # prepared): a non-live migration pauses the guest for all of it, a live one at the end.
    states: list[int] = field(default_factory=list)
    max_downtimes: set[int] = field(default_factory=set)  # ms, as QEMU holds the limit

    def share(self, state: int) -> float:
        return self.states.count(state) / len(self.states) if self.states else 0.0


@contextmanager
def watching(dom: libvirt.virDomain) -> Iterator[SourceSeen]:
    """Poll the source domain while the block migrates it: its state while memory is copied
    (a non-live migration pauses it) and QEMU's max-downtime setting (what --max-downtime
    really set)."""
    seen = SourceSeen()
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            try:
                job = dom.jobInfo()
                if job[0] != libvirt.VIR_DOMAIN_JOB_NONE and job[7] > 0:  # memory copied yet
                    seen.states.append(dom.state()[0])
                    # None when the job ended between the two calls (the binding returns
                    # None instead of raising on that race).
                    downtime = dom.migrateGetMaxDowntime(0)
                    if downtime is not None:
                        seen.max_downtimes.add(int(downtime))
            except libvirt.libvirtError:  # gone from the source: the migration finished
                pass
            stop.wait(0.05)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    try:
        yield seen
    finally:
        stop.set()
        watcher.join(10)


def test_paused_migration_there_and_live_back_with_max_downtime(
    lab: Lab, daemons: tuple[Balloond, Balloond], o1: Guest
) -> None:
    """`migrate` without --live moves a running guest paused (it runs again on the
    destination); back with --live --max-downtime 100. Each source daemon counts the
    migration and shows its duration and downtime."""
    d1, d2 = daemons
    back_possible(lab)
    before = operations(d1, "migrate", "ok")
    with watching(o1.dom()) as seen:
        m = migrate(lab, d1, o1, lab.second.tcp_uri, "paused", live=False)
    summary_figures(m)
    lab.report.record(
        "migration",
        "paused_source_paused_share",
        f"{seen.share(libvirt.VIR_DOMAIN_PAUSED):.0%} of {len(seen.states)} polls",
    )
    assert seen.share(libvirt.VIR_DOMAIN_PAUSED) > 0.8, (
        f"a migration without --live, yet the source was paused in only "
        f"{seen.share(libvirt.VIR_DOMAIN_PAUSED):.0%} of {len(seen.states)} polls"
    )
    o1.host = lab.second
    assert o1.name not in [
        d.name() for d in lab.primary.conn().listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
    ]
    assert o1.dom().state()[0] == libvirt.VIR_DOMAIN_RUNNING
    counting(o1)
    counted(d1, "migrate", "ok", before + 1)
    migration_gauges_show(d1, m)
    before = operations(d2, "migrate", "ok")
    with watching(o1.dom()) as seen:
        m = migrate(lab, d2, o1, lab.primary.tcp_uri, "max_downtime_100ms", "--max-downtime", "100")
    summary_figures(m)
    assert seen.max_downtimes == {100}, (
        f"QEMU's max downtime during the migration: {seen.max_downtimes} ms, not 100"
    )
    lab.report.record(
        "migration",
        "max_downtime_100ms_source_running_share",
        f"{seen.share(libvirt.VIR_DOMAIN_RUNNING):.0%} of {len(seen.states)} polls",
    )
    assert seen.share(libvirt.VIR_DOMAIN_RUNNING) > 0.5, (
        f"a live migration, yet the source ran in only "
        f"{seen.share(libvirt.VIR_DOMAIN_RUNNING):.0%} of {len(seen.states)} polls"
    )
    o1.host = lab.primary
    assert o1.dom().state()[0] == libvirt.VIR_DOMAIN_RUNNING
    counting(o1)
    counted(d2, "migrate", "ok", before + 1)
    migration_gauges_show(d2, m)
    daemon_has_it(d1, o1)


def test_refused_migration_leaves_the_guest_on_the_source(
    lab: Lab, daemons: tuple[Balloond, Balloond], o1: Guest
) -> None:
    """A destination without room (here: a config whose reserve is 99% of the host) is
    refused before anything moves: exit code 3, one line with the figures, no hold."""
    d1, _ = daemons
    ok(d1.ctl("release", o1.name))
    assert hold_on(o1) is None
    refused = operations(d1, "migrate", "refused")
    small = d1.dir / "small-dest.yaml"
    text = d1.config.read_text()
    small.write_text(re.sub(r"(?m)^reserve: .*$", "reserve: 99%", text))
    done = d1.ctl("migrate", "--live", o1.name, lab.second.tcp_uri, config=small)
    assert done.returncode == 3, f"exit {done.returncode}: {done.stderr} {done.stdout}"
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got: {done.stderr!r}"
    figures = re.escape(f"'{lab.second.tcp_uri}'")
    assert re.fullmatch(
        rf"balloonctl: domain '{re.escape(o1.name)}': needs \S+ \S+ \+ host "
        rf"reserve \S+ \S+ = \S+ \S+, but {figures} has only \S+ \S+ free",
        lines[0],
    ), lines[0]
    assert o1.dom().state()[0] == libvirt.VIR_DOMAIN_RUNNING
    counting(o1)
    assert hold_on(o1) is None, f"a hold was left on {o1.name}: {hold_on(o1)}"
    names = [d.name() for d in lab.second.conn().listAllDomains()]
    assert o1.name not in names
    counted(d1, "migrate", "refused", refused + 1)


def test_interrupted_migration_leaves_the_guest_running_on_the_source(
    lab: Lab, daemons: tuple[Balloond, Balloond], o1: Guest
) -> None:
    """Ctrl-C (SIGINT) on `balloonctl migrate --live` while memory is being copied: the
    migration is aborted, the guest keeps running on the source, the command's hold is gone
    and the source's daemon counts an aborted migration."""
    d1, _ = daemons
    hold_full_and_dirty(d1, o1)
    # Without the operator's pin the migration holds the guest with its own command hold,
    # which it must remove when aborted.
    ok(d1.ctl("release", o1.name))
    aborted = operations(d1, "migrate", "aborted")
    argv = [
        str(VENV_BIN / "balloonctl"),
        "migrate",
        "--live",
        o1.name,
        lab.second.tcp_uri,
        "--config",
        str(d1.config),
    ]
    proc = subprocess.Popen(
        lab.primary.nsenter(argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        wait_for(
            lambda: (
                o1.dom().jobInfo()[0] != libvirt.VIR_DOMAIN_JOB_NONE and o1.dom().jobInfo()[3] > 0
            ),
            60,
            "the migration to be copying memory",
            interval=0.05,
        )
        held = hold_on(o1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert held is not None and "balloonctl migrate" in held, (
        f"no command hold on {o1.name} during the migration: {held}"
    )
    assert proc.returncode == 1, f"interrupted balloonctl exited {proc.returncode}: {out} {err}"
    lines = err.strip().splitlines()
    assert lines == [
        f"balloonctl: domain '{o1.name}': migration aborted by Ctrl-C; it is "
        f"still on {lab.primary.local_uri} (running)"
    ], err
    wait_for(
        lambda: o1.dom().jobInfo()[0] == libvirt.VIR_DOMAIN_JOB_NONE,
        60,
        "the source's migration job to end",
    )
    assert o1.dom().state()[0] == libvirt.VIR_DOMAIN_RUNNING
    assert o1.name not in [d.name() for d in lab.second.conn().listAllDomains()]
    counting(o1)
    assert hold_on(o1) is None, f"a hold was left on {o1.name}: {hold_on(o1)}"
    counted(d1, "migrate", "aborted", aborted + 1)


def moves_of(daemon: Balloond, guest: Guest) -> int:
    """How many balloon moves the daemon has logged for the guest."""
    return sum(
        1
        for line in daemon.tail(100000).splitlines()
        if re.match(rf"(grow|shrink) {re.escape(guest.name)} ", line)
    )


def test_daemon_leaves_a_hand_started_migration_alone(
    lab: Lab, daemons: tuple[Balloond, Balloond], o1: Guest
) -> None:
    """A migration started with plain libvirt (as `virsh migrate` would), not balloonctl: the
    daemon sees the job, calls the domain busy and does not move its balloon meanwhile, even
    though the guest is idle above its floor."""
    d1, _ = daemons
    back_possible(lab)
    hold_full_and_dirty(d1, o1)
    ok(d1.ctl("release", o1.name))  # idle at 512 MiB: the daemon wants to shrink it
    dom = o1.dom()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            dom.migrateToURI3(
                lab.second.tcp_uri,
                {libvirt.VIR_MIGRATE_PARAM_URI: "tcp://127.0.0.1"},
                libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER,
            )
        except libvirt.libvirtError as exc:
            errors.append(exc)

    def in_job() -> bool:
        try:
            return bool(dom.jobInfo()[0] != libvirt.VIR_DOMAIN_JOB_NONE)
        except libvirt.libvirtError:  # gone from the source: the migration has finished
            return False

    worker = threading.Thread(target=run)
    worker.start()
    reasons: set[str] = set()
    try:
        wait_for(in_job, 30, "the hand-started migration to start", interval=0.05)
        started, busy_after = time.monotonic(), None
        moves = moves_of(d1, o1)
        while worker.is_alive():
            done = d1.ctl("list", "--json")
            rows = {r["name"]: r for r in json.loads(done.stdout or "[]")}
            if o1.name in rows and in_job():
                reasons.add(str(rows[o1.name]["reason"]))
                if busy_after is None and "busy" in reasons:
                    busy_after = time.monotonic() - started
            worker.join(0.05)
        if busy_after is not None:  # listed busy this long after the job was first seen
            lab.report.record("migration", "hand_started_listed_busy_after_seconds", busy_after)
        assert moves_of(d1, o1) == moves, "the daemon moved the balloon during the migration"
    finally:
        worker.join(120)
    assert not errors, errors
    o1.host = lab.second
    counting(o1)
    assert "busy" in reasons, f"the daemon never called {o1.name} busy: {reasons}"
    migrate(lab, daemons[1], o1, lab.primary.tcp_uri, "back_after_hand_started")
    o1.host = lab.primary
    counting(o1)
