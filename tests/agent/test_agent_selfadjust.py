"""Self-adjustment: grow at once, shrink slowly, never past the host's floor and ceiling."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from balloond_guest import xen
from balloond_guest.agent import Agent, Settings
from balloond_guest.selfadjust import MIN_STEP, SelfAdjuster
from balloond_guest.sizes import GIB, KIB, MIB
from hypothesis import given
from hypothesis import strategies as st


class Recorder:
    """A transport that keeps what it was given."""

    name = "recorder"

    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def send(self, line: bytes) -> bool:
        self.lines.append(line)
        return True

    def readable(self) -> None:
        return None

    def close(self) -> None:
        pass


def test_no_limits_no_movement() -> None:
    assert SelfAdjuster().step(2 * GIB, 512 * MIB) is None


def test_grows_at_once_up_to_the_ceiling_only() -> None:
    adjuster = SelfAdjuster(512 * MIB, GIB)
    assert adjuster.step(600 * MIB, 900 * MIB) == 900 * MIB
    assert adjuster.step(600 * MIB, 4 * GIB) == GIB


def test_shrinks_an_eighth_of_the_gap_per_step_and_stops_at_the_floor() -> None:
    adjuster = SelfAdjuster(512 * MIB, 4 * GIB)
    assert adjuster.step(2048 * MIB, 0) == 2048 * MIB - (2048 - 512) * MIB // 8
    current, steps = 2048 * MIB, 0
    while (nxt := adjuster.step(current, 100 * MIB)) is not None:
        assert nxt < current and nxt >= 512 * MIB
        current, steps = nxt, steps + 1
    assert current == 512 * MIB
    assert steps > 5  # slowly


def test_small_moves_are_skipped_but_leaving_the_limits_is_not() -> None:
    adjuster = SelfAdjuster(512 * MIB, GIB)
    assert adjuster.step(700 * MIB, 700 * MIB + MIN_STEP // 2) is None
    assert adjuster.step(GIB + MIB, GIB) == GIB  # above the ceiling by 1 MiB: back in


@given(
    floor=st.integers(1, 8 * GIB),
    span=st.integers(0, 8 * GIB),
    current=st.integers(0, 32 * GIB),
    wanted=st.integers(0, 32 * GIB),
)
def test_any_step_lands_within_the_limits(floor: int, span: int, current: int, wanted: int) -> None:
    adjuster = SelfAdjuster(floor, floor + span)
    nxt = adjuster.step(current, wanted)
    if nxt is not None:
        assert floor <= nxt <= floor + span
        if wanted > current:
            assert nxt >= min(current, floor + span) or nxt == floor


def _limits(floor: int, ceiling: int) -> bytes:
    return json.dumps({"v": 1, "type": "limits", "floor": floor, "ceiling": ceiling}).encode()


def test_xen_agent_in_auto_mode_walks_its_target_file_down_to_the_floor(
    tree: Callable[[str], str],
) -> None:
    root = tree("linux-4.19-xen-pv")  # target 2 GiB, demand ~381 MiB
    target_kb = Path(root, "sys/devices/system/xen_memory/xen_memory0/target_kb")
    agent = Agent(Settings(root=root, auto=True), Recorder())
    agent.tick()
    assert target_kb.read_text() == "2097152\n"  # no limits from the host yet: stay put
    assert agent.handle_host_line(_limits(768 * MIB, 3 * GIB)) is not None
    report = agent.tick()
    assert int(target_kb.read_text()) * KIB == 2 * GIB - (2 * GIB - 768 * MIB) // 8
    # The host sets memory/target too: every report says what the guest chose, so the
    # daemon keeps it (self_adjust) instead of setting its own target back next tick.
    assert report["request"] == int(target_kb.read_text()) * KIB
    for _ in range(80):
        report = agent.tick()
        assert report["request"] == int(target_kb.read_text()) * KIB
    assert int(target_kb.read_text()) * KIB == 768 * MIB
    # The host raises the floor: grow at once.
    agent.handle_host_line(_limits(GIB, 3 * GIB))
    assert agent.tick()["request"] == GIB
    assert int(target_kb.read_text()) * KIB == GIB


def test_host_limits_of_another_major_version_are_refused() -> None:
    agent = Agent(Settings(root="/", auto=True), Recorder())
    line = json.dumps({"v": 2, "type": "limits", "floor": 1, "ceiling": 2}).encode()
    assert agent.handle_host_line(line) is None
    assert agent.handle_host_line(b'{"v":1,"type":"limits","floor":5,"ceiling":1}') is None
    assert agent.handle_host_line(b'{"v":1,"type":"limits","floor":true,"ceiling":9}') is None
    assert not agent.adjuster.ready


def test_kvm_agent_in_auto_mode_requests_within_the_ceiling(tree: Callable[[str], str]) -> None:
    root = tree("linux-6.1-kvm-psi")  # MemTotal ~469 MiB, demand ~146 MiB
    record = Recorder()
    agent = Agent(Settings(root=root, auto=True, limits=(300 * MIB, 400 * MIB)), record)
    requests = [agent.tick()["request"] for _ in range(40)]
    assert all(300 * MIB <= r <= 400 * MIB for r in requests)
    assert requests[-1] == 300 * MIB  # shrunk to the floor: demand + buffer is below it
    assert requests == sorted(requests, reverse=True)
    assert not xen.is_xen(root)


def test_a_refused_target_write_does_not_stop_the_reports(tree: Callable[[str], str]) -> None:
    # A sysctl the kernel refuses to write even for root stands in for a balloon driver that
    # refuses the target: readable, holds a number, write -> EACCES.
    refusing = Path("/proc/sys/kernel/ngroups_max")
    if not refusing.exists():
        pytest.skip("no read-only sysctl to stand in for a refusing driver")
    root = tree("linux-4.19-xen-pv")
    target_kb = Path(root, "sys/devices/system/xen_memory/xen_memory0/target_kb")
    target_kb.unlink()
    target_kb.symlink_to(refusing)
    record = Recorder()
    agent = Agent(Settings(root=root, auto=True, limits=(768 * MIB, GIB)), record)
    agent.tick()  # wants to grow from 64 MiB (65536 KiB) to the 768 MiB floor: refused
    agent.tick()
    assert len(record.lines) == 2
