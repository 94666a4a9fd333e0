"""What `balloonctl list`, `explain`, `status` and `holds` show, as plain JSON-able dicts.

Pure functions of what a daemon has seen (`DaemonView`) and its policies. The control socket
serves them from the running daemon; without a daemon, `balloonctl` runs one dry tick and
calls the same functions, so both paths show the same thing. Sizes are int bytes; the CLI
renders units.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from balloond import __version__
from balloond.model import LETTERS, DomainDecision, DomainSnapshot, Hold
from balloond.policy.match import select_explained
from balloond.policy.model import Amount, Policy, PolicySet
from balloond.view import DaemonView


def find_domain(view: DaemonView, key: str) -> DomainSnapshot | None:
    """A domain of the last snapshot by name, UUID or numeric id."""
    snapshot = view.last_snapshot()
    if snapshot is None:
        return None
    for domain in snapshot.domains:
        if key in (domain.name, domain.uuid) or (domain.id is not None and key == str(domain.id)):
            return domain
    return None


def decision_for(view: DaemonView, uuid: str) -> DomainDecision | None:
    decision = view.last_decision()
    if decision is None:
        return None
    return next((d for d in decision.domains if d.uuid == uuid), None)


def hold_dict(hold: Hold | None, now: float) -> dict[str, Any] | None:
    if hold is None:
        return None
    remaining = None if hold.until is None else max(0.0, hold.until - now)
    return {**asdict(hold), "remaining": remaining}


def list_rows(view: DaemonView, now: float) -> list[dict[str, Any]]:
    snapshot = view.last_snapshot()
    if snapshot is None:
        return []
    holds, stuck, reports = view.holds(), view.stuck(), view.reports()
    decision = view.last_decision()
    decided_by_uuid = {d.uuid: d for d in decision.domains} if decision is not None else {}
    rows = []
    for domain in snapshot.domains:
        decided = decided_by_uuid.get(domain.uuid)
        report = reports.get(domain.uuid) or domain.report
        rows.append(
            {
                "name": domain.name,
                "id": domain.id,
                "uuid": domain.uuid,
                "mem": domain.current,
                "maxmem": domain.maxmem,
                "target": decided.target if decided else None,
                "vcpus": domain.vcpus,
                "state": LETTERS.get(domain.state, "-"),
                "state_name": domain.state.value,
                "job": domain.job.value if domain.job else None,
                "time": domain.cpu_time,
                "policy": decided.policy if decided else None,
                "pressure": decided.pressure if decided else None,
                "floor": decided.floor if decided else None,
                "ceiling": decided.ceiling if decided else None,
                "reason": decided.reason.value if decided else None,
                "hold": hold_dict(holds.get(domain.uuid), now),
                "stuck_until": stuck.get(domain.uuid),
                "report_age": None if report is None else max(0.0, now - report.received_at),
            }
        )
    return rows


def amount_text(amount: Amount | None, of: str) -> str | None:
    if amount is None:
        return None
    return f"{amount} of {of}" if amount.ratio is not None else str(amount)


def policy_dict(policy: Policy, selector: str) -> dict[str, Any]:
    return {
        "name": policy.name,
        "source": policy.source,
        "selector": selector,
        "knobs": {
            "floor": amount_text(policy.floor, "maxmem"),
            "ceiling": amount_text(policy.ceiling, "maxmem") or "maxmem",
            "buffer": f"{policy.buffer * 100:g}%",
            "weight": policy.weight,
            "max_shrink_step": amount_text(policy.max_shrink_step, "current"),
            "max_grow_step": amount_text(policy.max_grow_step, "current") or "unlimited",
            "deadband": amount_text(policy.deadband, "current"),
            "pressure_target": f"{policy.pressure_target * 100:g}%",
            "swap_guard": policy.swap_guard,
            "self_adjust": policy.self_adjust,
            "enabled": policy.enabled,
        },
    }


def explain(view: DaemonView, policies: PolicySet, key: str, now: float) -> dict[str, Any] | None:
    """Everything behind one domain's target, or None when the domain is unknown."""
    domain = find_domain(view, key)
    if domain is None:
        return None
    policy, selector = select_explained(policies, domain)
    decided = decision_for(view, domain.uuid)
    decision = view.last_decision()
    report = view.reports().get(domain.uuid) or domain.report
    return {
        "domain": {
            "name": domain.name,
            "uuid": domain.uuid,
            "id": domain.id,
            "state": domain.state.value,
            "job": domain.job.value if domain.job else None,
            "current": domain.current,
            "maxmem": domain.maxmem,
            "persistent_maxmem": domain.persistent_maxmem,
            "tags": sorted(domain.tags),
        },
        "stats": _stats(domain, now),
        "report": None
        if report is None
        else {
            **asdict(report),
            "age": max(0.0, now - report.received_at),
        },
        "policy": policy_dict(policy, selector),
        "decision": None
        if decided is None
        else {
            "reason": decided.reason.value,
            "target": decided.target,
            "floor": decided.floor,
            "ceiling": decided.ceiling,
            "demand": decided.demand,
            "fair_share": decided.fair_share,
            "pressure": decided.pressure,
            "act": decided.act,
            "delta": decided.delta,
            "explanation": decided.explanation,
            "policy": decided.policy,
        },
        "hold": hold_dict(view.holds().get(domain.uuid), now),
        "stuck_until": view.stuck().get(domain.uuid),
        "host": None
        if decision is None
        else {
            "free": decision.host_free,
            "reserve": decision.reserve,
            "budget": decision.budget,
            "notes": list(decision.notes),
            "decided_at": decision.taken_at,
        },
    }


