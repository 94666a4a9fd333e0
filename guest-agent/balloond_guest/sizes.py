"""Sizes as operators write them (512M, 2G, 1048576) to int bytes, and back."""

from __future__ import annotations

import re

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

_UNITS = {
    "": 1,
    "b": 1,
    "k": KIB,
    "kb": KIB,
    "kib": KIB,
    "m": MIB,
    "mb": MIB,
    "mib": MIB,
    "g": GIB,
    "gb": GIB,
    "gib": GIB,
    "t": 1024 * GIB,
    "tb": 1024 * GIB,
    "tib": 1024 * GIB,
}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")
MAX_SIZE = 1 << 60


def parse_size(text: object, default_unit: str = "b") -> int:
    """'512M' -> 536870912. A bare number takes `default_unit`. Units are binary, as in the
    kernel's memparse and `xl mem-set` (the guest side has no use for decimal units)."""
    match = _SIZE.match(str(text))
    if match is None:
        raise ValueError("expected a size such as 512M or 2G, got: %r" % (text,))
    number, unit = match.groups()
    factor = _UNITS.get((unit or default_unit).lower())
    if factor is None:
        raise ValueError("unknown size unit %r in %r (use K, M, G, T)" % (unit, text))
    size = int(float(number) * factor) if "." in number else int(number) * factor
    if size > MAX_SIZE:
        raise ValueError("size %r is implausibly large" % (text,))
    return size


def format_size(size: int | float | None) -> str:
    """536870912 -> '512 MiB'; keeps one decimal when it matters."""
    if size is None:
        return "-"
    for unit, factor in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if abs(size) >= factor:
            value = size / float(factor)
            text = ("%.1f" % value).rstrip("0").rstrip(".")
            return "%s %s" % (text, unit)
    return "%d B" % size
