"""Per-domain and host metric families, built from one Snapshot and one Decision.

Pure functions of their inputs (plus `now` for ages): the collector calls them at scrape time,
and tests call them with hand-made values. Every family is labelled by `domain`, the libvirt
name, so PromQL can join these series with the common libvirt exporters.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from balloond.model import Decision, DomainDecision, DomainSnapshot, GuestReport, Snapshot

DOMAIN = ["domain"]


@dataclass(frozen=True, slots=True)
class DomainInputs:
    """What the view knows beyond the snapshot, joined by UUID."""

    decisions: Mapping[str, DomainDecision]
    reports: Mapping[str, GuestReport]
    holds: frozenset[str]
    stuck: frozenset[str]


def _gauge(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=DOMAIN if labels is None else labels)


def domain_families(snapshot: Snapshot, inputs: DomainInputs, now: float) -> Iterator[Metric]:
    """One family per quantity, each with one sample per domain that has a value for it."""
    current = _gauge("balloond_domain_current_bytes", "Balloon size now.")
    target = _gauge("balloond_domain_target_bytes", "Balloon target the daemon decided.")
    floor = _gauge("balloond_domain_floor_bytes", "Smallest size the domain's policy allows.")
    ceiling = _gauge("balloond_domain_ceiling_bytes", "Largest size the domain's policy allows.")
    maxmem = _gauge("balloond_domain_maxmem_bytes", "Hypervisor maximum memory of the domain.")
    demand = _gauge("balloond_domain_demand_bytes", "Estimated memory the guest needs.")
    available = _gauge(
        "balloond_domain_available_bytes", "Memory the guest reports available (MemAvailable)."
    )
    psi_some = _gauge(
        "balloond_domain_pressure_some_ratio",
        "Share of time some guest task stalled on memory (PSI some), 0-1.",
    )
    psi_full = _gauge(
        "balloond_domain_pressure_full_ratio",
        "Share of time all guest tasks stalled on memory (PSI full), 0-1.",
    )
    swap_in = CounterMetricFamily(
        "balloond_domain_swap_in_bytes", "Bytes the guest swapped in since boot.", labels=DOMAIN
    )
    swap_out = CounterMetricFamily(
        "balloond_domain_swap_out_bytes", "Bytes the guest swapped out since boot.", labels=DOMAIN
    )
    faults = CounterMetricFamily(
        "balloond_domain_major_faults", "Major page faults in the guest since boot.", labels=DOMAIN
    )
    report_age = _gauge(
        "balloond_domain_report_age_seconds", "Seconds since the guest agent's last report."
    )
    info = _gauge(
        "balloond_domain_info",
        "Constant 1: the domain's UUID and policy.",
        ["domain", "uuid", "policy"],
    )
    state = _gauge(
        "balloond_domain_state",
        "Constant 1, labelled with the domain's state.",
        ["domain", "state"],
    )
    reason = _gauge(
        "balloond_domain_decision_reason",
        "Constant 1, labelled with the reason of the domain's last decision.",
        ["domain", "reason"],
    )
    held = _gauge("balloond_domain_held", "1 while an operator hold keeps the daemon away.")
    stuck = _gauge("balloond_domain_stuck", "1 while the balloon is excluded as stuck.")

    for dom in snapshot.domains:
        name = [dom.name]
        decided = inputs.decisions.get(dom.uuid)
        report = inputs.reports.get(dom.uuid, dom.report)
        current.add_metric(name, dom.current)
        maxmem.add_metric(name, dom.maxmem)
        state.add_metric([dom.name, dom.state.value], 1)
        held.add_metric(name, 1 if dom.uuid in inputs.holds else 0)
        stuck.add_metric(name, 1 if dom.uuid in inputs.stuck else 0)
        info.add_metric([dom.name, dom.uuid, decided.policy if decided else ""], 1)
        if decided is not None:
            target.add_metric(name, decided.target)
            floor.add_metric(name, decided.floor)
            ceiling.add_metric(name, decided.ceiling)
            reason.add_metric([dom.name, decided.reason.value], 1)
        _maybe(demand, name, decided.demand if decided else None, report and report.demand)
        _maybe(available, name, report and report.mem_available, _stat(dom, "available"))
        _maybe(psi_some, name, report and report.psi_some)
        _maybe(psi_full, name, report and report.psi_full)
        _maybe(swap_in, name, _stat(dom, "swap_in"))
        _maybe(swap_out, name, _stat(dom, "swap_out"))
        _maybe(faults, name, _stat(dom, "major_faults"))
        if report is not None:
            report_age.add_metric(name, max(0.0, now - report.received_at))
    yield from (
        current, target, floor, ceiling, maxmem, demand, available, psi_some, psi_full,
        swap_in, swap_out, faults, report_age, info, state, reason, held, stuck,
    )  # fmt: skip


def _stat(dom: DomainSnapshot, field_name: str) -> int | None:
    value: int | None = getattr(dom.stats, field_name) if dom.stats is not None else None
    return value


def _maybe(
    family: GaugeMetricFamily | CounterMetricFamily, labels: list[str], *values: object
) -> None:
    """Add the first value that is a number; emit nothing when none is (no fake zeros)."""
    for value in values:
        if isinstance(value, int | float) and not isinstance(value, bool):
            family.add_metric(labels, float(value))
            return


def host_families(
    snapshot: Snapshot | None, decision: Decision | None, reserve: int
) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "balloond_host_reserve_bytes", "Host memory the daemon never hands out.", value=reserve
    )
    if snapshot is None:
        return
    host = snapshot.host
    targets = {d.uuid: d.target for d in decision.domains} if decision else {}
    maxmem_sum = sum(d.maxmem for d in snapshot.domains)
    yield GaugeMetricFamily("balloond_host_total_bytes", "Host memory.", value=host.total)
    yield GaugeMetricFamily(
        "balloond_host_free_bytes", "Host memory still free to hand to guests.", value=host.free
    )
    yield GaugeMetricFamily(
        "balloond_host_targets_bytes",
        "Sum of the domains' balloon targets (current size where no target was decided).",
        value=sum(targets.get(d.uuid, d.current) for d in snapshot.domains),
    )
    yield GaugeMetricFamily(
        "balloond_host_reclaimed_bytes",
        "Memory the balloons hold back from the guests: sum of maxmem minus current.",
        value=sum(max(0, d.maxmem - d.current) for d in snapshot.domains),
    )
    yield GaugeMetricFamily(
        "balloond_host_overcommit_ratio",
        "Sum of the domains' maxmem over host memory (above 1 means overcommitted).",
        value=maxmem_sum / host.total if host.total > 0 else 0.0,
    )
    yield GaugeMetricFamily(
        "balloond_domains", "Domains in the last snapshot.", value=len(snapshot.domains)
    )
    if decision is not None:
        yield GaugeMetricFamily(
            "balloond_host_budget_bytes",
            "Memory the last decision could still have granted above the reserve.",
            value=decision.budget,
        )
