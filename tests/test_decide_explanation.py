"""A decision's explanation is written when read, from facts captured when the decision was
made: not before, the same text on every read, and a decision stays an immutable,
replaceable, picklable DomainDecision."""

from __future__ import annotations

import pickle

import pytest

from balloond.core import ControllerState, decide
from balloond.model import (
    DomainDecision,
    DomainSnapshot,
    Explanation,
    GuestReport,
    HostSnapshot,
    MemoryStats,
    Reason,
    Snapshot,
)
from balloond.policy.model import Policy
from balloond.units import GiB, MiB

NOW = 1_700_000_000.0
calls: list[tuple[int, str]] = []


def _text(size: int, word: str) -> str:
    calls.append((size, word))
    return f"{word} at {size}"


def _lazy(size: int = GiB) -> DomainDecision:
    why = Explanation(_text, (size, "steady"))
    return DomainDecision("web1", "u1", "web", Reason.STEADY, GiB, GiB, 0, 2 * GiB, why)


def test_the_text_is_written_when_read_and_the_same_on_every_read() -> None:
    calls.clear()
    d = _lazy()
    assert calls == []
    assert d.explanation == f"steady at {GiB}" == d.explanation
    assert calls == [(GiB, "steady"), (GiB, "steady")]  # nothing stored: written per read


def test_a_lazily_explained_decision_is_an_immutable_domain_decision() -> None:
    lazy = _lazy(1)
    eager = DomainDecision("web1", "u1", "web", Reason.STEADY, GiB, GiB, 0, 2 * GiB, "steady at 1")
    assert lazy.explanation == eager.explanation
    assert "why='steady at 1'" in repr(lazy)
    with pytest.raises(AttributeError):
        lazy.why = "changed"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        lazy.target = 0  # type: ignore[misc]
    moved = lazy._replace(target=2 * GiB)
    assert (moved.target, moved.explanation) == (2 * GiB, "steady at 1")
    again = pickle.loads(pickle.dumps(lazy))
    assert again == lazy and hash(again) == hash(lazy)
    assert again.explanation == "steady at 1"


def test_every_domain_of_a_tick_still_explains_itself() -> None:
    domains = []
    for i in range(40):
        stats = MemoryStats(total=GiB, available=GiB - (100 + 20 * i) * MiB, last_update=NOW)
        report = GuestReport(seq=1, received_at=NOW, psi_some=0.05) if i % 3 == 0 else None
        domains.append(
            DomainSnapshot(
                name=f"vm{i}", uuid=f"u{i}", current=GiB, maxmem=2 * GiB, stats=stats, report=report
            )
        )
    snapshot = Snapshot(NOW, HostSnapshot(total=64 * GiB, free=3 * GiB), tuple(domains))
    state = ControllerState.empty()
    for tick in range(3):
        decision, state = decide(
            snapshot, lambda d: Policy(name="default"), state, reserve=GiB, holds={}, now=NOW + tick
        )
    reasons = {d.reason for d in decision.domains}
    assert len(reasons) >= 2, reasons
    for d in decision.domains:
        assert d.explanation and isinstance(d.explanation, str), d
