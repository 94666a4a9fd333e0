"""What weight promises (issue 13): the fair share, and how the law keeps it.

Table tests of the fair share (water-filled by weight over the needs, floors first, nobody
above its need), of the contention steps (a debt paid at once from the lowest weight first,
floors kept, the reserve kept, the swap guard overridden only for a debt, no giving back what
was just paid), and the property of the issue over random fleets.

The guests here report their demand through the agent and have no balloon statistics, so
their need is exactly the demand they report (no overhead learned, no lie to catch).
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from balloond.core import ControllerState
from balloond.core.budget import OWED_MIN
from balloond.model import Decision, DomainDecision, DomainSnapshot, GuestReport, Reason
from balloond.policy.model import Amount, Policy
from balloond.units import GiB, MiB
from tests.support.decide import NOW, dom, report, run

FLOOR = Amount(size=GiB)


def policy(name: str, weight: int, **kw: object) -> Policy:
    knobs: dict[str, object] = {"floor": FLOOR, "weight": weight, **kw}
    return Policy(name=name, **knobs)  # type: ignore[arg-type]


def guest(name: str, current: int, demand: int, **kw: object) -> DomainSnapshot:
    return dom(name, current, rep=report(demand, **kw))  # type: ignore[arg-type]


def by_name(decision: Decision) -> dict[str, DomainDecision]:
    return {d.name: d for d in decision.domains}


# a (3000) holds 2 GiB and needs 3; b (1000) holds and needs 3; c (500) holds 2 and needs 1.5.
# Spare 0: the pool is the 7 GiB they hold. Floors 1 GiB each; the 4 GiB above them by weight
# over the needs: a and c fit in their parts, b gets the 1.5 GiB left above its floor.
WEIGHTS = {"a": policy("a", 3000), "b": policy("b", 1000), "c": policy("c", 500)}


def contended(a_needs: int = 3 * GiB, **kw: object) -> dict[str, DomainDecision]:
    decision, _ = run(
        guest("a", 2 * GiB, a_needs),
        guest("b", 3 * GiB, 3 * GiB),
        guest("c", 2 * GiB, int(1.5 * GiB), **kw),
        free=GiB,
        reserve=GiB,
        policy=WEIGHTS,
    )
    return by_name(decision)


def test_fair_shares_are_water_filled_by_weight_over_the_needs() -> None:
    out = contended()
    assert {n: d.fair_share for n, d in out.items()} == {
        "a": 3 * GiB,
        "b": int(2.5 * GiB),
        "c": int(1.5 * GiB),
    }


def test_a_host_that_covers_every_need_gives_each_its_need_as_fair_share() -> None:
    decision, _ = run(
        guest("a", 2 * GiB, 3 * GiB),
        guest("b", 3 * GiB, 3 * GiB),
        free=8 * GiB,
        reserve=GiB,
        policy=WEIGHTS,
    )
    assert [d.fair_share for d in decision.domains] == [3 * GiB, 3 * GiB]


def test_a_debt_is_paid_at_once_lowest_weight_first() -> None:
    out = contended()
    # a is owed 1 GiB and the host has nothing to spare: c (500) gives all it holds above
    # its share, then b (1000) the rest; both far beyond the 5 % shrink step of idle reclaim.
    assert out["c"].act and out["c"].target == int(1.5 * GiB), out["c"].explanation
    assert out["b"].act and out["b"].target == int(2.5 * GiB), out["b"].explanation
    assert "gives" in out["c"].explanation and "fair share" in out["c"].explanation
    # The memory is granted once the host reports it free (the budget invariant): next tick.
    assert not out["a"].act and out["a"].reason is Reason.CONTENTION, out["a"].explanation


def test_a_small_debt_is_taken_from_the_lightest_only() -> None:
    # a owed 300 MiB: c (500) holds 500 MiB above its share and pays it all; b keeps its size.
    out = contended(a_needs=2 * GiB + 300 * MiB)
    assert out["c"].target == 2 * GiB - 300 * MiB, out["c"].explanation
    assert not out["b"].act and out["b"].target == 3 * GiB, out["b"].explanation


def test_a_payer_never_goes_below_its_floor() -> None:
    floors = {**WEIGHTS, "c": policy("c", 500, floor=Amount(size=1900 * MiB))}
    decision, _ = run(
        guest("a", 2 * GiB, 3 * GiB),
        guest("b", 3 * GiB, 3 * GiB),
        guest("c", 2 * GiB, int(1.5 * GiB)),
        free=GiB,
        reserve=GiB,
        policy=floors,
    )
    out = by_name(decision)
    assert out["c"].target == 1900 * MiB and out["c"].fair_share == 1900 * MiB
    assert out["b"].target < 3 * GiB  # b pays what c could not


def test_the_reserve_is_kept_while_a_debt_is_paid() -> None:
    # 200 MiB above the reserve: a takes that now, the rest once the others' shrinks land.
    decision, state = run(
        guest("a", 2 * GiB, 3 * GiB),
        guest("b", 3 * GiB, 3 * GiB),
        guest("c", 2 * GiB, int(1.5 * GiB)),
        free=GiB + 200 * MiB,
        reserve=GiB,
        policy=WEIGHTS,
    )
    out = by_name(decision)
    assert out["a"].target - out["a"].current <= 200 * MiB, out["a"].explanation
    assert "host can give only" in out["a"].explanation
    given_back = sum(d.current - d.target for d in decision.domains if d.target < d.current)
    assert given_back == GiB - 200 * MiB  # the debt beyond the spare, not a byte more
    # Next tick the shrinks have landed and the host reports the memory free: a gets it.
    later, _ = run(
        guest("a", out["a"].target, 3 * GiB, at=NOW + 2),
        guest("b", out["b"].target, 3 * GiB, at=NOW + 2),
        guest("c", out["c"].target, int(1.5 * GiB), at=NOW + 2),
        free=GiB + given_back,
        reserve=GiB,
        policy=WEIGHTS,
        state=state,
        now=NOW + 2,
    )
    assert by_name(later)["a"].target == 3 * GiB


def test_the_swap_guard_gives_way_to_a_debt_only() -> None:
    swapping = {"swap_in_rate": 32 * 1024.0}  # 8 pages/s: the guard's, not a shortage
    out = contended(**swapping)
    assert out["c"].target == int(1.5 * GiB), out["c"].explanation  # pays despite swapping
    decision, _ = run(
        guest("c", 2 * GiB, int(1.5 * GiB), **swapping),
        free=8 * GiB,
        reserve=GiB,
        policy=WEIGHTS,
    )
    idle = decision.domains[0]
    assert idle.target == 2 * GiB and idle.reason is Reason.SWAP_GUARD, idle.explanation


def test_headroom_comes_after_every_need() -> None:
    # 1.5 GiB to spare: every need fits (fair shares are the needs); a gets its need first,
    # then what is left goes toward the 20 % buffers by weight, a's before b's.
    decision, _ = run(
        guest("a", 2 * GiB, 3 * GiB),
        guest("b", 3 * GiB, 3 * GiB),
        guest("c", 2 * GiB, int(1.5 * GiB)),
        free=GiB + int(1.5 * GiB),
        reserve=GiB,
        policy=WEIGHTS,
    )
    out = by_name(decision)
    assert [out[n].fair_share for n in "abc"] == [3 * GiB, 3 * GiB, int(1.5 * GiB)]
    a_buffer = out["a"].target - 3 * GiB
    b_buffer = out["b"].target - 3 * GiB
    assert a_buffer > b_buffer > 0, (out["a"].explanation, out["b"].explanation)


def test_a_domain_just_paid_does_not_give_it_back() -> None:
    """a stalls at 2 GiB (its reading capped by its balloon): its need is pressed above its
    size and the lighter c pays. Two ticks later a has grown and stalls no more, and reads a
    little less than it holds: it keeps what it was paid."""
    stalled = GuestReport(seq=1, received_at=NOW - 1, demand=2 * GiB, psi_some=0.3)
    first, state = run(
        dom("a", 2 * GiB, rep=stalled),
        guest("c", 3 * GiB, 2 * GiB),
        free=GiB,
        reserve=GiB,
        policy=WEIGHTS,
    )
    out = by_name(first)
    assert out["a"].fair_share is not None and out["a"].fair_share > 2 * GiB
    assert out["c"].target < 3 * GiB, out["c"].explanation
    paid = out["a"].fair_share
    calm = GuestReport(seq=2, received_at=NOW + 3, demand=paid - 64 * MiB, psi_some=0.0)
    later, _ = run(
        dom("a", paid, rep=calm),
        guest("c", 5 * GiB - paid, 2 * GiB, at=NOW + 4),
        free=GiB,
        reserve=GiB,
        policy=WEIGHTS,
        state=state,
        now=NOW + 4,
    )
    a = by_name(later)["a"]
    assert a.target >= paid and a.fair_share == paid, a.explanation


def near_shares(a_holds: int, free: int) -> dict[str, DomainDecision]:
    """a (3000) needs 2 GiB and b (1000) 3 GiB, b holds 3 GiB; the pool is exactly 5 GiB:
    each fair share is its need."""
    decision, _ = run(
        guest("a", a_holds, 2 * GiB),
        guest("b", 3 * GiB, 3 * GiB),
        free=GiB + free,
        reserve=GiB,
        policy=WEIGHTS,
    )
    return by_name(decision)


def test_the_deadband_does_not_hold_a_domain_below_its_fair_share() -> None:
    # a is 8 MiB below its fair share: half the default 16 MiB deadband, and the host has
    # just those 8 MiB to give. It takes them; before, it waited there for good.
    out = near_shares(2 * GiB - 8 * MiB, 8 * MiB)
    a = out["a"]
    assert a.fair_share == 2 * GiB and a.act and a.target == 2 * GiB, a.explanation
    assert not out["b"].act, out["b"].explanation


@pytest.mark.parametrize(
    ("a_holds", "free"),
    [
        (2 * GiB + 8 * MiB, 0),  # 8 MiB above its fair share: nobody is owed anything
        (2 * GiB, 8 * MiB),  # at its fair share, 8 MiB to spare: a grow toward its buffer
        (2 * GiB - 512 * 1024, 512 * 1024),  # less than OWED_MIN below: no balloon op
    ],
)
def test_the_deadband_still_holds_moves_nobody_is_owed(a_holds: int, free: int) -> None:
    a = near_shares(a_holds, free)["a"]
    assert not a.act and a.target == a_holds, a.explanation


def test_a_small_grant_toward_the_fair_share_is_made_below_the_deadband() -> None:
    """The grow budget: a grower given less than its deadband waits, unless the grant takes
    it toward its fair share (here 10 MiB of the 600 MiB it is owed)."""
    decision, _ = run(
        guest("a", 2 * GiB, 3 * GiB),
        guest("b", 3 * GiB, 3 * GiB),
        guest("c", 2 * GiB, 2 * GiB),
        free=GiB + 10 * MiB,
        reserve=GiB,
        policy=WEIGHTS,
    )
    a = by_name(decision)["a"]
    assert a.fair_share is not None and a.fair_share > 2 * GiB + 10 * MiB
    assert a.act and a.target == 2 * GiB + 10 * MiB, a.explanation
    assert "host can give only" in a.explanation


# -- the property ---------------------------------------------------------------------------

TOLERANCE = 16 * MiB  # the default deadband: a domain above its fair share by less stays


@st.composite
def contended_fleets(draw: st.DrawFn) -> tuple[list[DomainSnapshot], dict[str, Policy], int]:
    """Two to six agent guests of different weights, some stalling, on a host with little or
    nothing to spare."""
    count = draw(st.integers(2, 6))
    domains, policies = [], {}
    for i in range(count):
        name = f"d{i}"
        maxmem = draw(st.sampled_from([2 * GiB, 4 * GiB, 8 * GiB]))
        current = draw(st.integers(256 * MiB, maxmem))
        demand = draw(st.integers(128 * MiB, maxmem))
        stall = draw(st.sampled_from([0.0, 0.0, 0.02, 0.3]))
        swapping = draw(st.sampled_from([0.0, 64 * MiB]))
        rep = GuestReport(
            seq=1, received_at=NOW - 1, demand=demand, psi_some=stall, swap_in_rate=swapping
        )
        domains.append(dom(name, current, maxmem=maxmem, rep=rep))
        policies[name] = Policy(
            name=name,
            weight=draw(st.integers(1, 10_000)),
            floor=draw(st.sampled_from([Amount(ratio=0.25), Amount(size=256 * MiB)])),
            swap_guard=draw(st.booleans()),
            max_shrink_step=draw(st.sampled_from([Amount(ratio=0.05), Amount(size=64 * MiB)])),
        )
    spare = draw(st.integers(0, 2 * GiB))
    return domains, policies, spare


def held_back(decision: DomainDecision) -> bool:
    """The decision says the budget or a rate limit kept it from its fair share."""
    text = decision.explanation
    return any(
        words in text for words in ("host can give only", "no memory to give", "step limited")
    )


def assert_fair(decision: Decision, policies: dict[str, Policy]) -> None:
    """No domain below its fair share while a domain of lower weight holds more than its own
    fair share and could give (above its floor), unless the budget or a rate limit stated in
    the decision's reason prevents it."""
    out = [d for d in decision.domains if d.fair_share is not None]
    for short in out:
        assert short.fair_share is not None
        # Below its fair share by OWED_MIN or more, a domain moves up to it (the deadband
        # does not hold it back: budget.owed).
        if short.target + OWED_MIN > short.fair_share or held_back(short):
            continue
        for rich in out:
            assert rich.fair_share is not None
            lighter = policies[rich.name].weight < policies[short.name].weight
            if not lighter or held_back(rich):
                continue
            could_give = rich.target > max(rich.fair_share + TOLERANCE, rich.floor)
            assert not could_give, (
                f"{short.name} ({policies[short.name].weight}) at {short.target >> 20} MiB "
                f"below its fair share {short.fair_share >> 20} MiB: {short.explanation}; "
                f"{rich.name} ({policies[rich.name].weight}) keeps {rich.target >> 20} MiB "
                f"above its fair share {rich.fair_share >> 20} MiB: {rich.explanation}"
            )


