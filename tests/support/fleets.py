"""Hypothesis strategies for decide() inputs: small fleets of domains with any report, any
state and any memo, and any policy within the knobs' ranges."""

from __future__ import annotations

from hypothesis import strategies as st

from balloond.core import ControllerState
from balloond.core.state import DomainMemo
from balloond.model import DomainSnapshot, DomainState, GuestReport, Hold, MemoryStats
from balloond.policy.model import Amount, Policy
from balloond.units import GiB, MiB
from tests.support.decide import NOW, dom

sizes = st.integers(min_value=64 * MiB, max_value=16 * GiB)


@st.composite
def any_report(draw: st.DrawFn) -> GuestReport | None:
    if draw(st.booleans()):
        return None
    some = st.none() | st.integers(-GiB, 20 * GiB)
    return GuestReport(
        seq=1,
        received_at=NOW - draw(st.floats(-30, 30)),
        demand=draw(some),
        requested_target=draw(some),
        psi_some=draw(st.none() | st.floats(-1, 2) | st.just(float("nan"))),
        swap_in_rate=draw(st.none() | st.floats(-1e6, 1e9) | st.just(float("nan"))),
        swap_total=draw(some),
        swap_free=draw(some),
    )


@st.composite
def any_domain(draw: st.DrawFn, index: int) -> DomainSnapshot:
    maxmem = draw(sizes)
    current = draw(st.integers(1, maxmem + GiB))  # may exceed maxmem briefly
    used = draw(st.integers(0, current))
    stats = draw(
        st.sampled_from(
            [None, MemoryStats(total=current, available=current - used, last_update=NOW - 1)]
        )
    )
    state = draw(st.sampled_from([DomainState.RUNNING] * 4 + [DomainState.PAUSED]))
    return dom(f"d{index}", current, maxmem=maxmem, st=stats, rep=draw(any_report()), state=state)


policies = st.builds(
    Policy,
    name=st.just("p"),
    floor=st.sampled_from([Amount(ratio=0.25), Amount(size=512 * MiB), Amount(ratio=0.0)]),
    ceiling=st.sampled_from([None, Amount(size=2 * GiB), Amount(ratio=0.8)]),
    weight=st.integers(0, 10_000),
    max_shrink_step=st.sampled_from([Amount(ratio=0.05), Amount(size=64 * MiB)]),
    max_grow_step=st.sampled_from([None, Amount(size=256 * MiB)]),
    swap_guard=st.booleans(),
    self_adjust=st.booleans(),
)


@st.composite
def fleets(draw: st.DrawFn) -> tuple[tuple[DomainSnapshot, ...], ControllerState, dict[str, Hold]]:
    count = draw(st.integers(1, 6))
    domains = tuple(draw(any_domain(i)) for i in range(count))
    memos = {}
    holds = {}
    for d in domains:
        if draw(st.booleans()):
            memos[d.uuid] = DomainMemo(
                target=draw(sizes), mark_current=d.current, mark_at=NOW - draw(st.floats(0, 60))
            )
        if draw(st.integers(0, 4)) == 0:
            holds[d.uuid] = Hold(d.uuid, "test", "", target=draw(st.none() | sizes))
    return domains, ControllerState.of(memos), holds
