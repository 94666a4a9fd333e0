"""Per-domain and host metric families, built from one Snapshot and one Decision.

Pure functions of their inputs (plus `now` for ages): the collector calls them at scrape time,
and tests call them with hand-made values. Every per-domain family is labelled by `domain`,
the libvirt name, so PromQL can join these series with the common libvirt exporters. A value
the daemon does not have (no guest report, no balloon statistics) gives no sample, never a
fake zero.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from balloond.metrics.families import Family, counter, gauge
from balloond.model import Decision, DomainDecision, GuestReport, Snapshot

DOMAIN = ("domain",)


@dataclass(frozen=True, slots=True)
class DomainInputs:
    """What the view knows beyond the snapshot, joined by UUID."""

    decisions: Mapping[str, DomainDecision]
    reports: Mapping[str, GuestReport]
    holds: frozenset[str]
    stuck: frozenset[str]


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return None


class _DomainFamilies:
    """All per-domain families of one scrape, filled domain by domain."""

    def __init__(self) -> None:
        g, c = gauge, counter
        self.current = g("balloond_domain_current_bytes", "Balloon size now.", DOMAIN)
        self.target = g(
            "balloond_domain_target_bytes", "Balloon target the daemon decided.", DOMAIN
        )
        self.floor = g(
            "balloond_domain_floor_bytes", "Smallest size the domain's policy allows.", DOMAIN
        )
        self.ceiling = g(
            "balloond_domain_ceiling_bytes", "Largest size the domain's policy allows.", DOMAIN
        )
        self.maxmem = g(
            "balloond_domain_maxmem_bytes", "Hypervisor maximum memory of the domain.", DOMAIN
        )
        self.demand = g("balloond_domain_demand_bytes", "Estimated memory the guest needs.", DOMAIN)
        self.fair_share = g(
            "balloond_domain_fair_share_bytes",
            "What the domain's weight entitles it to this tick (its need when the host has room).",
            DOMAIN,
        )
        self.available = g(
            "balloond_domain_available_bytes",
            "Memory the guest reports available (MemAvailable).",
            DOMAIN,
        )
        self.psi_some = g(
            "balloond_domain_pressure_some_ratio",
            "Share of time some guest task stalled on memory (PSI some), 0-1.",
            DOMAIN,
        )
        self.psi_full = g(
            "balloond_domain_pressure_full_ratio",
            "Share of time all guest tasks stalled on memory (PSI full), 0-1.",
            DOMAIN,
        )
        self.swap_in = c(
            "balloond_domain_swap_in_bytes", "Bytes the guest swapped in since boot.", DOMAIN
        )
        self.swap_out = c(
            "balloond_domain_swap_out_bytes", "Bytes the guest swapped out since boot.", DOMAIN
        )
        self.faults = c(
            "balloond_domain_major_faults", "Major page faults in the guest since boot.", DOMAIN
        )
        self.report_age = g(
            "balloond_domain_report_age_seconds",
            "Seconds since the guest agent's last report.",
            DOMAIN,
        )
        self.info = g(
            "balloond_domain_info",
            "Constant 1: the domain's UUID and policy.",
            ("domain", "uuid", "policy"),
        )
        self.state = g(
            "balloond_domain_state",
            "Constant 1, labelled with the domain's state.",
            ("domain", "state"),
        )
        self.reason = g(
            "balloond_domain_decision_reason",
            "Constant 1, labelled with the reason of the domain's last decision.",
            ("domain", "reason"),
        )
        self.held = g(
            "balloond_domain_held", "1 while an operator hold keeps the daemon away.", DOMAIN
        )
        self.stuck = g("balloond_domain_stuck", "1 while the balloon is excluded as stuck.", DOMAIN)

    def all(self) -> tuple[Family, ...]:
        return (
            self.current,
            self.target,
            self.floor,
            self.ceiling,
            self.maxmem,
            self.demand,
            self.fair_share,
            self.available,
            self.psi_some,
            self.psi_full,
            self.swap_in,
            self.swap_out,
            self.faults,
            self.report_age,
            self.info,
            self.state,
            self.reason,
            self.held,
            self.stuck,
        )


def domain_families(snapshot: Snapshot, inputs: DomainInputs, now: float) -> Iterator[Family]:
    """One family per quantity, each with one sample per domain that has a value for it."""
    f = _DomainFamilies()
    for dom in snapshot.domains:
        label = (dom.name,)
        decided = inputs.decisions.get(dom.uuid)
        report = inputs.reports.get(dom.uuid, dom.report)
        stats = dom.stats
        f.current.add(label, dom.current)
        f.maxmem.add(label, dom.maxmem)
        f.state.add((dom.name, dom.state.value), 1)
        f.held.add(label, 1 if dom.uuid in inputs.holds else 0)
        f.stuck.add(label, 1 if dom.uuid in inputs.stuck else 0)
        f.info.add((dom.name, dom.uuid, decided.policy if decided else ""), 1)
        demand = None
        if decided is not None:
            f.target.add(label, decided.target)
            f.floor.add(label, decided.floor)
            f.ceiling.add(label, decided.ceiling)
            f.reason.add((dom.name, decided.reason.value), 1)
            demand = _number(decided.demand)
            _maybe(f.fair_share, label, decided.fair_share)
        available = None
        if report is not None:
            f.report_age.add(label, max(0.0, now - report.received_at))
            demand = demand if demand is not None else _number(report.demand)
            available = _number(report.mem_available)
            _maybe(f.psi_some, label, report.psi_some)
            _maybe(f.psi_full, label, report.psi_full)
        if stats is not None:
            available = available if available is not None else _number(stats.available)
            _maybe(f.swap_in, label, stats.swap_in)
            _maybe(f.swap_out, label, stats.swap_out)
            _maybe(f.faults, label, stats.major_faults)
        _maybe(f.demand, label, demand)
        _maybe(f.available, label, available)
    yield from f.all()


def _maybe(family: Family, labels: tuple[str, ...], value: object) -> None:
    number = _number(value)
    if number is not None:
        family.samples.append((labels, number))


def host_families(
    snapshot: Snapshot | None, decision: Decision | None, reserve: int
) -> Iterator[Family]:
    yield gauge(
        "balloond_host_reserve_bytes", "Host memory the daemon never hands out.", value=reserve
    )
    if snapshot is None:
        return
    host = snapshot.host
    targets = {d.uuid: d.target for d in decision.domains} if decision else {}
    maxmem_sum = sum(d.maxmem for d in snapshot.domains)
    yield gauge("balloond_host_total_bytes", "Host memory.", value=host.total)
    yield gauge(
        "balloond_host_free_bytes", "Host memory still free to hand to guests.", value=host.free
    )
    yield gauge(
        "balloond_host_targets_bytes",
        "Sum of the domains' balloon targets (current size where no target was decided).",
        value=sum(targets.get(d.uuid, d.current) for d in snapshot.domains),
    )
    yield gauge(
        "balloond_host_reclaimed_bytes",
        "Memory the balloons hold back from the guests: sum of maxmem minus current.",
        value=sum(max(0, d.maxmem - d.current) for d in snapshot.domains),
    )
    yield gauge(
        "balloond_host_overcommit_ratio",
        "Sum of the domains' maxmem over host memory (above 1 means overcommitted).",
        value=maxmem_sum / host.total if host.total > 0 else 0.0,
    )
    yield gauge("balloond_domains", "Domains in the last snapshot.", value=len(snapshot.domains))
    if decision is not None:
        yield gauge(
            "balloond_host_budget_bytes",
            "Memory the last decision could still have granted above the reserve.",
            value=decision.budget,
        )
