"""Readers for /proc/meminfo, /proc/pressure/memory and /proc/vmstat under a root prefix.

Every reader takes `root` ("/" on a real guest, a fixture tree in tests) and returns plain
values in bytes, microseconds or counts. A file that does not exist gives None or an empty
dict: old kernels lack PSI (before 4.20), MemAvailable (before 3.14) and Shmem (before 2.6.32).
"""

from __future__ import annotations

import os
from typing import Dict, NamedTuple

# meminfo keys the agent uses, in the kernel's spelling.
MEMINFO_KEYS = (
    "MemTotal",
    "MemFree",
    "MemAvailable",
    "Buffers",
    "Cached",
    "Shmem",
    "SReclaimable",
    "Committed_AS",
    "SwapTotal",
    "SwapFree",
)
VMSTAT_KEYS = ("pswpin", "pswpout", "pgmajfault")


class Psi(NamedTuple):
    """One /proc/pressure/memory reading: avg10 as a 0..1 ratio, totals in microseconds."""

    some_avg10: float
    some_total: int
    full_avg10: float | None
    full_total: int | None


# What the readers return: kernel field name -> bytes (meminfo) or a count (vmstat).
Counters = Dict[str, int]


def path_under(root: str, path: str) -> str:
    """'/proc/meminfo' under root '/tmp/fx' -> '/tmp/fx/proc/meminfo'."""
    return os.path.join(root, path.lstrip("/"))


def read_text(root: str, path: str) -> str | None:
    """The file's text, or None when it does not exist or cannot be read."""
    try:
        with open(path_under(root, path)) as handle:
            return handle.read()
    except OSError:
        return None


def parse_meminfo(text: str) -> Counters:
    """'MemTotal:  1024 kB' lines -> {'MemTotal': 1048576}. Values in kB become bytes;
    unit-less lines (HugePages_Total) stay counts. Malformed lines are skipped."""
    values: Counters = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        fields = rest.split()
        if not sep or not fields or not fields[0].isdigit():
            continue
        factor = 1024 if len(fields) > 1 and fields[1].lower() == "kb" else 1
        values[key.strip()] = int(fields[0]) * factor
    return values


def read_meminfo(root: str) -> Counters:
    text = read_text(root, "/proc/meminfo")
    return parse_meminfo(text) if text else {}


def parse_psi(text: str) -> Psi | None:
    """'some avg10=1.50 avg60=0.00 avg300=0.00 total=1234' -> Psi (avg10 as a 0..1 ratio,
    total in microseconds). Memory PSI has had both lines since 4.20; a missing `full` line
    gives None fields rather than an error."""
    found: dict[str, tuple[float, int]] = {}
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0] not in ("some", "full"):
            continue
        pairs = dict(field.split("=", 1) for field in fields[1:] if "=" in field)
        try:
            found[fields[0]] = (float(pairs["avg10"]) / 100.0, int(pairs["total"]))
        except (KeyError, ValueError):
            continue
    if "some" not in found:
        return None
    some_avg10, some_total = found["some"]
    full = found.get("full")
    if full is None:
        return Psi(some_avg10, some_total, None, None)
    return Psi(some_avg10, some_total, full[0], full[1])


def read_psi(root: str) -> Psi | None:
    text = read_text(root, "/proc/pressure/memory")
    return parse_psi(text) if text else None


def parse_vmstat(text: str) -> Counters:
    values: Counters = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0] in VMSTAT_KEYS and fields[1].isdigit():
            values[fields[0]] = int(fields[1])
    return values


def read_vmstat(root: str) -> Counters:
    text = read_text(root, "/proc/vmstat")
    return parse_vmstat(text) if text else {}


def page_size() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 4096
