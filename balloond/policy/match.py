"""Which policy governs a domain: the most specific match, else the set's `default`.

Specificity, most specific first (ties: the policy loaded first wins):

1. ``uuids``: the domain's UUID is listed (case-insensitive);
2. ``names`` entry without glob characters: the domain's exact name;
3. ``tags``: the domain carries every listed tag; more tags is more specific;
4. ``names`` glob (fnmatch, case-sensitive): a longer literal part is more specific
   (``web-prod-*`` beats ``web*``);
5. the set's ``default``.

A policy can list several selectors; it matches through its most specific one. Matching runs
for every domain on every tick, so the policy set is compiled once into lookup tables
(`Matcher`) and `select` keeps a tiny identity cache of compiled sets. Nothing here has side
effects an observer could see: the cache only saves work.
"""

from __future__ import annotations

import fnmatch
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

from balloond.model import DomainSnapshot
from balloond.policy.model import Policy, PolicySet

_GLOB_CHARS = frozenset("*?[")


def is_glob(pattern: str) -> bool:
    return any(char in _GLOB_CHARS for char in pattern)


def literal_length(pattern: str) -> int:
    """How many characters of a glob match only themselves: its specificity."""
    length = 0
    in_class = False
    for char in pattern:
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char not in "*?":
            length += 1
    return length


def short_uuid(uuid: str) -> str:
    return f"{uuid[:8]}…" if len(uuid) > 8 else uuid


@dataclass(frozen=True, slots=True)
class _TagRule:
    tags: frozenset[str]
    policy: Policy
    rule: str


@dataclass(frozen=True, slots=True)
class _GlobRule:
    match: Callable[[str], re.Match[str] | None]
    policy: Policy
    rule: str


class Matcher:
    """A `PolicySet` compiled into lookup tables. Immutable after construction."""

    __slots__ = ("_by_name", "_by_uuid", "_default", "_globs", "_tags", "policies")

    def __init__(self, policies: PolicySet) -> None:
        self.policies = policies
        self._default = (policies.default, "default")
        self._by_uuid: dict[str, tuple[Policy, str]] = {}
        self._by_name: dict[str, tuple[Policy, str]] = {}
        tag_rules: list[tuple[int, int, _TagRule]] = []
        glob_rules: list[tuple[int, int, _GlobRule]] = []
        for order, policy in enumerate(policies.policies):
            for uuid in policy.match.uuids:
                # setdefault: the first policy loaded keeps a contested UUID or name.
                self._by_uuid.setdefault(uuid.lower(), (policy, f"uuid {short_uuid(uuid)}"))
            for pattern in policy.match.names:
                if is_glob(pattern):
                    matcher = re.compile(fnmatch.translate(pattern)).match
                    rule = _GlobRule(matcher, policy, f"name {pattern!r}")
                    glob_rules.append((-literal_length(pattern), order, rule))
                else:
                    self._by_name.setdefault(pattern, (policy, f"name {pattern!r}"))
            if policy.match.tags:
                tags = frozenset(policy.match.tags)
                rule_text = f"tags [{', '.join(policy.match.tags)}]"
                tag_rules.append((-len(tags), order, _TagRule(tags, policy, rule_text)))
        # Sorted most specific first, then by load order: the first hit is the answer.
        self._tags = tuple(rule for _, _, rule in sorted(tag_rules, key=lambda t: t[:2]))
        self._globs = tuple(rule for _, _, rule in sorted(glob_rules, key=lambda t: t[:2]))

    def select_explained(self, domain: DomainSnapshot) -> tuple[Policy, str]:
        hit = self._by_uuid.get(domain.uuid.lower())
        if hit is not None:
            return hit
        hit = self._by_name.get(domain.name)
        if hit is not None:
            return hit
        if domain.tags:
            for tag_rule in self._tags:
                if tag_rule.tags <= domain.tags:
                    return tag_rule.policy, tag_rule.rule
        for glob_rule in self._globs:
            if glob_rule.match(domain.name) is not None:
                return glob_rule.policy, glob_rule.rule
        return self._default

    def select(self, domain: DomainSnapshot) -> Policy:
        return self.select_explained(domain)[0]


# Identity cache: holding the PolicySet itself keeps its id() from being reused while cached.
_CACHE_SIZE = 4
_cache: tuple[Matcher, ...] = ()
_cache_lock = threading.Lock()


def matcher_for(policies: PolicySet) -> Matcher:
    """The compiled `Matcher` for this exact PolicySet object (compiled at most once while
    it stays among the few most recently used sets)."""
    global _cache
    for matcher in _cache:  # a tuple: readers never see it half-updated
        if matcher.policies is policies:
            return matcher
    matcher = Matcher(policies)
    with _cache_lock:
        _cache = (matcher, *_cache)[:_CACHE_SIZE]
    return matcher


def select(policies: PolicySet, domain: DomainSnapshot) -> Policy:
    """The policy that governs `domain`."""
    return matcher_for(policies).select_explained(domain)[0]


def select_explained(policies: PolicySet, domain: DomainSnapshot) -> tuple[Policy, str]:
    """The policy that governs `domain` and the selector that chose it, in words:
    "uuid 1234abcd…", "name 'web1'", "name 'web*'", "tags [tier=web]" or "default"."""
    return matcher_for(policies).select_explained(domain)
