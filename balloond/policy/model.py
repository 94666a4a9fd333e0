"""The validated, immutable policy objects. Built only by `balloond.policy.loader`."""

from __future__ import annotations

from dataclasses import dataclass, field

from balloond.units import MiB


@dataclass(frozen=True, slots=True)
class Amount:
    """A size that is either absolute (`size` bytes) or relative (`ratio` of a base the knob
    names: maxmem for floor/ceiling, the current size for steps and deadband)."""

    size: int | None = None
    ratio: float | None = None

    def resolve(self, base: int) -> int:
        if self.size is not None:
            return self.size
        assert self.ratio is not None
        return int(base * self.ratio)

    def __str__(self) -> str:
        from balloond.units import format_size

        if self.size is not None:
            return format_size(self.size)
        return f"{(self.ratio or 0.0) * 100:g}%"


@dataclass(frozen=True, slots=True)
class Match:
    """Selects domains. A domain matches when any listed selector matches it."""

    names: tuple[str, ...] = ()  # fnmatch globs over the domain name
    uuids: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()  # libvirt metadata tags (see docs/policies.md)

    @property
    def is_empty(self) -> bool:
        return not (self.names or self.uuids or self.tags)


@dataclass(frozen=True, slots=True)
class Policy:
    """One policy: a selector and the knobs that govern every domain it matches."""

    name: str
    source: str = "<built-in>"  # "file:line" where it was defined
    match: Match = field(default_factory=Match)
    floor: Amount = Amount(ratio=0.25)  # never below (relative: of maxmem)
    ceiling: Amount | None = None  # never above; None: maxmem. Always capped by maxmem.
    buffer: float = 0.20  # headroom above demand, Hyper-V style
    weight: int = 1000  # share under contention
    max_shrink_step: Amount = Amount(ratio=0.05)  # per tick (relative: of current)
    max_grow_step: Amount | None = None  # per tick; None: grow at once
    deadband: Amount = Amount(size=16 * MiB)  # ignore smaller changes
    pressure_target: float = 0.005  # allowed PSI `some` stall ratio
    swap_guard: bool = True  # stop shrinking a guest that swaps
    self_adjust: bool = True  # honour the guest's requested target within floor/ceiling
    enabled: bool = True  # False: leave the domain alone

    def floor_for(self, maxmem: int) -> int:
        return min(self.floor.resolve(maxmem), maxmem)

    def ceiling_for(self, maxmem: int) -> int:
        ceiling = maxmem if self.ceiling is None else min(self.ceiling.resolve(maxmem), maxmem)
        return max(ceiling, self.floor_for(maxmem))


DEFAULT_POLICY = Policy(name="default")


@dataclass(frozen=True, slots=True)
class PolicySet:
    """Every loaded policy, in load order, plus the fallback `default`."""

    policies: tuple[Policy, ...] = ()
    default: Policy = DEFAULT_POLICY
    files: tuple[str, ...] = ()
