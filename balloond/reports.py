"""Guest agent reports: one untrusted line in, a sanitised `GuestReport` out (or a refusal).

This is the only place that reads what a guest wrote (the protocol is docs/protocol.md).
Everything in the line is a claim by a possibly hostile guest: raw values are named
`untrusted_*` until checked. The checks are cheap and happen before any allocation that
scales with the input: the line is capped at 4 KiB, nesting is refused before parsing, huge
integers and NaN/Infinity never become numbers, and every field is type- and range-checked
against the domain's own maxmem. Identity is not in the line: the caller knows which domain
the channel belongs to, and nothing here can name another one.

Refusals raise `ReportRejected(reason, message)`; `reason` is a metric label:
too_long, bad_encoding, bad_json, bad_field, version, out_of_range, stale_seq.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from balloond.errors import ReportRejected
from balloond.model import GuestReport
from balloond.units import MAX_SIZE, TiB

PROTOCOL_VERSION = 1
MAX_LINE = 4096
MAX_KEYS = 64
MAX_BRACKETS = 8  # a report is one flat object; anything deeper is not ours
MAX_INT_DIGITS = 20  # 2**64 has 20 digits: beyond that an int is an attack, not a size
MAX_SEQ = 2**63 - 1
# A restarted agent counts again from low numbers on a channel that stayed connected.
RESTART_SEQ = 1000
AGENT_TEXT = re.compile(r"^[\x20-\x7e]{0,64}$")

# Fields bounded by the domain's maxmem: a guest cannot have or want more than that.
MAXMEM_SIZES = {
    "mem_total": "mem_total",
    "mem_available": "mem_available",
    "cached": "cached",
    "shmem": "shmem",
    "demand": "demand",
    "request": "requested_target",
}
# Fields that may legitimately exceed maxmem (overcommit, swap), bounded by MAX_SIZE.
OTHER_SIZES = {"committed_as": "committed_as", "swap_total": "swap_total", "swap_free": "swap_free"}
RATIOS = {"psi_some": "psi_some", "psi_full": "psi_full", "psi_some_avg10": "psi_some_avg10"}
RATES = {  # field -> (GuestReport attribute, upper bound per second)
    "swap_in_rate": ("swap_in_rate", float(TiB)),
    "swap_out_rate": ("swap_out_rate", float(TiB)),
    "major_fault_rate": ("major_fault_rate", 1e9),
}


def parse_report(line: bytes, *, maxmem: int, now: float, previous_seq: int | None) -> GuestReport:
    """Sanitise one line (without or with its trailing newline) from a domain's channel."""
    message = _load(line)
    _check_version(message)
    seq = _seq(message.get("seq"), previous_seq)
    fields: dict[str, Any] = {"seq": seq, "received_at": now}
    fields["agent_version"] = _agent(message.get("agent", ""))
    for key, attr in MAXMEM_SIZES.items():
        fields[attr] = _size(message, key, maxmem)
    for key, attr in OTHER_SIZES.items():
        fields[attr] = _size(message, key, MAX_SIZE)
    for key, attr in RATIOS.items():
        fields[attr] = _number(message, key, 1.0)
    for key, (attr, bound) in RATES.items():
        fields[attr] = _number(message, key, bound)
    _check_consistent(fields)
    return GuestReport(**fields)


def _load(line: bytes) -> dict[str, Any]:
    if line.endswith(b"\n"):
        line = line[:-1]
    if len(line) > MAX_LINE:
        raise ReportRejected("too_long", f"report line of {len(line)} bytes exceeds {MAX_LINE}")
    if line.count(b"{") + line.count(b"[") > MAX_BRACKETS:
        raise ReportRejected("bad_json", "report nests objects or arrays; it must be flat")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReportRejected("bad_encoding", f"report is not UTF-8: {exc.reason}") from None
    try:
        untrusted = json.loads(text, parse_constant=_refuse_constant, parse_int=_bounded_int)
    except ReportRejected:
        raise
    except (ValueError, RecursionError) as exc:
        raise ReportRejected("bad_json", f"report is not JSON: {_short(exc)}") from None
    if not isinstance(untrusted, dict):
        raise ReportRejected(
            "bad_json", f"report is a JSON {type(untrusted).__name__}, not an object"
        )
    if len(untrusted) > MAX_KEYS:
        raise ReportRejected("bad_json", f"report has {len(untrusted)} keys (at most {MAX_KEYS})")
    return untrusted


def _refuse_constant(name: str) -> Any:
    raise ReportRejected("bad_field", f"report contains {name}, which is not a number")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ReportRejected("out_of_range", f"integer of {len(text)} digits in report")
    return int(text)


def _short(exc: BaseException) -> str:
    return str(exc)[:80]


def _check_version(message: dict[str, Any]) -> None:
    version = message.get("v")
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise ReportRejected(
            "version",
            f"report has protocol version {_show(version)}; this host speaks {PROTOCOL_VERSION}",
        )
    kind = message.get("type")
    if kind != "report":
        raise ReportRejected("bad_field", f"message type {_show(kind)} is not 'report'")


def _seq(untrusted: Any, previous: int | None) -> int:
    if type(untrusted) is not int or not 0 <= untrusted <= MAX_SEQ:
        raise ReportRejected(
            "bad_field", f"seq must be a non-negative integer, got {_show(untrusted)}"
        )
    if previous is not None and untrusted <= previous:
        if untrusted < previous and untrusted <= RESTART_SEQ:
            return untrusted  # the agent started again on a channel that stayed connected
        raise ReportRejected("stale_seq", f"seq {untrusted} does not follow {previous}")
    return untrusted


def _agent(untrusted: Any) -> str:
    if not isinstance(untrusted, str) or not AGENT_TEXT.match(untrusted):
        raise ReportRejected(
            "bad_field", f"agent must be short printable text, got {_show(untrusted)}"
        )
    return untrusted


def _size(message: dict[str, Any], key: str, bound: int) -> int | None:
    untrusted = message.get(key)
    if untrusted is None:
        return None
    if type(untrusted) is not int:
        raise ReportRejected(
            "bad_field", f"{key} must be an integer of bytes, got {_show(untrusted)}"
        )
    if not 0 <= untrusted <= bound:
        raise ReportRejected("out_of_range", f"{key} {untrusted} is outside 0..{bound} bytes")
    return untrusted


def _number(message: dict[str, Any], key: str, bound: float) -> float | None:
    untrusted = message.get(key)
    if untrusted is None:
        return None
    if type(untrusted) not in (int, float):
        raise ReportRejected("bad_field", f"{key} must be a number, got {_show(untrusted)}")
    value = float(untrusted)
    if not math.isfinite(value) or not 0.0 <= value <= bound:
        raise ReportRejected("out_of_range", f"{key} {value!r} is outside 0..{bound:g}")
    return value


def _check_consistent(fields: dict[str, Any]) -> None:
    pairs = (("mem_available", "mem_total"), ("shmem", "mem_total"), ("swap_free", "swap_total"))
    for part, whole in pairs:
        if fields[part] is not None and fields[whole] is not None and fields[part] > fields[whole]:
            raise ReportRejected(
                "out_of_range", f"{part} {fields[part]} exceeds {whole} {fields[whole]}"
            )


def _show(untrusted: Any) -> str:
    """A short, safe rendering of an untrusted value for an error message."""
    return repr(untrusted)[:40]
