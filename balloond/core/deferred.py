"""DomainDecisions built cheaply, their explanation written on first read.

A tick decides every domain, but only the few that move are logged, and an operator asks
about one domain at a time (`balloonctl explain`, `list`). Formatting a thousand sentences
nobody reads was a fifth of decide()'s time at 1,000 domains, and the frozen dataclass's
`__init__` another sixth. So the core hands out `DeferredDecision`s: a `DomainDecision`
subclass whose `explanation` is a recipe (a function and its arguments, captured when the
decision was made) until someone reads it; then the text is built once and kept. Every
reader goes through the attribute, so equality, hashing, repr, `dataclasses.replace` and
pickling see the text exactly as an eager decision would have it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, fields
from typing import Any

from balloond.model import DomainDecision, Reason

# An explanation not written yet: text = recipe[0](*recipe[1]).
Recipe = tuple[Callable[..., str], tuple[Any, ...]]
Text = str | Recipe

_SLOT = {name: DomainDecision.__dict__[name] for name in DomainDecision.__slots__}
_EXPLANATION = _SLOT["explanation"]
_ORDER = (
    "name",
    "uuid",
    "policy",
    "reason",
    "current",
    "target",
    "floor",
    "ceiling",
    "explanation",
    "demand",
    "pressure",
    "act",
)
if (
    {f.name for f in fields(DomainDecision)}
    - set(_ORDER)
    - {f.name for f in fields(DomainDecision) if f.default is not MISSING}
):
    raise RuntimeError("DomainDecision has a new required field; update balloond.core.deferred")


def realize(text: Text) -> str:
    """The text of an explanation, building it if it is still a recipe."""
    if isinstance(text, str):
        return text
    build, args = text
    return build(*args)


class DeferredDecision(DomainDecision):
    """A `DomainDecision` whose explanation is built on first read (and then kept). Until
    then its `explanation` slot holds the recipe (no slot of its own: see `_Building`)."""

    __slots__ = ()

    @property
    def explanation(self) -> str:
        text: Text = _EXPLANATION.__get__(self, DomainDecision)
        if isinstance(text, str):
            return text
        text = realize(text)  # not written yet: build it now (two readers build it twice)
        _EXPLANATION.__set__(self, text)
        return text

    @explanation.setter
    def explanation(self, text: str) -> None:
        # The dataclass __init__ (and so `replace` and unpickling) writes it this way.
        _EXPLANATION.__set__(self, text)


_new = object.__new__
# Fields added to DomainDecision later (with defaults) are set to their defaults.
_EXTRA_NAMES = tuple(
    (f.name, f.default)
    for f in fields(DomainDecision)
    if f.name not in _ORDER and f.default is not MISSING
)


class _Building(DomainDecision):
    """A `DeferredDecision` being filled in: the same layout (no slot added to the same base,
    so `__class__` may be switched between them, and cheaply: no added slots to compare),
    with object's own `__setattr__` and `__delattr__` so that attribute stores are plain slot
    stores the interpreter specializes. `decided` switches it to DeferredDecision once filled
    in: frozen from then on, to every reader. Three times cheaper than calling each slot's
    `__set__` (a thousand decisions per tick)."""

    __slots__ = ()
    __setattr__ = object.__setattr__
    __delattr__ = object.__delattr__


def decided(
    name: str,
    uuid: str,
    policy: str,
    reason: Reason,
    current: int,
    target: int,
    floor: int,
    ceiling: int,
    explanation: Text,
    demand: int | None,
    pressure: float | None,
    act: bool,
) -> DomainDecision:
    """A DomainDecision, built without the frozen dataclass's per-field `__setattr__` calls
    (it is still frozen to everyone else)."""
    out: Any = _new(_Building)
    out.name = name
    out.uuid = uuid
    out.policy = policy
    out.reason = reason
    out.current = current
    out.target = target
    out.floor = floor
    out.ceiling = ceiling
    out.explanation = explanation  # the text, or the recipe DeferredDecision builds it from
    out.demand = demand
    out.pressure = pressure
    out.act = act
    for field_name, default in _EXTRA_NAMES:
        setattr(out, field_name, default)
    out.__class__ = DeferredDecision
    result: DomainDecision = out
    return result
