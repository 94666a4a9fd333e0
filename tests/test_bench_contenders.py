"""The three contenders issue 13 added, each held to the law its sources give."""

from __future__ import annotations

import pytest

from balloond.bench.contenders.base import Observation
from balloond.bench.contenders.esx import IDLE_TAX, Esx
from balloond.bench.contenders.hyperv import HyperV, balloon_floor
from balloond.bench.contenders.senpai import INTERVAL, PRESSURE, Senpai, _Cgroup
from balloond.bench.runner import run
from balloond.model import DomainSnapshot, GuestReport, HostSnapshot, MemoryStats, Snapshot
from balloond.sim.scenario import parse_scenario
from balloond.units import GiB, MiB

TWO = """\
name: two
host: {memory: 8GiB, reserve: 1GiB}
duration: 60s
step: 1s
guests:
  - {name: a, maxmem: 4GiB, weight: 1000, demand: {anon: 1GiB, file: 0}}
  - {name: b, maxmem: 4GiB, weight: 1000, demand: {anon: 1GiB, file: 0}}
"""


def dom(name: str, current: int, used: int, *, report: GuestReport | None = None) -> DomainSnapshot:
    stats = MemoryStats(total=current, available=current - used, unused=current - used)
    return DomainSnapshot(
        name=name, uuid=name, current=current, maxmem=4 * GiB, stats=stats, report=report
    )


def observe(*domains: DomainSnapshot, free: int = 0, t: float = 0.0) -> Observation:
    snapshot = Snapshot(taken_at=t, host=HostSnapshot(total=8 * GiB, free=free), domains=domains)
    return Observation(now=t, t=t, snapshot=snapshot, reserve=GiB)


@pytest.mark.parametrize(
    ("stall_us", "expected"),
    [
        (1_000_000, 1.0),  # stalled the whole second: double at once
        (20 * PRESSURE, 1.0),  # 20x the target is where the back-off reaches its limit
        (2 * PRESSURE, pytest.approx(0.01)),  # (2 / 20)² = 1 %
        (PRESSURE + 1, pytest.approx(0.0025, rel=1e-3)),  # just over: (1 / 20)²
    ],
)
def test_senpai_backs_off_with_the_square_of_the_stall(stall_us: int, expected: float) -> None:
    group = _Cgroup(limit=GiB, integral=float(stall_us))
    assert Senpai._tick(group) == expected
    assert group.integral == 0.0 and group.grace == INTERVAL - 1


def test_senpai_probes_down_at_most_one_percent_after_quiet_ticks() -> None:
    group = _Cgroup(limit=GiB, grace=2)
    assert Senpai._tick(group) is None and Senpai._tick(group) is None
    assert Senpai._tick(group) == -0.01  # no stall at all: the largest probe
    half = _Cgroup(limit=GiB, grace=0, integral=PRESSURE / 2)
    assert Senpai._tick(half) == pytest.approx(-0.01 * (2 / 10) ** 2)


def test_senpai_reads_the_guests_own_psi_and_keeps_the_floor() -> None:
    senpai = Senpai(parse_scenario(TWO))
    stalled = GuestReport(seq=1, received_at=0.0, psi_some=1.0)
    calm = GuestReport(seq=1, received_at=0.0, psi_some=0.0)
    targets = senpai.decide(
        observe(
            dom("a", 2 * GiB, GiB, report=stalled),
            dom("b", 2 * GiB, GiB, report=calm),
            dom("c", 2 * GiB, GiB),  # no agent: no PSI, left alone
        )
    )
    assert targets == {"a": 4 * GiB}  # doubled, capped at maxmem
    for second in range(1, 80 * INTERVAL):  # 0.99 ** 80 = 0.45
        calm = GuestReport(seq=second + 1, received_at=0.0, psi_some=0.0)
        senpai.decide(observe(dom("b", 2 * GiB, GiB, report=calm)))
    assert senpai.cgroups["b"].limit == GiB  # 1 % per 6 s, down to the 25 % floor


@pytest.mark.parametrize(
    ("ram_mib", "floor_mib"),
    # The kernel's own table (drivers/hv/hv_balloon.c, compute_balloon_floor).
    [(16, 16), (32, 24), (128, 72), (512, 168), (2048, 360), (8192, 744), (32768, 1512)],
)
def test_hyperv_balloon_floor_is_the_drivers(ram_mib: int, floor_mib: int) -> None:
    assert balloon_floor(ram_mib * MiB) == floor_mib * MiB


def test_hyperv_wants_committed_plus_the_buffer_and_shares_by_weight() -> None:
    hyperv = HyperV(
        parse_scenario(
            TWO.replace("weight: 1000, demand: {anon: 1GiB", "weight: 3000, demand: {anon: 1GiB", 1)
        )
    )
    report = GuestReport(seq=1, received_at=0.0, mem_total=2 * GiB, committed_as=GiB)
    want = int((GiB + balloon_floor(2 * GiB)) * 1.2)
    roomy = hyperv.decide(observe(dom("a", 2 * GiB, GiB, report=report), free=4 * GiB))
    assert roomy == {"a": -(-want // (2 * MiB)) * (2 * MiB)}
    big = GuestReport(seq=1, received_at=0.0, mem_total=2 * GiB, committed_as=3 * GiB)
    # Pool 2 + 2 + 3 - 1 = 6 GiB: both want 4 GiB (capped); floors 1 GiB each; the 4 GiB
    # above them 3:1 fills a (3000) and leaves b (1000) 1 GiB above its floor.
    tight = hyperv.decide(
        observe(
            dom("a", 2 * GiB, GiB, report=big), dom("b", 3 * GiB, GiB, report=big), free=2 * GiB
        )
    )
    assert tight == {"a": 4 * GiB, "b": 2 * GiB}


def test_esx_reclaims_nothing_while_the_vms_fit() -> None:
    esx = Esx(parse_scenario(TWO))
    assert esx.decide(observe(dom("a", 2 * GiB, GiB), free=5 * GiB)) == {"a": 4 * GiB}


def test_esx_taxes_idle_pages_and_equalises_shares_per_page() -> None:
    esx = Esx(parse_scenario(TWO))
    # Pool 5 GiB for two 4 GiB VMs of equal shares; a is idle (10 % active), b busy.
    sizes = esx.decide(observe(dom("a", 3 * GiB, 300 * MiB), dom("b", 3 * GiB, 3 * GiB), free=0))
    assert sizes["a"] < sizes["b"]
    assert sizes["a"] + sizes["b"] <= 5 * GiB
    k = 1 / (1 - IDLE_TAX)

    def rho(size: int, active: int) -> float:
        return 1000 / (min(size, active) + k * max(0, size - active))

    assert rho(sizes["a"], 300 * MiB) == pytest.approx(rho(sizes["b"], 3 * GiB), rel=1e-3)


@pytest.mark.parametrize("name", ["senpai", "esx", "hyperv"])
def test_each_runs_a_scenario(name: str) -> None:
    figures = run(parse_scenario(TWO), name).figures
    assert figures.contender == name
    assert [g.name for g in figures.guests] == ["a", "b"]
