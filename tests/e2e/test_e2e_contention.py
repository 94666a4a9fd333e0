"""Scenario 4: two guests under pressure on a host whose reserve leaves room for only one of
them to grow fully. Memory goes to them by weight (3:1): the heavier guest receives memory
before the lighter one, as the guests themselves see it (their MemTotal); the daemon never
grows a guest while the host is inside its reserve, and never hands out more than it had.

The host is this shared build machine, whose free memory moves with everyone's work: the
reserve is set to (free memory now - BUDGET) when the daemon starts, and the bounds below
allow for that noise (HOST_NOISE)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("libvirt", reason="the real-VM lab needs libvirt-python")

from balloond.backend.libvirt import LibvirtBackend
from balloond.units import MiB
from e2e.daemon import Balloond
from e2e.guests import Guest
from e2e.lab import Lab
from e2e.wait import WaitTimeout, wait_for

pytestmark = pytest.mark.realvm

FLOOR = 256 * MiB
# What the host can still hand out when the workloads start. Each workload needs ~180 MiB
# more than its guest's floor (demand ~316 MiB + 20% + the ~54 MiB the guest never sees);
# part of the budget also goes to guest memory the workloads touch for the first time (the
# daemon's host `free` counts it as free until then; ~40 MiB per guest here): room for one
# workload, not two.
BUDGET = 224 * MiB
WORKLOAD = 256 * MiB  # each guest's workload: at its floor it has ~140 MiB available
# Scenario 3 measures how fast a grant follows pressure; this one how memory is shared, so its
# workloads grow at half that pace. At 4 MiB/s the heavy guest lost the race in the lab: the
# light guest's balloon gives back only as fast as its own stalling guest lets it, and the
# heavy one's 20% buffer ran out first (docs/e2e.md).
WORKLOAD_STEP = 2 * MiB  # per second
HOST_NOISE = 96 * MiB
# The heavier guest's MemTotal must never trail the lighter one's gain by more than this: the
# guests' kernels add memory in sections as the balloon deflates, and the two are sampled a
# moment apart.
MEMTOTAL_SLACK = 16 * MiB
RECEIVED = 32 * MiB  # a MemTotal rise that counts as memory received
SETTLE = 180.0  # seconds for both workloads to finish and the balloons to stand still
BUDGET_SLACK = 32 * MiB  # how far the daemon's free - reserve may be from BUDGET at its start
# The prefill leaves this much of the guest's MemAvailable alone: a fixed 128 MiB (of ~140 MiB
# available at the floor) was OOM-killed in one run, with the hog's own Python on top.
PREFILL_SPARE = 24 * MiB
WEIGHTS = """\
  - name: lab-heavy
    match:
      names: ["bde2e-c1"]
    floor: 50%
    weight: 3000
    max_shrink_step: 64MiB
    deadband: 8MiB
    self_adjust: false
  - name: lab-light
    match:
      names: ["bde2e-c2"]
    floor: 50%
    weight: 1000
    max_shrink_step: 64MiB
    deadband: 8MiB
    self_adjust: false
