"""The controller's memory between ticks: small, immutable, JSON-safe.

`decide()` takes a `ControllerState` and returns a new one; the daemon keeps the latest and
persists it with `to_dict()` so that stuck marks and pending targets survive a restart.

Per domain (a `DomainMemo`, keyed by UUID) it remembers:

- the cumulative guest counters of the previous tick (`swap_in`, `major_faults`, sampled at
  `counters_at`), so the core can turn them into rates;
- the held demand peak (`peak`, at `peak_at`): demand decays slowly toward lower readings so a
  guest is not shrunk into the trough of a workload that comes back a minute later;
- the target last issued (`target`, at `target_at`) and a progress mark (`mark_current` at
  `mark_at`): where the balloon was when progress was last seen. A growing target that is not
  reached yet is memory *promised but not yet taken* and counts as taken;
- learned hidden demand (`hidden`, at `hidden_at`): hot page cache the balloon statistics
  count as available, learned when the guest stalled (see `estimate.learn_hidden`);
- stuck marks: `stuck_until` (retry time, epoch seconds) and `strikes` (how many times in a
  row it was found stuck; the backoff doubles with each, capped). A mark is never permanent;
- the balloon the guest never sees (`overhead`, balloon - MemTotal): learned only from settled
  samples (see `overhead.overhead_for`); `overhead_seen` is the largest plausible gap seen,
  used until one is learned; `seen_current` / `current_since` tell whether the balloon moved;
- `grown_at`: when a grow for pressure or demand was last issued (the grow cooldown);
- `pressed` (at `pressed_at`): the need found while the guest was short of memory, pushed up
  tick by tick until the shortage stopped (see `need.pressed_need`); `swap_out`: the
  cumulative swap-out counter, as `swap_in`.

Per QEMU process (`backing`, keyed by UUID) it remembers the process's own share of its
resident set (`backing.Backing`), so that the untouched part of a balloon can be counted as
taken (see `balloond.core.backing`).

`from_dict()` accepts anything: a bad document gives an empty state, a bad entry is dropped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

from balloond.units import MAX_SIZE

STATE_VERSION = 1

# Backoff for stuck domains: the first retry after 60 s, doubling, never longer than 30 min
# (squeezed's permanent "uncooperative" flag starved domains; ours always expires).
STUCK_BACKOFF_FIRST = 60.0
STUCK_BACKOFF_CAP = 30 * 60.0


def stuck_backoff(strikes: int) -> float:
    """Seconds to wait before retrying a domain found stuck `strikes` times in a row."""
    if strikes <= 0:
        return 0.0
    return min(STUCK_BACKOFF_CAP, STUCK_BACKOFF_FIRST * 2.0 ** min(strikes - 1, 32))


class DomainMemo(NamedTuple):
    """What the core remembers about one domain. Every field is optional. Immutable: each
    tick builds the next one by keyword (or `_replace`)."""

    swap_in: int | None = None
    major_faults: int | None = None
    counters_at: float | None = None
    peak: int | None = None
    peak_at: float | None = None
    target: int | None = None
    target_at: float | None = None
    mark_current: int | None = None
    mark_at: float | None = None
    stuck_until: float | None = None
    strikes: int = 0
    hidden: int | None = None
    hidden_at: float | None = None
    shrunk_at: float | None = None  # when a shrink was last issued (blames faults on it)
    fault_base: float | None = None  # usual major faults/s when no shrink is to blame
    overhead: int | None = None  # balloon - MemTotal learned from a settled balloon
    overhead_seen: int | None = None  # largest plausible balloon - MemTotal seen so far
    seen_current: int | None = None  # the balloon size seen at the previous tick
    current_since: float | None = None  # when the balloon was first seen at seen_current
    grown_at: float | None = None  # when a grow for pressure or demand was last issued
    pressed: int | None = None  # the need found while short (guest terms), see need.py
    pressed_at: float | None = None  # when the guest was last short
    swap_out: int | None = None  # the cumulative swap-out counter, as swap_in

    def promised(self, current: int) -> int:
        """Bytes promised to this domain and not yet taken: a growing target not reached."""
        if self.target is None or self.target <= current:
            return 0
        return self.target - current


class Backing(NamedTuple):
    """What is learned of one QEMU process: its own share of `rss` (see
    `balloond.core.backing`), and the balloon size at the previous sample (a sample counts
    only when the balloon stood still). `domain_id` names the process: a domain restarted in
    a new process (restore, a cold boot) starts again from nothing."""

    domain_id: int | None
    overhead: int
    current: int


_EMPTY_MEMO = DomainMemo()
_INT_FIELDS = frozenset(
    {
        "swap_in",
        "major_faults",
        "peak",
        "target",
        "mark_current",
        "strikes",
        "hidden",
        "overhead",
        "overhead_seen",
        "seen_current",
        "pressed",
        "swap_out",
    }
)
_MEMO_FIELDS = DomainMemo._fields


@dataclass(frozen=True, slots=True)
class ControllerState:
    """Immutable; every change returns a new state. `domains` maps UUID -> DomainMemo."""

    domains: Mapping[str, DomainMemo] = field(default_factory=lambda: MappingProxyType({}))
    backing: Mapping[str, Backing] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def empty(cls) -> ControllerState:
        return cls()

    @classmethod
    def of(
        cls, domains: dict[str, DomainMemo], backing: dict[str, Backing] | None = None
    ) -> ControllerState:
        """Wrap freshly built dicts (the caller must not keep mutating them)."""
        return cls(MappingProxyType(domains), MappingProxyType(backing or {}))

    def memo(self, uuid: str) -> DomainMemo:
        return self.domains.get(uuid, _EMPTY_MEMO)

    def stuck_until(self, uuid: str) -> float | None:
        """Retry time (epoch) of a domain marked stuck, or None. May lie in the past: the
        domain is then due for a retry on the next tick."""
        memo = self.domains.get(uuid)
        return None if memo is None else memo.stuck_until

    def promised(self, uuid: str, current: int) -> int:
        """Bytes promised to `uuid` (a growing target issued earlier) and not yet taken."""
        memo = self.domains.get(uuid)
        return 0 if memo is None else memo.promised(current)

    def forget(self, uuid: str) -> ControllerState:
        """The domain is gone (undefined, or its UUID no longer listed): drop its memo."""
        if uuid not in self.domains and uuid not in self.backing:
            return self
        return ControllerState.of(
            {k: v for k, v in self.domains.items() if k != uuid},
            {k: v for k, v in self.backing.items() if k != uuid},
        )

    def forget_target(self, uuid: str) -> ControllerState:
        """The daemon could not apply (or, in a dry run, did not apply) the last target:
        drop it so it neither counts as promised nor feeds stuck detection."""
        memo = self.domains.get(uuid)
        if memo is None or memo.target is None:
            return self
        cleared = memo._replace(target=None, target_at=None, mark_current=None, mark_at=None)
        return ControllerState.of({**self.domains, uuid: cleared}, dict(self.backing))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: {"version": 1, "domains": {uuid: {field: value, ...}}, "backing":
        {uuid: [domain id, overhead, current]}} (None omitted)."""
        out: dict[str, dict[str, Any]] = {}
        for uuid, memo in self.domains.items():
            entry = {
                name: getattr(memo, name)
                for name in _MEMO_FIELDS
                if getattr(memo, name) is not None and (name != "strikes" or memo.strikes)
            }
            out[uuid] = entry
        backing = {uuid: list(b) for uuid, b in self.backing.items()}
        return {"version": STATE_VERSION, "domains": out, "backing": backing}

    @classmethod
    def from_dict(cls, data: object) -> ControllerState:
        """Rebuild from `to_dict()` output. Never raises: garbage gives an empty state and a
        malformed entry is dropped (the domain then starts from scratch, which is safe)."""
        if not isinstance(data, Mapping):
            return cls.empty()
        raw = data.get("domains")
        if not isinstance(raw, Mapping):
            return cls.empty()
        domains: dict[str, DomainMemo] = {}
        for uuid, entry in raw.items():
            memo = _memo_from(entry)
            if isinstance(uuid, str) and 0 < len(uuid) <= 128 and memo is not None:
                domains[uuid] = memo
        return cls.of(domains, _backing_from(data.get("backing")))


