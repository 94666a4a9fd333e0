"""Scenario files: a host, a duration and guests whose demand follows piecewise-linear traces.

The format is documented in docs/simulator.md. Loading validates everything once, into
immutable objects with sizes in int bytes; every error names the file, line and key
("bench/scenarios/x.yaml:12: guests[1].maxmem: size must be ..."), via ConfigError.
Scenario files come from outside the project, so the loader refuses YAML aliases (alias
bombs), oversized files and implausible counts before building anything.
"""

from __future__ import annotations

import bisect
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from balloond.errors import ConfigError
from balloond.units import GiB, MiB, parse_duration, parse_size

MAX_FILE_BYTES = 2 * MiB
MAX_GUESTS = 100_000
MAX_POINTS = 10_000
BEHAVIOURS = ("ideal", "stuck", "slow", "lies")


@dataclass(frozen=True, slots=True)
class Trace:
    """A piecewise-linear function of time: (seconds, bytes) points, sorted by time.
    Before the first point it holds the first value, after the last point the last one."""

    points: tuple[tuple[float, int], ...]
    _times: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_times", tuple(p[0] for p in self.points))

    @classmethod
    def constant(cls, value: int) -> Trace:
        return cls(((0.0, value),))

    def at(self, t: float) -> int:
        points = self.points
        i = bisect.bisect_right(self._times, t)
        if i == 0:
            return points[0][1]
        if i == len(points):
            return points[-1][1]
        (t0, v0), (t1, v1) = points[i - 1], points[i]
        return int(v0 + (v1 - v0) * (t - t0) / (t1 - t0))

    def peak(self, t0: float, t1: float) -> int:
        """The largest value over [t0, t1] (at the ends or at a point between them)."""
        best = max(self.at(t0), self.at(t1))
        lo = bisect.bisect_left(self._times, t0)
        hi = bisect.bisect_right(self._times, t1)
        for _, value in self.points[lo:hi]:
            best = max(best, value)
        return best


@dataclass(frozen=True, slots=True)
class GuestSpec:
    """One guest of a scenario. `anon` cannot be given back without swapping; `file` is page
    cache the guest would like to keep (dropping it costs refaults)."""

    name: str
    maxmem: int
    anon: Trace
    file: Trace
    floor: int | None = None
    weight: int | None = None
    start: float = 0.0  # boot time, seconds into the scenario
    stop: float | None = None  # shutdown time
    initial: int | None = None  # balloon size at boot; None: maxmem
    behaviour: str = "ideal"  # ideal | stuck | slow | lies
    lies_factor: float = 2.0  # a lying agent reports demand times this
    agent: bool = True  # runs the guest agent (reports PSI and demand)
    swap: int = 1 * GiB
    cache_fill: int = 1 * MiB  # bytes/s of cold page cache read into free memory
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HostSpec:
    memory: int
    reserve: int = 1 * GiB
    used: int = 0  # the host's own memory use, outside any guest


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    host: HostSpec
    duration: float
    step: float
    guests: tuple[GuestSpec, ...]
    repeat: bool = False  # traces wrap around after `duration` (the demo runs forever)
    description: str = ""
    source: str = "<built-in>"


class _Map(dict[str, Any]):
    """A YAML mapping that remembers the line of each key."""

    line: int = 0
    key_lines: dict[str, int]


class _Seq(list[Any]):
    line: int = 0