"""


@pytest.fixture(scope="module")
def pair(lab: Lab) -> Iterator[tuple[Guest, Guest]]:
    c1 = lab.boot("c1", current=FLOOR, wait=False)
    c2 = lab.boot("c2", current=FLOOR, wait=False)
    try:
        for g in (c1, c2):
            g.wait_booted()
            wait_for(lambda g=g: g.current() <= FLOOR + 8 * MiB, 60, f"{g.name} at 256 MiB")
            prefill(g)
        yield c1, c2
    finally:
        lab.destroy(c1)
        lab.destroy(c2)


def prefill(g: Guest) -> None:
    """Touch the memory the guest already has, then free it inside the guest: QEMU keeps it
    backed, so the workload later reuses it instead of taking host memory (which would eat
    the budget before the daemon grants anything; the daemon's host `free` counts a guest's
    untouched memory as free), and a guest that is full shows the daemon QEMU's own share of
    its resident set (balloond.core.backing)."""
    size = g.meminfo()["MemAvailable"] - PREFILL_SPARE
    assert size > 64 * MiB, f"{g.name}: only {size >> 20} MiB to prefill at the floor"
    g.call("hog", size=size, step=size, interval=0.1)
    wait_for(lambda: g.call("hog_status")["allocated"] >= size, 60, f"{g.name}: prefill written")
    g.call("unhog")


def steady_free(uri: str) -> int:
    """The daemon's own idea of host free memory, once it stops moving (guests settling)."""
    samples: list[int] = []

    def steady() -> int | None:
        with LibvirtBackend(uri) as backend:
            samples.append(backend.host().free)
        last = samples[-4:]
        return last[-1] if len(last) == 4 and max(last) - min(last) < 16 * MiB else None

    return wait_for(steady, 60, "host free memory to settle", interval=1.0)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def decided(samples: Samples, guests: tuple[Guest, ...]) -> list[str]:
    """Each guest's decision as the daemon's metrics show it: reason, target, demand and fair
    share (MiB), for the failure messages."""
    out = []
    for g in guests:

        def value(name: str, g: Guest = g) -> str:
            found = samples.get((name, frozenset({("domain", g.name)})))
            return "-" if found is None else str(int(found) >> 20)

        reason = next(
            (
                dict(labels)["reason"]
                for (name, labels), v in samples.items()
                if name == "balloond_domain_decision_reason"
                and ("domain", g.name) in labels
                and v == 1
            ),
            "-",
        )
        target = value("balloond_domain_target_bytes")
        demand = value("balloond_domain_demand_bytes")
        fair = value("balloond_domain_fair_share_bytes")
        out.append(f"{reason} {target}/{demand}/{fair}")
    return out


def room_of(d: Balloond, samples: Samples | None = None) -> int | None:
    """The daemon's own host free - reserve, from its metrics (a scrape of them, or a new
    one)."""
    samples = d.metrics() if samples is None else samples
    free = next((v for (n, _), v in samples.items() if n == "balloond_host_free_bytes"), None)
    reserve = next((v for (n, _), v in samples.items() if n == "balloond_host_reserve_bytes"), None)
    return None if free is None or reserve is None else int(free - reserve)


@pytest.fixture(scope="module")
def tight(lab: Lab, pair: tuple[Guest, Guest]) -> Iterator[Balloond]:
    """The daemon with reserve = free - BUDGET. Other work on this machine moves host free by
    up to hundreds of MiB between the measurement and the workloads (a 170 MiB process that
    ended there doubled the budget in one run), so the daemon's own figure is checked once
    it runs, and the daemon restarted with a new reserve when it is off (three tries; the
    test then judges against what the daemon really had)."""
    for _ in range(3):
        reserve = max(steady_free(lab.primary.uri) - BUDGET, 0)
        d = lab.daemon("primary", reserve=f"{reserve >> 20}MiB", extra_policies=WEIGHTS)
        start = wait_for(lambda d=d: room_of(d), 30, "the daemon's host free and reserve")
        if abs(start - BUDGET) <= BUDGET_SLACK:
            break
        d.stop()  # the next one uses the same state folder: what it learned carries over
    yield d
    d.stop()


