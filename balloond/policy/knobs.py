"""The one table of policy knobs: how each is parsed, documented and described in JSON Schema.

The loader validates with `POLICY_KNOBS`, `balloond.policy.schema` renders the same table
into JSON Schema, and docs quote it; defaults come from the `Policy` dataclass itself. Value
kinds (`Kind`) are shared with the daemon config (`balloond.config`).

Sizes need a unit (``512MiB``, ``2G``; ``0`` is the one bare number allowed) because a bare
``512`` would silently mean 512 bytes. Percentages are ``20%`` or a plain ratio ``0.2``.
"""

from __future__ import annotations

import dataclasses
import re
import uuid as uuidlib
from dataclasses import dataclass
from typing import Any

from balloond.policy.model import Amount, Policy
from balloond.units import parse_duration, parse_ratio, parse_size

SIZE_PATTERN = r"^\s*[0-9]+(\.[0-9]+)?\s*([bB]|[kKmMgGtT]([iI]?[bB])?)\s*$"
PERCENT_PATTERN = r"^\s*[0-9]+(\.[0-9]+)?\s*%\s*$"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
TAG_PATTERN = r"^[^\s=]{1,64}(=[^\s]{1,128})?$"
UNLIMITED = "unlimited"

_NUMBER = re.compile(r"^\s*[0-9]+(\.[0-9]+)?\s*$")


def _type_error(expected: str, value: object) -> ValueError:
    return ValueError(f"expected {expected}, got {_describe(value)}")


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if value is None:
        return "nothing (null)"
    return repr(value) if isinstance(value, str | int | float) else type(value).__name__


class Kind:
    """How one value is written: `parse` turns a plain YAML scalar into the typed value or
    raises ValueError with the operator's words; `schema` is its JSON Schema fragment."""

    def parse(self, value: Any) -> Any:
        raise NotImplementedError

    def schema(self) -> dict[str, Any]:
        raise NotImplementedError

    def render(self, value: Any) -> str | None:
        """A default rendered as an operator would write it (None: no default to show)."""
        if isinstance(value, bool):
            return str(value).lower()
        return None if value is None else str(value)


@dataclass(frozen=True)
class AmountKind(Kind):
    """A size (``512MiB``) or a percentage of `base` (``25%``) -> `Amount`."""

    base: str
    none_word: str | None = None  # a word meaning "no limit" (-> None), e.g. "unlimited"
    none_means: str = ""  # how a missing value reads in docs ("maxmem")
    positive: bool = False

    def parse(self, value: Any) -> Amount | None:
        if self.none_word is not None and value == self.none_word:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise _type_error("a size such as '512MiB' or a percentage such as '25%'", value)
        text = str(value).strip()
        if text.startswith("-"):
            raise ValueError(f"{text!r} is negative; sizes and percentages start at 0")
        if text.endswith("%"):
            amount = Amount(ratio=parse_ratio(text))
        elif _NUMBER.match(text):
            amount = self._bare_number(text)
        else:
            amount = Amount(size=parse_size(text))
        if self.positive and not (amount.size or amount.ratio):
            raise ValueError(f"{text!r} must be above zero")
        return amount

    def _bare_number(self, text: str) -> Amount:
        if float(text) == 0:
            return Amount(size=0)
        if float(text) <= 1:
            raise ValueError(
                f"{text} has no unit: write '{float(text) * 100:g}%' for a share of "
                f"{self.base}, or a size such as '512MiB'"
            )
        raise ValueError(
            f"{text} has no unit: write '{text}MiB' or '{text}GiB' ('{text}B' for bytes)"
        )

    def schema(self) -> dict[str, Any]:
        options: list[dict[str, Any]] = [
            {"type": "string", "pattern": SIZE_PATTERN},
            {"type": "string", "pattern": PERCENT_PATTERN},
        ]
        if not self.positive:
            options.append({"const": 0})
        if self.none_word is not None:
            options.append({"const": self.none_word})
        return {"anyOf": options}

    def render(self, value: Any) -> str | None:
        return (self.none_word or self.none_means or None) if value is None else str(value)


@dataclass(frozen=True)
class PercentKind(Kind):
    """``20%`` or a ratio ``0.2`` -> float in [low, high]."""

    low: float = 0.0
    high: float = 1.0

    def parse(self, value: Any) -> float:
        if isinstance(value, int | float) and not isinstance(value, bool) and 1 < value <= 100:
            raise ValueError(f"{value!r} is out of range 0..1; did you mean '{value:g}%'?")
        ratio = parse_ratio(value)
        if not self.low <= ratio <= self.high:
            raise ValueError(f"{value!r} is out of range {self.low * 100:g}%..{self.high * 100:g}%")
        return ratio

    def schema(self) -> dict[str, Any]:
        return {
            "anyOf": [
                {"type": "string", "pattern": PERCENT_PATTERN},
                {"type": "number", "minimum": self.low, "maximum": self.high},
            ]
        }

    def render(self, value: Any) -> str | None:
        return None if value is None else f"{value * 100:g}%"


