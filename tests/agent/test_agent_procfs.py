"""The agent's readers and demand arithmetic against fixture /proc trees."""

from __future__ import annotations

import os

import pytest
from balloond_guest import demand, procfs
from balloond_guest.sizes import KIB, MIB

from tests.support.agent import FIXTURES, TREES


@pytest.mark.parametrize("name", TREES)
def test_every_tree_gives_a_demand_within_memtotal(name: str) -> None:
    sample = demand.take_sample(str(FIXTURES / name), 0.0)
    need = demand.demand_of(sample.meminfo)
    assert need is not None
    assert 0 < need <= sample.meminfo["MemTotal"]
    has_psi = os.path.exists(FIXTURES / name / "proc/pressure/memory")
    assert (sample.psi is not None) == has_psi
    assert set(sample.vmstat) == {"pswpin", "pswpout", "pgmajfault"}


def test_demand_uses_memavailable_when_the_kernel_has_it() -> None:
    info = procfs.read_meminfo(str(FIXTURES / "linux-6.1-kvm-psi"))
    assert info["MemTotal"] == 479848 * KIB
    assert demand.demand_of(info) == (479848 - 330112) * KIB


@pytest.mark.parametrize(
    ("name", "expected_kib"),
    [
        # MemTotal - MemFree - Buffers - Cached (no Shmem, no SReclaimable on these kernels)
        ("xenlinux-2.6.18", 1048576 - 402112 - 30200 - 300400),
        ("xenlinux-2.6.9-memory-target", 262144 - 60000 - 8000 - 90000),
    ],
)
def test_demand_without_memavailable_on_old_kernels(name: str, expected_kib: int) -> None:
    info = procfs.read_meminfo(str(FIXTURES / name))
    assert "MemAvailable" not in info
    assert demand.demand_of(info) == expected_kib * KIB


def test_shmem_counts_as_used_not_as_cache() -> None:
    base = {"MemTotal": 1000 * MIB, "MemFree": 400 * MIB, "Cached": 300 * MIB}
    with_shmem = dict(base, Shmem=200 * MIB)
    assert demand.demand_of(base) == 300 * MIB
    assert demand.demand_of(with_shmem) == 500 * MIB  # the tmpfs part cannot be dropped


def test_malformed_meminfo_lines_are_skipped() -> None:
    info = procfs.parse_meminfo(
        "MemTotal: 100 kB\ngarbage\nMemFree:\nCached: x kB\nHugePages_Total: 3\n"
    )
    assert info == {"MemTotal": 100 * KIB, "HugePages_Total": 3}
    assert demand.demand_of({}) is None


def test_psi_is_parsed_as_ratios_and_microseconds() -> None:
    psi = procfs.read_psi(str(FIXTURES / "linux-6.1-kvm-psi"))
    assert psi is not None
    assert (psi.some_total, psi.full_total) == (1843211, 901122)
    assert (psi.some_avg10, psi.full_avg10) == (pytest.approx(0.025), pytest.approx(0.011))
    assert procfs.parse_psi("some avg10=1.00 avg60=0 avg300=0 total=5\n") == procfs.Psi(
        0.01, 5, None, None
    )
    assert procfs.parse_psi("full avg10=1.00 total=5\n") is None
    assert procfs.parse_psi("some avg10=bad total=5\n") is None


def test_wanted_target_adds_the_larger_buffer_and_respects_the_floor() -> None:
    assert demand.wanted_target(100 * MIB, buffer=64 * MIB, ratio=0.1, floor=128 * MIB) == 164 * MIB
    assert (
        demand.wanted_target(2000 * MIB, buffer=64 * MIB, ratio=0.1, floor=128 * MIB) == 2200 * MIB
    )
    assert demand.wanted_target(10 * MIB, buffer=0, ratio=0.0, floor=128 * MIB) == 128 * MIB
    assert demand.wanted_target(None) is None


def _sample(at: float, some: int, full: int, vmstat: dict[str, int]) -> demand.Sample:
    return demand.Sample(at, {}, procfs.Psi(0.0, some, 0.0, full), vmstat)


def test_rates_between_two_samples() -> None:
    page = procfs.page_size()
    before = _sample(10.0, 1_000_000, 0, {"pswpin": 100, "pswpout": 0, "pgmajfault": 50})
    after = _sample(12.0, 1_500_000, 200_000, {"pswpin": 300, "pswpout": 10, "pgmajfault": 250})
    rates = demand.rates(before, after)
    assert rates["psi_some"] == pytest.approx(0.25)  # 0.5 s stalled in 2 s
    assert rates["psi_full"] == pytest.approx(0.1)
    assert rates["swap_in_rate"] == pytest.approx(100 * page)
    assert rates["swap_out_rate"] == pytest.approx(5 * page)
    assert rates["major_fault_rate"] == pytest.approx(100)
    assert all(v is None for v in demand.rates(None, after).values())


def test_counter_reset_reads_as_no_activity_not_negative() -> None:
    before = _sample(0.0, 9_000_000, 0, {"pswpin": 500, "pswpout": 500, "pgmajfault": 500})
    after = _sample(5.0, 100, 0, {"pswpin": 1, "pswpout": 1, "pgmajfault": 1})
    rates = demand.rates(before, after)
    assert rates["psi_some"] == 0.0
    assert rates["swap_in_rate"] == 0.0
    assert rates["major_fault_rate"] == 0.0


def test_without_psi_the_paging_rates_still_come() -> None:
    root = str(FIXTURES / "linux-5.4-kvm-nopsi")
    first = demand.take_sample(root, 0.0)
    second = demand.take_sample(root, 5.0)
    rates = demand.rates(first, second)
    assert rates["psi_some"] is None
    assert rates["swap_in_rate"] == 0.0
