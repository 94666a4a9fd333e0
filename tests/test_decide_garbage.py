"""A tick leaves no reference cycles: its decisions, works and recipes are freed by reference
counting as soon as the caller drops them, not left for the cyclic GC, whose full passes over
a thousand domains' leftovers were most of decide()'s p95 at 1,000 domains."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from balloond.core import ControllerState
from balloond.model import DomainState, JobKind
from balloond.units import GiB, MiB
from tests.support.decide import NOW, dom, report, run


@pytest.fixture
def no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _fleet() -> tuple[object, ...]:
    return (
        dom("idle", 4 * GiB, used=GiB),  # shrinks (a move)
        dom("busy", GiB, used=GiB - 8 * MiB, rep=report(2 * GiB, psi=0.2)),  # grows
        dom("steady", 2 * GiB, used=GiB + 600 * MiB),  # within the deadband
        dom("blind", 2 * GiB),  # no data
        dom("paused", 2 * GiB, used=GiB, state=DomainState.PAUSED),
        dom("moving", 2 * GiB, used=GiB, job=JobKind.MIGRATION),
    )


@pytest.mark.parametrize("read", [False, True], ids=["unread", "read"])
@pytest.mark.parametrize("free", [32 * GiB, GiB + 64 * MiB], ids=["roomy", "contention"])
def test_a_tick_leaves_no_cyclic_garbage(no_gc: None, read: bool, free: int) -> None:
    decision, state = run(*_fleet(), free=free)  # type: ignore[arg-type]
    decision, state = run(*_fleet(), free=free, state=state, now=NOW + 2)  # type: ignore[arg-type]
    if read:
        assert all(d.explanation for d in decision.domains)
    del decision, state
    assert gc.collect() == 0


def test_an_empty_state_and_snapshot_leave_none_either(no_gc: None) -> None:
    decision, state = run(state=ControllerState.empty())
    del decision, state
    assert gc.collect() == 0