def test_contention_shares_by_weight_and_keeps_the_reserve(
    lab: Lab, pair: tuple[Guest, Guest], tight: Balloond
) -> None:
    c1, c2 = pair
    base = {g.name: g.current() for g in pair}
    total = {g.name: g.meminfo()["MemTotal"] for g in pair}
    budget = wait_for(lambda: room_of(tight), 30, "the daemon's host free and reserve")
    lab.report.record("contention", "budget_at_start_mib", budget >> 20)
    for g in pair:
        g.call("hog", size=WORKLOAD, step=WORKLOAD_STEP, interval=1.0)
    margins: list[int | None] = []
    history: list[tuple[int, int]] = []
    gains: list[tuple[int, int]] = []  # each guest's MemTotal above its start, each second
    decisions: list[list[str]] = []  # reason target/demand/fair share (MiB), each second

    def settled() -> bool:
        samples = tight.metrics()
        margins.append(room_of(tight, samples))
        decisions.append(decided(samples, pair))
        history.append((c1.current(), c2.current()))
        gains.append(
            (
                c1.meminfo()["MemTotal"] - total[c1.name],
                c2.meminfo()["MemTotal"] - total[c2.name],
            )
        )
        done = [
            not g.call("hog_status")["alive"] or g.call("hog_status")["allocated"] >= WORKLOAD
            for g in pair
        ]
        # Settled: both workloads finished (or died) and no balloon moved for 5 samples.
        return all(done) and len(history) > 5 and len(set(history[-5:])) == 1

    try:
        wait_for(settled, SETTLE, "both balloons to settle under contention", interval=1.0)
    except WaitTimeout as timeout:
        raise AssertionError(
            f"{timeout}; balloons (MiB) each second: "
            f"{[(a >> 20, b >> 20) for a, b in history]}; MemTotal gains (MiB): "
            f"{[(a >> 20, b >> 20) for a, b in gains]}; free - reserve (MiB): "
            f"{[None if m is None else int(m) >> 20 for m in margins]}; decisions {decisions}"
        ) from timeout
    timeline = [None if m is None else int(m) >> 20 for m in margins]
    grown1 = c1.current() - base[c1.name]
    grown2 = c2.current() - base[c2.name]
    lab.report.record("contention", "heavy_weight3000_grown_mib", grown1 >> 20)
    lab.report.record("contention", "light_weight1000_grown_mib", grown2 >> 20)
    known = [m for m in margins if m is not None]
    lab.report.record(
        "contention", "min_free_minus_reserve_mib", int(min(known)) >> 20 if known else None
    )
    survivors = [g.name for g in pair if g.call("hog_status")["alive"]]
    lab.report.record("contention", "survivors", survivors)
    first = [next((i for i, g in enumerate(gains) if g[k] >= RECEIVED), None) for k in (0, 1)]
    lab.report.record("contention", "heavy_received_32mib_after_s", first[0])
    lab.report.record("contention", "light_received_32mib_after_s", first[1])
    memtotal = [(h >> 20, lt >> 20) for h, lt in gains]
    assert min(c1.current(), c2.current()) >= FLOOR
    assert grown1 + grown2 <= budget + HOST_NOISE, (
        f"granted {(grown1 + grown2) >> 20} MiB from a budget of {budget >> 20} MiB"
    )
    # The heavy guest must get a real share (the light one may get little or nothing), and
    # more than the light one.
    assert grown1 >= 48 * MiB and grown1 > grown2, (
        f"weight 3000 got {grown1 >> 20} MiB, weight 1000 {grown2 >> 20} MiB; "
        f"free - reserve (MiB) each second: {timeline}; decisions "
        f"(reason target/demand/fair share MiB) each second: {decisions}"
    )
    # ... and receive it first, as the guests see it: whatever the lighter guest's MemTotal
    # has gained, the heavier one's had gained as much by the same second. (While the host
    # covers both guests' needs they grow together, each by its own demand; once it cannot,
    # the heavier one's fair share comes first.)
    assert first[0] is not None, f"weight 3000 never received memory; MemTotal gains {memtotal}"
    behind = [(i, h, lt) for i, (h, lt) in enumerate(gains) if lt - h > MEMTOTAL_SLACK]
    assert not behind, (
        f"weight 3000 trailed weight 1000 at (second, MiB, MiB) "
        f"{[(i, h >> 20, lt >> 20) for i, h, lt in behind[:5]]}; gains {memtotal}"
    )
    # Whether the heavy guest's workload also survives is recorded, not asserted: under TCG
    # QEMU's own resident memory grows while a guest stalls (the light guest's by 60 MiB in
    # 15 s in one run, its balloon shrinking meanwhile), which takes host free below the
    # reserve with no grant at all; the daemon then takes memory back by weight, from the
    # heavy guest too. Scenario 3 asserts that a grant comes before the guest runs out.
    # Host free memory also moves with QEMU's own overhead and everyone else's work; what the
    # daemon controls is this: it never grows a guest while the host is inside its reserve.
    for i in range(1, len(history)):
        margin = margins[i - 1]
        if margin is not None and margin < 0:
            assert sum(history[i]) <= sum(history[i - 1]) + 8 * MiB, (
                f"grew {(sum(history[i]) - sum(history[i - 1])) >> 20} MiB while the host "
                f"was {-margin / MiB:.0f} MiB inside its reserve"
            )
    for g in pair:
        g.call("unhog")