@settings(max_examples=400, deadline=None)
@given(contended_fleets())
def test_no_domain_is_kept_below_its_fair_share_for_a_lighter_one(
    fleet: tuple[list[DomainSnapshot], dict[str, Policy], int],
) -> None:
    """The issue's property, after any tick."""
    domains, policies, spare = fleet
    decision, _ = run(*domains, free=GiB + spare, reserve=GiB, policy=policies)
    assert_fair(decision, policies)


@settings(max_examples=200, deadline=None)
@given(contended_fleets())
def test_the_property_holds_once_a_debt_is_paid(
    fleet: tuple[list[DomainSnapshot], dict[str, Policy], int],
) -> None:
    """The same after the next tick, once every move of the first has landed and the host
    reports what the shrinks freed: a debt of the first tick is paid by then, so the budget
    no longer explains a domain kept below its fair share by a lighter one."""
    domains, policies, spare = fleet
    free = GiB + spare
    first, state = run(*domains, free=free, reserve=GiB, policy=policies)
    landed = []
    for snap, out in zip(domains, first.domains, strict=True):
        target = out.target if out.act else snap.current
        free += snap.current - target
        assert snap.report is not None
        report = dataclasses.replace(snap.report, received_at=NOW + 1)
        landed.append(dataclasses.replace(snap, current=target, report=report))
    second, _ = run(*landed, free=free, reserve=GiB, policy=policies, state=state, now=NOW + 2)
    assert_fair(second, policies)


def test_the_fair_share_is_kept_in_the_state_of_no_domain() -> None:
    """The fair share is the tick's, not remembered: a state round trip does not carry it."""
    decision, state = run(guest("a", 2 * GiB, 3 * GiB), free=GiB, reserve=GiB, policy=WEIGHTS)
    assert decision.domains[0].fair_share == 2 * GiB  # the pool is all it holds
    assert ControllerState.from_dict(state.to_dict()) == state
