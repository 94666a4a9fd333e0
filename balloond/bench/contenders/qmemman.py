"""Qubes qmemman (QubesOS/qubes-core-admin qubes/qmemman/algo.py, systemstate.py;
qubes-linux-utils qmemman/meminfo-writer.c; figures in shared/notes/anchors.md "Qubes").

Needs its in-guest meminfo writer: it uses the guest agent's report (a guest without one is
left alone, as qmemman leaves domains without meminfo). The writer publishes
`used = current - MemFree - Cached + SwapTotal - SwapFree` only when it changed by more than
30000 KiB; qmemman balances only on such a change (no timer). Preferred size
`pref = max(200 MiB, min(maxmem, 1.3 * used))`. With enough memory every guest gets
`0.999 * (pref + pref / Σ pref * available)`; when short, donors with more than 10 MiB over
their pref are cut to pref and acceptors wait. It acts only when significant, keeps 50 MiB
free (on top of the operator's reserve) and counts targets above current as already taken.
"""

from __future__ import annotations

from collections.abc import Mapping

from balloond.bench.contenders.base import Observation, running
from balloond.model import DomainSnapshot
from balloond.sim.scenario import Scenario
from balloond.units import KiB, MiB

MIN_PREF = 200 * MiB
PREF_FACTOR = 1.3
XEN_FREE_FACTOR = 1.00781  # Xen free memory / this
KEEP_FREE = 50 * MiB
WRITE_THRESHOLD = 30000 * KiB  # meminfo-writer: publish when used changed by more than this
DONOR_MIN = 10 * MiB
LOW_FREE = 35 * MiB  # significant: free below this
GAIN_SIGNIFICANT = 15 * MiB  # significant: a domain below pref would gain this much
TOTAL_SIGNIFICANT = 150 * MiB  # significant: total change above this


class Qmemman:
    name = "qmemman"
    interval = 1.0  # the writer polls every 100 ms; one step of the simulation is enough
    uses_reports = True

    def __init__(self, scenario: Scenario) -> None:
        del scenario
        self.published: dict[str, int] = {}
        self.targets: dict[str, int] = {}

    def decide(self, obs: Observation) -> Mapping[str, int]:
        changed = False
        domains = [d for d in running(obs) if d.report is not None]
        for dom in domains:
            used = _used(dom)
            if used is None:
                continue
            old = self.published.get(dom.name)
            if old is None or abs(used - old) > WRITE_THRESHOLD:
                self.published[dom.name] = used
                changed = True
        if not changed:
            return {}
        known = [d for d in domains if d.name in self.published]
        promised = sum(max(0, self.targets.get(d.name, d.current) - d.current) for d in known)
        free = int(obs.snapshot.host.free / XEN_FREE_FACTOR) - promised - obs.reserve - KEEP_FREE
        targets = self._balance(known, free)
        if not self._significant(known, targets, free):
            return {}
        self.targets.update(targets)
        return targets

    def _pref(self, dom: DomainSnapshot) -> int:
        return int(max(MIN_PREF, min(dom.maxmem, PREF_FACTOR * self.published[dom.name])))

    def _balance(self, domains: list[DomainSnapshot], free: int) -> dict[str, int]:
        prefs = {d.name: self._pref(d) for d in domains}
        available = free + sum(d.current - prefs[d.name] for d in domains)
        if available >= 0:
            total = sum(prefs.values())
            return {
                d.name: min(
                    d.maxmem, int(0.999 * (prefs[d.name] + prefs[d.name] / total * available))
                )
                for d in domains
            }
        # Low memory: only donors give, down to their pref; acceptors wait.
        return {d.name: prefs[d.name] for d in domains if d.current - prefs[d.name] > DONOR_MIN}

    def _significant(
        self, domains: list[DomainSnapshot], targets: dict[str, int], free: int
    ) -> bool:
        if free < LOW_FREE:
            return True
        total = sum(abs(targets[d.name] - d.current) for d in domains if d.name in targets)
        if total > TOTAL_SIGNIFICANT:
            return True
        return any(
            d.current < self._pref(d) and targets.get(d.name, 0) - d.current > GAIN_SIGNIFICANT
            for d in domains
        )


def _used(dom: DomainSnapshot) -> int | None:
    report = dom.report
    if report is None or None in (
        report.mem_total,
        report.mem_available,
        report.cached,
        report.swap_total,
        report.swap_free,
    ):
        return None
    assert report.mem_available is not None and report.cached is not None
    assert report.swap_total is not None and report.swap_free is not None
    mem_free = report.mem_available - report.cached  # MemAvailable ≈ MemFree + Cached here
    return dom.current - mem_free - report.cached + report.swap_total - report.swap_free