@dataclass(frozen=True)
class IntKind(Kind):
    low: int
    high: int

    def parse(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(f"a whole number {self.low}..{self.high}", value)
        if not self.low <= value <= self.high:
            raise ValueError(f"{value} is out of range {self.low}..{self.high}")
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": self.low, "maximum": self.high}


@dataclass(frozen=True)
class BoolKind(Kind):
    def parse(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise _type_error("true or false", value)
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


@dataclass(frozen=True)
class DurationKind(Kind):
    """``500ms``, ``30s``, ``5m`` or a number of seconds -> float seconds."""

    low: float = 0.0
    high: float = 7 * 86400.0

    def parse(self, value: Any) -> float:
        seconds = parse_duration(value)
        if not self.low <= seconds <= self.high:
            raise ValueError(f"{value!r} is out of range {self.low:g}s..{self.high:g}s")
        return seconds

    def schema(self) -> dict[str, Any]:
        return {
            "anyOf": [
                {"type": "string", "pattern": r"^\s*[0-9]+(\.[0-9]+)?\s*(ms|s|sec|m|min|h|d)?\s*$"},
                {"type": "number", "minimum": self.low, "maximum": self.high},
            ]
        }

    def render(self, value: Any) -> str | None:
        return None if value is None else f"{value:g}s"


@dataclass(frozen=True)
class TextKind(Kind):
    """A string, optionally restricted by a regular expression (`pattern`, `what` names it)."""

    pattern: str | None = None
    what: str = "text"
    optional: bool = False  # null allowed (-> None)

    def parse(self, value: Any) -> str | None:
        if value is None and self.optional:
            return None
        if not isinstance(value, str):
            raise _type_error(f"{self.what} (quote it if YAML reads it as another type)", value)
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise ValueError(f"{value!r} is not a valid {self.what}")
        if not value:
            raise ValueError(f"{self.what} must not be empty")
        return value

    def schema(self) -> dict[str, Any]:
        text: dict[str, Any] = {"type": "string", "minLength": 1}
        if self.pattern is not None:
            text["pattern"] = self.pattern
        return {"anyOf": [text, {"type": "null"}]} if self.optional else text


@dataclass(frozen=True)
class UuidKind(Kind):
    def parse(self, value: Any) -> str:
        if not isinstance(value, str):
            raise _type_error("a UUID such as '4b1e2b54-…'", value)
        try:
            return str(uuidlib.UUID(value))  # canonical: lower case with dashes
        except ValueError:
            raise ValueError(f"{value!r} is not a UUID") from None

    def schema(self) -> dict[str, Any]:
        hexes = "[0-9a-fA-F]"
        return {"type": "string", "pattern": f"^{hexes}{{8}}-?({hexes}{{4}}-?){{3}}{hexes}{{12}}$"}


@dataclass(frozen=True)
class Knob:
    name: str
    kind: Kind
    help: str


def _base_help(base: str) -> str:
    return f"Size ('2GiB') or percentage of the domain's {base} ('25%')."


POLICY_KNOBS: tuple[Knob, ...] = (
    Knob(
        "floor",
        AmountKind("maxmem"),
        "Never balloon the domain below this. " + _base_help("maxmem"),
    ),
    Knob(
        "ceiling",
        AmountKind("maxmem", none_means="maxmem"),
        "Never balloon the domain above this; always also capped by maxmem. "
        + _base_help("maxmem"),
    ),
    Knob(
        "buffer",
        PercentKind(),
        "Headroom given above the guest's estimated demand (Hyper-V style): demand 1 GiB "
        "with buffer 20% targets 1.2 GiB.",
    ),
    Knob(
        "weight",
        IntKind(1, 10000),
        "Share of memory under contention, relative to other domains' weights.",
    ),
    Knob(
        "max_shrink_step",
        AmountKind("current size", positive=True),
        "Largest shrink per tick. " + _base_help("current size"),
    ),
    Knob(
        "max_grow_step",
        AmountKind("current size", none_word=UNLIMITED, positive=True),
        "Largest growth per tick, or 'unlimited' to grow to the target at once. "
        + _base_help("current size"),
    ),
    Knob(
        "deadband",
        AmountKind("current size"),
        "Changes smaller than this are not applied, except to raise a domain below its fair "
        "share. " + _base_help("current size"),
    ),
    Knob(
        "pressure_target",
        PercentKind(),
        "Allowed memory stall (PSI 'some' share of time); above it the domain grows.",
    ),
    Knob("swap_guard", BoolKind(), "Stop shrinking a guest that is swapping."),
    Knob(
        "self_adjust",
        BoolKind(),
        "Honour a target the guest agent requests, within floor and ceiling.",
    ),
    Knob("enabled", BoolKind(), "false: balloond leaves matching domains alone."),
)

KNOBS_BY_NAME = {knob.name: knob for knob in POLICY_KNOBS}

MATCH_FIELDS: tuple[Knob, ...] = (
    Knob(
        "names",
        TextKind(what="name glob"),
        "Domain name globs (fnmatch, case-sensitive): 'web1', 'web-*', 'db[0-9]'.",
    ),
    Knob("uuids", UuidKind(), "Domain UUIDs (any case; dashes optional)."),
    Knob(
        "tags",
        TextKind(TAG_PATTERN, what="tag ('word' or 'key=value')"),
        "Tags from the domain's <balloond:tags> metadata; the domain needs all listed.",
    ),
)

POLICY_NAME = TextKind(NAME_PATTERN, what="policy name (letters, digits, '_', '.', '-')")

_DEFAULTS = {field.name: field.default for field in dataclasses.fields(Policy)}


def default_of(knob: Knob) -> Any:
    """The knob's default: the `Policy` dataclass field default (the single source)."""
    return _DEFAULTS[knob.name]
