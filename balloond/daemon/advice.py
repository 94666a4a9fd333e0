"""What a first `balloond run --dry-run --once` tells an operator when it cannot decide.

A domain without fresh data is kept where it is ("no data"). The usual cause on a new host
is that the virtio-balloon statistics period is off (libvirt's default): the guest then
reports nothing, and a dry run, which changes nothing, does not turn it on the way the
daemon does. This says so per domain, and gives the one command that fixes it.
"""

from __future__ import annotations

from collections.abc import Sequence

from balloond.model import Decision, DomainSnapshot, Reason, Snapshot


def statistics_off(domain: DomainSnapshot) -> bool:
    """No balloon statistics at all, or none the guest ever updated: the period is off."""
    return domain.stats is None or domain.stats.last_update is None


def no_data_advice(
    snapshot: Snapshot, decision: Decision, uri: str, period: int, *, dry_run: bool
) -> list[str]:
    """Lines for the operator, empty when every domain had data to decide from."""
    by_uuid = {domain.uuid: domain for domain in snapshot.domains}
    blind = [
        by_uuid[d.uuid]
        for d in decision.domains
        if d.reason is Reason.NO_DATA and d.uuid in by_uuid
    ]
    if not blind:
        return []
    off = [d for d in blind if statistics_off(d)]
    stale = [d for d in blind if not statistics_off(d)]
    lines = [f"{len(blind)} of {len(snapshot.domains)} domains have nothing to decide from:"]
    lines += [
        f"  {d.name}: no balloon statistics (the statistics period is off) and no guest agent"
        for d in off
    ]
    lines += [
        f"  {d.name}: balloon statistics the guest has not updated lately and no guest agent "
        "(the period is off, or virtio_balloon is not loaded in the guest)"
        for d in stale
    ]
    lines += _fix(blind, uri, period, dry_run=dry_run)
    lines.append(
        "The guest agent adds pressure (PSI) and real demand: balloonctl agent-snippet DOMAIN "
        "--apply on the host, balloond-guest in the guest (README, 'The guest side')."
    )
    return lines


def _fix(off: Sequence[DomainSnapshot], uri: str, period: int, *, dry_run: bool) -> list[str]:
    when = (
        "balloond turns the period on itself when it runs for real; a dry run changes "
        "nothing, so turn it on now with"
        if dry_run
        else f"balloond has just turned the period on where it was off: statistics arrive "
        f"within {period} s (run it again); if they do not, turn it on yourself with"
    )
    if len(off) == 1:
        command = f"virsh -c {uri} dommemstat {off[0].name} --period {period} --live --config"
    else:
        command = (
            f"for d in $(virsh -c {uri} list --name); do "
            f'virsh -c {uri} dommemstat "$d" --period {period} --live --config; done'
        )
    return [f"{when}:", f"  {command}"]
