"""The wire format (docs/protocol.md): one JSON object per line, `"v"` is the major version.

Guest -> host: `report`. Host -> guest: `limits` (floor/ceiling for self-adjustment) and
`ack`. Unknown fields are ignored; a message of another major version is refused.
"""

from __future__ import annotations

import json
from typing import Any, Dict

from balloond_guest import AGENT, PROTOCOL_VERSION
from balloond_guest.demand import Rates, Sample

# A message as JSON gives it: field name -> value.
Message = Dict[str, Any]

MAX_LINE = 4096  # the host refuses longer lines; so do we


class ProtocolError(ValueError):
    """A host message we will not act on; the message says why."""


def report(
    seq: int,
    sample: Sample,
    rates: Rates,
    demand: int | None,
    request: int | None,
    trigger: str,
    interval: float,
) -> Message:
    """The report dict for one sample (sizes in bytes, ratios 0..1, rates per second)."""
    mem = sample.meminfo
    message: Message = {
        "v": PROTOCOL_VERSION,
        "type": "report",
        "seq": seq,
        "agent": AGENT,
        "trigger": trigger,
        "interval": interval,
        "mem_total": mem.get("MemTotal"),
        "mem_available": mem.get("MemAvailable"),
        "committed_as": mem.get("Committed_AS"),
        "cached": mem.get("Cached"),
        "shmem": mem.get("Shmem"),
        "swap_total": mem.get("SwapTotal"),
        "swap_free": mem.get("SwapFree"),
        "demand": demand,
        "request": request,
        "psi_some_avg10": sample.psi.some_avg10 if sample.psi is not None else None,
    }
    message.update(rates)
    return {key: value for key, value in message.items() if value is not None}


def encode(message: Message) -> bytes:
    line = json.dumps(message, separators=(",", ":"), sort_keys=True).encode("ascii") + b"\n"
    if len(line) > MAX_LINE:
        raise ValueError(
            "message of %d bytes exceeds the %d-byte line limit" % (len(line), MAX_LINE)
        )
    return line


def decode_host_message(line: bytes) -> Message:
    """A host line -> dict with a known `type`. Raises ProtocolError for anything else."""
    if len(line) > MAX_LINE:
        raise ProtocolError("host line of %d bytes exceeds %d" % (len(line), MAX_LINE))
    try:
        message = json.loads(line.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise ProtocolError("host line is not JSON: %s" % error) from error
    if not isinstance(message, dict):
        raise ProtocolError("host message is not an object")
    version = message.get("v")
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise ProtocolError(
            "refusing host message of protocol version %r (this agent speaks %d)"
            % (version, PROTOCOL_VERSION)
        )
    kind = message.get("type")
    if kind == "limits":
        return _limits(message)
    if kind == "ack":
        return {"type": "ack", "seq": message.get("seq")}
    raise ProtocolError("unknown host message type %r" % (kind,))


def _limits(message: Message) -> Message:
    floor, ceiling = _positive_bytes(message, "floor"), _positive_bytes(message, "ceiling")
    if floor > ceiling:
        raise ProtocolError("limits: floor %d is above ceiling %d" % (floor, ceiling))
    return {"type": "limits", "floor": floor, "ceiling": ceiling}


def _positive_bytes(message: Message, name: str) -> int:
    value = message.get(name)
    if type(value) is not int or value <= 0:
        raise ProtocolError(
            "limits: %s must be a positive integer of bytes, got %r" % (name, value)
        )
    return value
