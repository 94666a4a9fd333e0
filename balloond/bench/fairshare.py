"""The fair share: what a domain's weight promises (docs/policies.md), measured on the truth.

When the host cannot cover every running guest's need, each guest is entitled to its *fair
share*: what the host can give, floors first, the rest water-filled by weight over the
guests' needs (nobody gets more than it needs; what one does not need goes to the others
by weight). When the host covers every need, the fair share is the need itself. The words,
exactly as the benchmark computes them at every step:

- **need**: the balloon size at which the guest runs without stall (docs/simulator.md),
  at most its maxmem (nobody can give more);
- **floor**: the operator's floor (the scenario's `floor`, else 25 % of maxmem, as every
  contender is configured), at most maxmem; a guest is entitled to its floor even when it
  needs less;
- **what the host can give**: the host's memory, less its own use, less the reserve, less
  what the guests whose balloon cannot move hold (a stuck balloon driver, a paused guest:
  that memory is no balancer's to share, and such a guest's fair share is what it holds).

A guest short of `min(need, fair share)` is short *unfairly*: a balancer that kept the
promise would have given it that much, taking from guests above their own fair share.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from balloond.bench.contenders.base import GuestConfig
from balloond.core.share import water_fill
from balloond.model import DomainState
from balloond.sim.guest import SimGuest
from balloond.sim.host import SimHost


@dataclass(frozen=True, slots=True)
class Share:
    """One guest's fair share at one instant, and whether the host was short then."""

    fair: int  # bytes
    contended: bool  # the host could not cover every movable guest's need and floor

    def entitled(self, need: int) -> int:
        """What the guest must hold for the promise to be kept: its need, up to its share."""
        return min(need, self.fair)


def movable(guest: SimGuest) -> bool:
    """A balloon a balancer can move: running and with a driver that answers."""
    return guest.state is DomainState.RUNNING and guest.spec.behaviour != "stuck"


def givable(sim: SimHost, guests: Iterable[SimGuest]) -> int:
    """What the host can give to `guests` (the movable ones): memory - the host's own use -
    reserve - what every other running guest holds."""
    shared = {g.spec.name for g in guests}
    held = sum(g.current for g in sim.active() if g.spec.name not in shared)
    return sim.memory - sim.used - sim.reserve - held


def fair_shares(
    sim: SimHost, configs: Mapping[str, GuestConfig], needs: Mapping[str, int]
) -> dict[str, Share]:
    """Every running guest's fair share, given each one's `needs` (bytes, by name: the
    truth now for the benchmark's figures, the coming second's for the oracle)."""
    guests = [g for g in sim.active() if movable(g)]
    shares = {g.spec.name: Share(fair=g.current, contended=False) for g in sim.active()}
    if not guests:
        return shares
    floors = [min(configs[g.spec.name].floor, g.maxmem) for g in guests]
    wants = [
        max(floor, min(needs[g.spec.name], g.maxmem))
        for g, floor in zip(guests, floors, strict=True)
    ]
    weights = [configs[g.spec.name].weight for g in guests]
    pool = givable(sim, guests)
    fair = water_fill(floors, wants, weights, pool)
    contended = sum(wants) > pool
    for guest, share in zip(guests, fair, strict=True):
        shares[guest.spec.name] = Share(fair=share, contended=contended)
    return shares
