"""Text rendering for `balloonctl list`, `explain`, `status` and `holds`.

Input is the JSON-able dicts of `balloond.daemon.present` (sizes in bytes), whether they came
over the control socket or were computed in-process, so both paths print the same.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Mapping, Sequence
from typing import Any

from balloond.units import MiB, format_size

# xm list shows six state flags, each in its own position: r b p s c d.
_FLAG_POSITIONS = "rbpscd"

# xm/xl list's six columns first, in their order (Mem in MiB, as they print it), so a Xen
# operator's eyes and scripts (`awk '{print $3}'`) find them where they always were.
LIST_COLUMNS = (
    "Name",
    "ID",
    "Mem",
    "VCPUs",
    "State",
    "Time(s)",
    "MaxMem",
    "Target",
    "Policy",
    "Pressure",
    "Floor",
    "Ceiling",
    "Hold",
    "Report",
)


def mib(size: object) -> str:
    return "-" if not isinstance(size, int) else str(size // MiB)


def size(value: object) -> str:
    return "-" if not isinstance(value, int) else format_size(value)


def pct(ratio: object) -> str:
    return "-" if not isinstance(ratio, int | float) else f"{ratio * 100:.1f}%"


def age(seconds: object) -> str:
    if not isinstance(seconds, int | float):
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.0f}h"


def state_flags(letter: object) -> str:
    """xm's six-column State: 'r-----' for running, '--p---' for paused, '------' shut off."""
    flags = ["-"] * len(_FLAG_POSITIONS)
    if isinstance(letter, str) and letter in _FLAG_POSITIONS:
        flags[_FLAG_POSITIONS.index(letter)] = letter
    return "".join(flags)


def hold_text(hold: object) -> str:
    if not isinstance(hold, Mapping):
        return "-"
    remaining = hold.get("remaining")
    pinned = f"@{mib(hold.get('target'))}" if isinstance(hold.get("target"), int) else ""
    left = "" if remaining is None else f" {age(remaining)}"
    return f"{hold.get('owner') or 'held'}{pinned}{left}"


def list_table(rows: Sequence[Mapping[str, Any]]) -> str:
    table = [LIST_COLUMNS]
    for row in sorted(rows, key=_by_id):  # as xm list: by domain id
        job = f" ({row['job']})" if row.get("job") else ""
        table.append(
            (
                str(row.get("name", "?")),
                "-" if row.get("id") is None else str(row["id"]),
                mib(row.get("mem")),
                str(row.get("vcpus", "-")),
                state_flags(row.get("state")) + job,
                f"{row.get('time', 0.0):.1f}" if isinstance(row.get("time"), int | float) else "-",
                mib(row.get("maxmem")),
                mib(row.get("target")),
                str(row.get("policy") or "-"),
                pct(row.get("pressure")),
                mib(row.get("floor")),
                mib(row.get("ceiling")),
                hold_text(row.get("hold"))
                if row.get("hold")
                else ("stuck" if row.get("stuck_until") else "-"),
                age(row.get("report_age")),
            )
        )
    return _columns(table, numeric={1, 2, 3, 5, 6, 7, 9, 10, 11})


def _by_id(row: Mapping[str, Any]) -> tuple[bool, int, str]:
    dom_id = row.get("id")
    if isinstance(dom_id, int) and not isinstance(dom_id, bool):
        return (False, dom_id, str(row.get("name", "")))
    return (True, 0, str(row.get("name", "")))