class _Loader(yaml.SafeLoader):
    pass


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> _Map:
    loader.flatten_mapping(node)
    result = _Map()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str):
            raise ConfigError(f"keys must be strings, got: {key!r}", line=line)
        if key in result:
            raise ConfigError(f"duplicate key {key!r}", line=line)
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = line
    return result


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> _Seq:
    result = _Seq(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    return result


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


class _Where:
    """File name and a line for error messages."""

    def __init__(self, file: str) -> None:
        self.file = file

    def error(self, message: str, *, line: int | None, key: str | None = None) -> ConfigError:
        return ConfigError(message, file=self.file, line=line, key=key)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError(
                f"file is {size} bytes, more than the {MAX_FILE_BYTES} allowed", file=str(path)
            )
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read scenario: {exc.strerror}", file=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("scenario is not UTF-8 text", file=str(path)) from exc
    return parse_scenario(text, source=str(path))


def parse_scenario(text: str, *, source: str = "<string>") -> Scenario:
    where = _Where(source)
    if len(text) > MAX_FILE_BYTES:
        raise where.error(f"scenario text is longer than {MAX_FILE_BYTES} bytes", line=None)
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                line = event.start_mark.line + 1 if event.start_mark else None
                raise where.error("YAML aliases are not allowed in scenarios", line=line)
        data = yaml.load(text, Loader=_Loader)
    except ConfigError as exc:
        if exc.file is None:
            raise where.error(exc.detail, line=exc.line, key=exc.key) from exc
        raise
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise where.error(f"not valid YAML: {problem}", line=line) from exc
    if not isinstance(data, _Map):
        raise where.error("a scenario must be a mapping with name, host, guests", line=1)
    return _build_scenario(data, where)


_SCENARIO_KEYS = ("name", "description", "host", "duration", "step", "repeat", "guests")
_HOST_KEYS = ("memory", "reserve", "used")
_GUEST_KEYS = (
    "name",
    "maxmem",
    "floor",
    "weight",
    "demand",
    "start",
    "stop",
    "initial",
    "behaviour",
    "lies_factor",
    "agent",
    "swap",
    "cache_fill",
    "tags",
)


def _check_keys(data: _Map, allowed: tuple[str, ...], where: _Where, prefix: str) -> None:
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise where.error(
                f"unknown key{hint}; allowed: {', '.join(allowed)}",
                line=data.key_lines[key],
                key=prefix + key,
            )


def _line(data: _Map, key: str) -> int:
    return data.key_lines.get(key, data.line)


def _require(data: _Map, key: str, where: _Where, prefix: str) -> Any:
    if key not in data:
        raise where.error("is required", line=data.line, key=prefix + key)
    return data[key]


def _size(data: _Map, key: str, where: _Where, prefix: str, *, positive: bool = False) -> int:
    try:
        value = parse_size(data[key])
    except ValueError as exc:
        raise where.error(str(exc), line=_line(data, key), key=prefix + key) from None
    if positive and value <= 0:
        raise where.error(
            f"must be positive, got: {data[key]!r}", line=_line(data, key), key=prefix + key
        )
    return value


def _seconds(data: _Map, key: str, where: _Where, prefix: str) -> float:
    try:
        return parse_duration(data[key])
    except ValueError as exc:
        raise where.error(str(exc), line=_line(data, key), key=prefix + key) from None


def _build_scenario(data: _Map, where: _Where) -> Scenario:
    _check_keys(data, _SCENARIO_KEYS, where, "")
    name = _require(data, "name", where, "")
    if not isinstance(name, str) or not name.strip():
        raise where.error(
            f"must be a non-empty string, got: {name!r}", line=_line(data, "name"), key="name"
        )
    host_data = _require(data, "host", where, "")
    if not isinstance(host_data, _Map):
        raise where.error(
            "must be a mapping with memory and reserve", line=_line(data, "host"), key="host"
        )
    host = _build_host(host_data, where)
    duration = _seconds(data, "duration", where, "") if "duration" in data else 600.0
    step = _seconds(data, "step", where, "") if "step" in data else 1.0
    if step <= 0 or duration <= 0 or duration / step > 10_000_000:
        raise where.error(
            f"duration {duration:g}s and step {step:g}s must be positive "
            "(and at most 10 million steps)",
            line=_line(data, "step"),
            key="step",
        )
    repeat = data.get("repeat", False)
    if not isinstance(repeat, bool):
        raise where.error(
            f"must be true or false, got: {repeat!r}", line=_line(data, "repeat"), key="repeat"
        )
    guests_data = _require(data, "guests", where, "")
    if not isinstance(guests_data, _Seq) or not guests_data:
        raise where.error(
            "must be a non-empty list of guests", line=_line(data, "guests"), key="guests"
        )
    if len(guests_data) > MAX_GUESTS:
        raise where.error(
            f"{len(guests_data)} guests, more than {MAX_GUESTS}",
            line=guests_data.line,
            key="guests",
        )
    guests = tuple(_build_guest(g, i, guests_data.line, where) for i, g in enumerate(guests_data))
    seen: set[str] = set()
    for guest in guests:
        if guest.name in seen:
            raise where.error(
                f"guest name {guest.name!r} appears twice", line=guests_data.line, key="guests"
            )
        seen.add(guest.name)
    description = data.get("description", "")
    return Scenario(
        name=name.strip(),
        host=host,
        duration=duration,
        step=step,
        guests=guests,
        repeat=repeat,
        description=str(description),
        source=where.file,
    )


def _build_host(data: _Map, where: _Where) -> HostSpec:
    _check_keys(data, _HOST_KEYS, where, "host.")
    _require(data, "memory", where, "host.")
    memory = _size(data, "memory", where, "host.", positive=True)
    reserve = _size(data, "reserve", where, "host.") if "reserve" in data else 1 * GiB
    used = _size(data, "used", where, "host.") if "used" in data else 0
    if reserve + used >= memory:
        raise where.error(
            f"reserve plus used ({reserve + used} bytes) leaves nothing of memory ({memory} bytes)",
            line=data.line,
            key="host",
        )
    return HostSpec(memory=memory, reserve=reserve, used=used)


def _build_guest(data: Any, index: int, list_line: int, where: _Where) -> GuestSpec:
    prefix = f"guests[{index}]."
    if not isinstance(data, _Map):
        raise where.error(
            f"each guest must be a mapping, got: {data!r}", line=list_line, key=f"guests[{index}]"
        )
    _check_keys(data, _GUEST_KEYS, where, prefix)
    name = _require(data, "name", where, prefix)
    if not isinstance(name, str) or not name or len(name) > 200 or "/" in name:
        raise where.error(
            f"must be a short name without '/', got: {name!r}",
            line=_line(data, "name"),
            key=prefix + "name",
        )
    prefix = f"guests[{index}] ({name})."
    _require(data, "maxmem", where, prefix)
    maxmem = _size(data, "maxmem", where, prefix, positive=True)
    anon, file = _build_demand(_require(data, "demand", where, prefix), data, where, prefix)
    fields: dict[str, Any] = {}
    for key in ("floor", "initial", "swap", "cache_fill"):
        if key in data:
            fields[key] = _size(data, key, where, prefix)
    for key in ("start", "stop"):
        if key in data:
            fields[key] = _seconds(data, key, where, prefix)
    for key in ("floor", "initial"):
        if fields.get(key, 0) > maxmem:
            raise where.error(
                f"{fields[key]} bytes is larger than maxmem {maxmem} bytes",
                line=_line(data, key),
                key=prefix + key,
            )
    fields.update(_build_guest_flags(data, where, prefix))
    return GuestSpec(name=name, maxmem=maxmem, anon=anon, file=file, **fields)


def _build_guest_flags(data: _Map, where: _Where, prefix: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if "weight" in data:
        weight = data["weight"]
        if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= 1_000_000:
            raise where.error(
                f"must be an integer from 1 to 1000000, got: {weight!r}",
                line=_line(data, "weight"),
                key=prefix + "weight",
            )
        fields["weight"] = weight
    if "behaviour" in data:
        if data["behaviour"] not in BEHAVIOURS:
            raise where.error(
                f"must be one of {', '.join(BEHAVIOURS)}, got: {data['behaviour']!r}",
                line=_line(data, "behaviour"),
                key=prefix + "behaviour",
            )
        fields["behaviour"] = data["behaviour"]
    if "lies_factor" in data:
        factor = data["lies_factor"]
        number = isinstance(factor, int | float) and not isinstance(factor, bool)
        if not number or not 1 <= factor <= 100:
            raise where.error(
                f"must be a number from 1 to 100, got: {factor!r}",
                line=_line(data, "lies_factor"),
                key=prefix + "lies_factor",
            )
        fields["lies_factor"] = float(factor)
    if "agent" in data:
        if not isinstance(data["agent"], bool):
            raise where.error(
                f"must be true or false, got: {data['agent']!r}",
                line=_line(data, "agent"),
                key=prefix + "agent",
            )
        fields["agent"] = data["agent"]
    if "tags" in data:
        tags = data["tags"]
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise where.error(
                f"must be a list of strings, got: {tags!r}",
                line=_line(data, "tags"),
                key=prefix + "tags",
            )
        fields["tags"] = tuple(tags)
    return fields


def _build_demand(demand: Any, guest: _Map, where: _Where, prefix: str) -> tuple[Trace, Trace]:
    if not isinstance(demand, _Map):
        raise where.error(
            "must be a mapping with anon and file traces",
            line=_line(guest, "demand"),
            key=prefix + "demand",
        )
    _check_keys(demand, ("anon", "file"), where, prefix + "demand.")
    anon = _build_trace(
        _require(demand, "anon", where, prefix + "demand."), demand, "anon", where, prefix
    )
    file = (
        _build_trace(demand["file"], demand, "file", where, prefix)
        if "file" in demand
        else Trace.constant(0)
    )
    return anon, file


def _build_trace(points: Any, demand: _Map, key: str, where: _Where, prefix: str) -> Trace:
    full_key = f"{prefix}demand.{key}"
    line = _line(demand, key)
    if isinstance(points, str | int | float) and not isinstance(points, bool):
        points = [[0, points]]  # a constant demand may be written as a single size
    if not isinstance(points, list) or not points or len(points) > MAX_POINTS:
        raise where.error(
            f"must be a list of [seconds, size] points (1 to {MAX_POINTS}), got: {points!r}",
            line=line,
            key=full_key,
        )
    result: list[tuple[float, int]] = []
    for point in points:
        point_line = getattr(point, "line", line)
        if not isinstance(point, list) or len(point) != 2:
            raise where.error(
                f"each point must be [seconds, size], got: {point!r}", line=point_line, key=full_key
            )
        try:
            t = parse_duration(point[0])
            value = parse_size(point[1])
        except ValueError as exc:
            raise where.error(str(exc), line=point_line, key=full_key) from None
        if result and t <= result[-1][0]:
            raise where.error(
                f"point times must increase, got {t:g}s after {result[-1][0]:g}s",
                line=point_line,
                key=full_key,
            )
        result.append((t, value))
    return Trace(tuple(result))
