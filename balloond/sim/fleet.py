"""Generated fleets for scale runs (`sim://NAME?guests=1000`): many guests with a mix of the
demo's workloads, deterministic for a given name and size."""

from __future__ import annotations

import random

from balloond.sim.scenario import GuestSpec, HostSpec, Scenario, Trace
from balloond.units import GiB, MiB

DURATION = 3600.0


def _idle(rng: random.Random) -> tuple[Trace, Trace]:
    return Trace.constant(rng.randint(150, 400) * MiB), Trace.constant(rng.randint(64, 256) * MiB)


def _spiky(rng: random.Random) -> tuple[Trace, Trace]:
    base = rng.randint(400, 900) * MiB
    at = rng.uniform(60, DURATION - 600)
    peak = base + rng.randint(500, 1500) * MiB
    anon = Trace(((0, base), (at, base), (at + 10, peak), (at + 300, peak), (at + 310, base)))
    return anon, Trace.constant(rng.randint(128, 512) * MiB)


def _leak(rng: random.Random) -> tuple[Trace, Trace]:
    base = rng.randint(300, 600) * MiB
    return (
        Trace(((0, base), (DURATION, base + rng.randint(400, 1200) * MiB))),
        Trace.constant(128 * MiB),
    )


def _cache(rng: random.Random) -> tuple[Trace, Trace]:
    return Trace.constant(rng.randint(300, 500) * MiB), Trace.constant(rng.randint(1, 2) * GiB)


_KINDS = (_idle, _idle, _spiky, _leak, _cache)


def generate_fleet(name: str, guests: int, *, seed: int | None = None) -> Scenario:
    """`guests` guests of 2 or 4 GiB maxmem, on a host with ~2/3 of their total maxmem."""
    if not 1 <= guests <= 100_000:
        raise ValueError(f"guests must be between 1 and 100000, got: {guests}")
    rng = random.Random(f"{name}:{guests}:{seed}")
    specs: list[GuestSpec] = []
    for i in range(guests):
        anon, file = _KINDS[i % len(_KINDS)](rng)
        maxmem = 4 * GiB if i % 3 == 0 else 2 * GiB
        specs.append(
            GuestSpec(
                name=f"{name}-{i:05d}",
                maxmem=maxmem,
                anon=anon,
                file=file,
                initial=min(maxmem, 1280 * MiB),
                agent=i % 4 != 3,
                cache_fill=0,
            )
        )
    total = sum(s.maxmem for s in specs)
    host = HostSpec(memory=max(4 * GiB, total * 2 // 3), reserve=min(8 * GiB, total // 32 + GiB))
    return Scenario(
        name=name,
        host=host,
        duration=DURATION,
        step=1.0,
        guests=tuple(specs),
        repeat=True,
        description=f"generated fleet of {guests} guests",
        source=f"sim://{name}?guests={guests}",
    )