def _columns(table: Sequence[Sequence[str]], numeric: set[int]) -> str:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = []
    for row in table:
        cells = [
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def explanation(answer: Mapping[str, Any]) -> str:
    dom = answer.get("domain") or {}
    lines = [
        f"{dom.get('name')}  (uuid {dom.get('uuid')}, id {dom.get('id', '-')}) on "
        f"{answer.get('uri', '?')}",
        f"  state {dom.get('state')}{' (' + dom['job'] + ' job)' if dom.get('job') else ''};"
        f" current {size(dom.get('current'))}, maxmem {size(dom.get('maxmem'))}"
        + (f", tags {', '.join(dom['tags'])}" if dom.get("tags") else ""),
        "",
        "Inputs",
        *_stats_lines(answer.get("stats")),
        *_report_lines(answer.get("report")),
        "",
        *_policy_lines(answer.get("policy") or {}),
        "",
        *_decision_lines(answer),
    ]
    return "\n".join(lines)


def _stats_lines(stats: object) -> list[str]:
    if not isinstance(stats, Mapping):
        return ["  balloon statistics: none (no virtio-balloon stats: period off?)"]
    fields = [
        f"{label} {size(stats.get(key))}"
        for key, label in (
            ("total", "total"),
            ("available", "available"),
            ("unused", "free"),
            ("disk_caches", "cache"),
        )
    ]
    counters = (
        f"swap in {stats.get('swap_in', '-')}, swap out {stats.get('swap_out', '-')}, "
        f"major faults {stats.get('major_faults', '-')} (cumulative)"
    )
    return [
        f"  balloon statistics (age {age(stats.get('age'))}): {', '.join(fields)}",
        f"    {counters}",
    ]


def _report_lines(report: object) -> list[str]:
    if not isinstance(report, Mapping):
        return ["  guest report: none (no guest agent, or it is silent)"]
    parts = [
        f"demand {size(report.get('demand'))}",
        f"available {size(report.get('mem_available'))}",
        f"PSI some {pct(report.get('psi_some'))}",
    ]
    if report.get("requested_target") is not None:
        parts.append(f"asks for {size(report.get('requested_target'))}")
    return [
        f"  guest report #{report.get('seq')} (age {age(report.get('age'))}, agent "
        f"{report.get('agent_version') or '?'}): {', '.join(parts)}"
    ]


def _policy_lines(policy: Mapping[str, Any]) -> list[str]:
    knobs = policy.get("knobs") or {}
    knob_text = ", ".join(f"{k} {v}" for k, v in knobs.items())
    return [
        f"Policy {policy.get('name')} ({policy.get('source')}), chosen by {policy.get('selector')}",
        *textwrap.wrap(knob_text, width=96, initial_indent="  ", subsequent_indent="  "),
    ]


def _decision_lines(answer: Mapping[str, Any]) -> list[str]:
    decision = answer.get("decision")
    lines = []
    if not isinstance(decision, Mapping):
        lines.append("Decision: none yet (no tick has seen this domain)")
    else:
        acting = "set now" if decision.get("act") else "no change this tick"
        lines += [
            f"Decision: {decision.get('reason')}: target {size(decision.get('target'))} "
            f"({acting}); floor {size(decision.get('floor'))}, ceiling "
            f"{size(decision.get('ceiling'))}, demand {size(decision.get('demand'))}, "
            f"fair share {size(decision.get('fair_share'))}, "
            f"pressure {pct(decision.get('pressure'))}",
            f"  {decision.get('explanation')}",
        ]
    if answer.get("hold"):
        lines.append(f"Hold: {hold_text(answer['hold'])} ({answer['hold'].get('reason')})")
    if answer.get("stuck_until"):
        lines.append(f"Stuck: excluded until {_clock(answer['stuck_until'])}")
    host = answer.get("host")
    if isinstance(host, Mapping):
        lines.append(
            f"Host: free {size(host.get('free'))}, reserve {size(host.get('reserve'))}"
            f", left to grant after this tick {size(host.get('budget'))}"
        )
        lines += [f"  note: {note}" for note in host.get("notes") or ()]
    return lines


def _clock(epoch: object) -> str:
    if not isinstance(epoch, int | float):
        return "-"
    return time.strftime("%H:%M:%S", time.localtime(epoch))


def staleness(answer: Mapping[str, Any]) -> str | None:
    """A warning when the daemon answered from an old view (its hypervisor link is down)."""
    if answer.get("connected", True) is not False:
        return None
    taken, now = answer.get("taken_at"), answer.get("now")
    when = "nothing yet"
    if isinstance(taken, int | float) and isinstance(now, int | float):
        when = f"what it saw {age(max(0.0, now - taken))} ago"
    return f"note: balloond has lost {answer.get('uri', 'its hypervisor')}; showing {when}"


def holds_table(holds: Sequence[Mapping[str, Any]]) -> str:
    if not holds:
        return "no holds"
    table = [("Name", "Owner", "Pinned(MiB)", "Left", "Pid", "Reason")]
    for hold in holds:
        left = hold.get("remaining")
        table.append(
            (
                str(hold.get("name") or hold.get("uuid")),
                str(hold.get("owner") or "-"),
                mib(hold.get("target")),
                "until released" if left is None else age(left),
                str(hold.get("pid") or "-"),
                str(hold.get("reason") or "-"),
            )
        )
    return _columns(table, numeric={2})


def status(answer: Mapping[str, Any]) -> str:
    connected = "connected" if answer.get("connected") else "NOT connected (retrying)"
    last = answer.get("last_tick_at")
    failures = answer.get("failures") or {}
    lines = [
        f"balloond {answer.get('version')} (pid {answer.get('pid')}): {answer.get('uri')} "
        f"{connected}{'; DRY RUN' if answer.get('dry_run') else ''}",
        f"  up {age(answer.get('uptime'))}, {answer.get('ticks')} ticks "
        f"({answer.get('tick_failures')} failed), last good tick at {_clock(last)}, "
        f"every {answer.get('interval', '?')} s",
        f"  {answer.get('domains')} domains, {answer.get('actions_last_tick')} adjusted last "
        f"tick, {answer.get('adjustments')} adjustments in all; {answer.get('holds')} held, "
        f"{answer.get('stuck')} stuck",
        f"  host free {size(answer.get('host_free'))} of {size(answer.get('host_total'))}, "
        f"reserve {size(answer.get('reserve'))}, left to grant {size(answer.get('budget'))}",
        f"  policies: {', '.join(answer.get('policies') or [])} "
        f"(from {answer.get('policy_dir') or 'built-in'}; {answer.get('policy_reloads')} "
        f"loads, {answer.get('policy_errors')} errors)",
        f"  reconnects {answer.get('reconnects')}; failures "
        + (", ".join(f"{k} {v}" for k, v in sorted(failures.items())) or "none"),
    ]
    if answer.get("last_policy_error"):
        lines.append(f"  last policy error: {answer['last_policy_error']}")
    if answer.get("state_write_failures"):
        lines.append(f"  state file: {answer['state_write_failures']} writes failed")
    if answer.get("last_state_error"):
        lines.append(f"  state file NOT written: {answer['last_state_error']}")
    return "\n".join(lines)
