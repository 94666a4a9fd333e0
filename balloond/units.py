"""Units: sizes, ratios and durations as operators write them, and back.

Inside balloond every size is an int of bytes. Parsing rules:

- sizes: a number (decimals allowed) and an optional unit. ``K``/``M``/``G``/``T`` and
  ``KiB``/``MiB``/``GiB``/``TiB`` are binary (1024-based), as ``xl`` and libvirt mean them;
  ``kB``/``MB``/``GB``/``TB`` are decimal (1000-based), as the SI says; ``B`` is bytes. A bare
  number takes the caller's default unit (bytes in policies, MiB on ``balloonctl balloon`` as in
  ``xm``/``xl``).
- ratios: ``20%`` or a plain number between 0 and 1 (``0.2``).
- durations: ``500ms``, ``30s``, ``5m``, ``1h``, ``2d``, or a bare number of seconds.
"""

from __future__ import annotations

import math
import re

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
TiB = 1024 * GiB
# The page the guests' kernels count in (x86, arm64 with 4K pages): swap and fault counters
# come in pages, and libvirt reports a migration's page size only while a job runs.
PAGE = 4 * KiB

_SIZE_UNITS: dict[str, int] = {
    "b": 1,
    "k": KiB,
    "kib": KiB,
    "kb": 1000,
    "m": MiB,
    "mib": MiB,
    "mb": 1000**2,
    "g": GiB,
    "gib": GiB,
    "gb": 1000**3,
    "t": TiB,
    "tib": TiB,
    "tb": 1000**4,
}

_DURATION_UNITS: dict[str, float] = {
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}

_NUMBER_UNIT = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")

# The largest size anyone will configure (1 EiB); anything beyond is a typo or an attack.
MAX_SIZE = 1 << 60
_MAX_DIGITS = 30


def parse_size(value: object, *, default_unit: str = "B") -> int:
    """Parse a size into bytes. Raise ValueError with a message that quotes the value."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as '512MiB', got: {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"size must be a non-negative number, got: {value!r}")
        result = value * _SIZE_UNITS[default_unit.lower()]
    elif isinstance(value, str):
        match = _NUMBER_UNIT.match(value)
        if match is None:
            raise ValueError(f"expected a size such as '512MiB' or '2G', got: {value!r}")
        number, unit = match.groups()
        if len(number) > _MAX_DIGITS:  # before int(): huge digit strings are slow or overflow
            raise ValueError(f"size {value!r} is implausibly large")
        factor = _SIZE_UNITS.get((unit or default_unit).lower())
        if factor is None:
            raise ValueError(
                f"unknown size unit {unit!r} in {value!r} (use B, KiB, MiB, GiB, TiB, K, M, G, T)"
            )
        result = float(number) * factor if "." in number else int(number) * factor
    else:
        raise ValueError(f"expected a size such as '512MiB', got: {value!r}")
    if not result < MAX_SIZE + 1:  # also catches inf from float overflow
        raise ValueError(f"size {value!r} is implausibly large")
    size = int(result)
    if size > MAX_SIZE:
        raise ValueError(f"size {value!r} is implausibly large")
    return size


def parse_ratio(value: object) -> float:
    """Parse ``'20%'`` or ``0.2`` into a ratio in [0, 1]."""
    if isinstance(value, bool):
        raise ValueError(f"expected a percentage such as '20%', got: {value!r}")
    if isinstance(value, str):
        text = value.strip()
        try:
            ratio = float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
        except ValueError:
            raise ValueError(f"expected a percentage such as '20%', got: {value!r}") from None
    elif isinstance(value, int | float):
        ratio = float(value)
    else:
        raise ValueError(f"expected a percentage such as '20%', got: {value!r}")
    if not math.isfinite(ratio) or not 0.0 <= ratio <= 1.0:
        raise ValueError(f"percentage must be between 0% and 100%, got: {value!r}")
    return ratio


def parse_duration(value: object) -> float:
    """Parse ``'30s'``, ``'5m'``, ``'1h'`` or a number of seconds into seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as '30s', got: {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _NUMBER_UNIT.match(value)
        if match is None:
            raise ValueError(f"expected a duration such as '30s' or '5m', got: {value!r}")
        number, unit = match.groups()
        factor = _DURATION_UNITS.get(unit.lower() or "s")
        if factor is None:
            raise ValueError(f"unknown duration unit {unit!r} in {value!r} (use ms, s, m, h, d)")
        seconds = float(number) * factor
    else:
        raise ValueError(f"expected a duration such as '30s', got: {value!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"duration must be non-negative, got: {value!r}")
    return seconds


def format_size(size: int | float) -> str:
    """Render bytes for humans: ``1.5 GiB``, ``512 MiB``, ``4 KiB``, ``12 B``."""
    sign = "-" if size < 0 else ""
    size = abs(size)
    for unit, factor in (("TiB", TiB), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if size >= factor:
            value = size / factor
            text = f"{value:.0f}" if value == int(value) or value >= 100 else f"{value:.1f}"
            return f"{sign}{text} {unit}"
    return f"{sign}{int(size)} B"


def format_sizes_apart(first: int, second: int) -> tuple[str, str]:
    """Both sizes as `format_size` renders them, unless that renders two different sizes
    alike ("4.0 GiB" and "4 GiB" for 3.99 and 4 GiB): then both in the same unit, only ever
    finer than `format_size`'s (never "2 GiB → 1 GiB" for 1.55 and 1.47 GiB): two decimals
    of its unit, else a smaller unit, down to bytes."""
    a, b = format_size(first), format_size(second)
    if first == second or a.replace(".0 ", " ") != b.replace(".0 ", " "):
        return a, b
    larger = max(abs(first), abs(second))
    finer = False  # past format_size's own unit: whole numbers there are fine already
    for unit, factor in (("TiB", TiB), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if larger < factor:
            continue
        for decimals in (0, 1, 2) if finer else (1, 2):
            a, b = f"{first / factor:.{decimals}f}", f"{second / factor:.{decimals}f}"
            if a != b:
                return f"{a} {unit}", f"{b} {unit}"
        finer = True
    return f"{first} B", f"{second} B"


def kib_to_bytes(kib: int) -> int:
    return int(kib) * KiB


def bytes_to_kib(size: int) -> int:
    """Round down to whole KiB: libvirt's unit. Never rounds a target up past a ceiling."""
    return int(size) // KiB


def bytes_to_mib(size: int) -> int:
    return int(size) // MiB
