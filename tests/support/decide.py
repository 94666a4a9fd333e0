"""Builders of decide() inputs for the decision-core tests. Plain values, no hypervisor."""

from __future__ import annotations

from collections.abc import Mapping

from balloond.core import ControllerState, decide
from balloond.model import (
    Decision,
    DomainDecision,
    DomainSnapshot,
    DomainState,
    GuestReport,
    Hold,
    HostSnapshot,
    MemoryStats,
    Snapshot,
)
from balloond.policy.model import Policy
from balloond.units import GiB

NOW = 1_800_000_000.0
DEFAULT = Policy(name="default")


def stats(
    used: int,
    total: int,
    *,
    age: float = 1.0,
    swap_in: int | None = None,
    faults: int | None = None,
) -> MemoryStats:
    """Balloon statistics of a guest using `used` bytes (non-reclaimable) of `total`."""
    return MemoryStats(
        total=total,
        available=total - used,
        swap_in=swap_in,
        major_faults=faults,
        last_update=NOW - age,
    )


def report(
    demand: int | None,
    *,
    psi: float | None = 0.0,
    age: float = 1.0,
    requested: int | None = None,
    swap_in_rate: float | None = 0.0,
    swap_total: int | None = None,
    swap_free: int | None = None,
    at: float = NOW,
) -> GuestReport:
    """A guest-agent report received `age` seconds before `at`."""
    return GuestReport(
        seq=1,
        received_at=at - age,
        demand=demand,
        psi_some=psi,
        requested_target=requested,
        swap_in_rate=swap_in_rate,
        swap_total=swap_total,
        swap_free=swap_free,
    )


def dom(
    name: str,
    current: int,
    *,
    maxmem: int = 4 * GiB,
    used: int | None = None,
    rep: GuestReport | None = None,
    st: MemoryStats | None = None,
    state: DomainState = DomainState.RUNNING,
    **kw: object,
) -> DomainSnapshot:
    """A domain; `used` gives it fresh balloon statistics showing that demand."""
    if st is None and used is not None:
        st = stats(used, current)
    return DomainSnapshot(
        name=name,
        uuid=f"uuid-{name}",
        current=current,
        maxmem=maxmem,
        state=state,
        stats=st,
        report=rep,
        **kw,
    )  # type: ignore[arg-type]


def run(
    *domains: DomainSnapshot,
    free: int = 32 * GiB,
    reserve: int = 1 * GiB,
    policy: Policy | Mapping[str, Policy] = DEFAULT,
    state: ControllerState | None = None,
    holds: Mapping[str, Hold] | None = None,
    now: float = NOW,
    stuck_after: float = 30.0,
) -> tuple[Decision, ControllerState]:
    """One tick. `policy` is one policy for all, or a map of domain name -> policy."""

    def policy_for(d: DomainSnapshot) -> Policy:
        if isinstance(policy, Policy):
            return policy
        return policy.get(d.name, DEFAULT)

    snap = Snapshot(taken_at=now, host=HostSnapshot(total=64 * GiB, free=free), domains=domains)
    return decide(
        snap,
        policy_for,
        state or ControllerState.empty(),
        reserve=reserve,
        holds=holds or {},
        now=now,
        stuck_after=stuck_after,
    )


def one(*domains: DomainSnapshot, **kw: object) -> DomainDecision:
    """The decision for the first domain."""
    decision, _ = run(*domains, **kw)  # type: ignore[arg-type]
    return decision.domains[0]


def by_name(decision: Decision) -> dict[str, DomainDecision]:
    return {d.name: d for d in decision.domains}


def commitments(decision: Decision, state: ControllerState, holds: Mapping[str, Hold]) -> int:
    """Sum over domains of max(0, commitment - current): memory promised and not yet taken."""
    total = 0
    for d in decision.domains:
        committed = max(d.current, state.promised(d.uuid, d.current) + d.current)
        hold = holds.get(d.uuid)
        if hold is not None and hold.target is not None:
            committed = max(committed, hold.target)
        total += committed - d.current
    return total