def _backing_from(raw: object) -> dict[str, Backing]:
    """Learned QEMU overheads; a malformed entry is dropped (it is learned again)."""
    out: dict[str, Backing] = {}
    if not isinstance(raw, Mapping):
        return out
    for uuid, entry in raw.items():
        if not isinstance(uuid, str) or not 0 < len(uuid) <= 128:
            continue
        if not isinstance(entry, list | tuple) or len(entry) != 3:
            continue
        domain_id, overhead, current = entry
        if domain_id is not None and _clean_int(domain_id) is None:
            continue
        if _clean_int(overhead) is None or _clean_int(current) is None:
            continue
        out[uuid] = Backing(domain_id, overhead, current)
    return out


def _memo_from(entry: object) -> DomainMemo | None:
    if not isinstance(entry, Mapping):
        return None
    values: dict[str, Any] = {}
    for name, value in entry.items():
        if name not in _MEMO_FIELDS:
            return None
        clean = _clean_int(value) if name in _INT_FIELDS else _clean_time(value)
        if clean is None and value is not None:
            return None
        values[name] = clean
    if values.get("strikes") is None:
        values["strikes"] = 0
    values["strikes"] = min(values["strikes"], 64)
    return DomainMemo(**values)


def _clean_int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value <= MAX_SIZE else None


def _clean_time(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and 0.0 <= number < 1e12 else None