def _stats(domain: DomainSnapshot, now: float) -> dict[str, Any] | None:
    if domain.stats is None:
        return None
    stats = asdict(domain.stats)
    updated = domain.stats.last_update
    stats["age"] = None if updated is None else max(0.0, now - updated)
    return stats


def holds_list(view: DaemonView, now: float) -> list[dict[str, Any]]:
    names = {}
    snapshot = view.last_snapshot()
    if snapshot is not None:
        names = {d.uuid: d.name for d in snapshot.domains}
    return [
        {"uuid": uuid, "name": names.get(uuid), **(hold_dict(hold, now) or {})}
        for uuid, hold in sorted(view.holds().items())
    ]


def status(
    view: DaemonView, policies: PolicySet, extra: Mapping[str, Any], now: float
) -> dict[str, Any]:
    telemetry = view.telemetry()
    decision = view.last_decision()
    snapshot = view.last_snapshot()
    return {
        "version": __version__,
        "pid": os.getpid(),
        "uri": view.uri,
        "connected": telemetry.libvirt_up,
        "down_since": telemetry.libvirt_down_since,
        "reconnects": telemetry.reconnects,
        "started_at": telemetry.started_at,
        "uptime": max(0.0, now - telemetry.started_at) if telemetry.started_at else None,
        "ticks": telemetry.ticks,
        "tick_failures": telemetry.tick_failures,
        "last_tick_at": telemetry.last_tick_at,
        "domains": 0 if snapshot is None else len(snapshot.domains),
        "actions_last_tick": 0 if decision is None else len(decision.actions),
        "host_total": None if snapshot is None else snapshot.host.total,
        "host_free": None if snapshot is None else snapshot.host.free,
        "reserve": view.reserve,
        "budget": None if decision is None else decision.budget,
        "holds": len(view.holds()),
        "stuck": len(view.stuck()),
        "policies": [p.name for p in policies.policies] + ["default"],
        "policy_files": list(policies.files),
        "policy_reloads": telemetry.policy_reloads,
        "policy_errors": telemetry.policy_errors,
        "last_policy_error": telemetry.last_policy_error,
        "state_write_failures": telemetry.state_write_failures,
        "last_state_error": telemetry.last_state_error,
        "adjustments": sum(telemetry.adjustments.values()),
        "failures": dict(telemetry.failures),
        **extra,
    }
