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
_MEMO_LIMIT = 65_536


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
    rank: tuple[int, int]  # (-number of tags, load order): smaller is more specific
    tags: frozenset[str]
    policy: Policy
    rule: str


class Matcher:
    """A `PolicySet` compiled into lookup tables. Its answers never change; it only
    remembers them (up to `_MEMO_LIMIT` domains, then starts over).

    UUIDs and exact names are dict lookups; tag rules are indexed by each of their tags so a
    domain only tests rules that share a tag with it; all globs form one regular expression
    whose alternatives are ordered most specific first, so the first alternative that
    matches (the regex engine tries them in order) is the answer."""

    __slots__ = (
        "_by_name",
        "_by_tag",
        "_by_uuid",
        "_default",
        "_glob_hits",
        "_globs",
        "_memo",
        "policies",
    )

    def __init__(self, policies: PolicySet) -> None:
        self.policies = policies
        self._default = (policies.default, "default")
        self._by_uuid: dict[str, tuple[Policy, str]] = {}
        self._by_name: dict[str, tuple[Policy, str]] = {}
        self._by_tag: dict[str, list[_TagRule]] = {}
        self._memo: dict[tuple[str, str, frozenset[str]], tuple[Policy, str]] = {}
        globs: list[tuple[int, int, str, tuple[Policy, str]]] = []
        for order, policy in enumerate(policies.policies):
            for uuid in policy.match.uuids:
                # setdefault: the first policy loaded keeps a contested UUID or name.
                self._by_uuid.setdefault(uuid.lower(), (policy, f"uuid {short_uuid(uuid)}"))
            for pattern in policy.match.names:
                if is_glob(pattern):
                    hit = (policy, f"name {pattern!r}")
                    globs.append((-literal_length(pattern), order, pattern, hit))
                else:
                    self._by_name.setdefault(pattern, (policy, f"name {pattern!r}"))
            if policy.match.tags:
                tags = frozenset(policy.match.tags)
                text = f"tags [{', '.join(policy.match.tags)}]"
                rule = _TagRule((-len(tags), order), tags, policy, text)
                for tag in tags:
                    self._by_tag.setdefault(tag, []).append(rule)
        globs.sort(key=lambda glob: glob[:2])
        self._glob_hits = tuple(hit for *_, hit in globs)
        self._globs = _one_regex([glob[2] for glob in globs])

    def select_explained(self, domain: DomainSnapshot) -> tuple[Policy, str]:
        # A fleet's domains are the same from tick to tick: remember each one's answer.
        key = (domain.uuid, domain.name, domain.tags)
        hit = self._memo.get(key)
        if hit is None:
            hit = self._lookup(domain)
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            self._memo[key] = hit
        return hit

    def _lookup(self, domain: DomainSnapshot) -> tuple[Policy, str]:
        hit = self._by_uuid.get(domain.uuid.lower()) or self._by_name.get(domain.name)
        if hit is not None:
            return hit
        if domain.tags and self._by_tag:
            best = self._best_tag_rule(domain.tags)
            if best is not None:
                return best.policy, best.rule
        if self._globs is not None:
            found = self._globs(domain.name)
            if found is not None and found.lastindex is not None:
                return self._glob_hits[found.lastindex - 1]
        return self._default

    def _best_tag_rule(self, tags: frozenset[str]) -> _TagRule | None:
        best: _TagRule | None = None
        for tag in tags:
            for rule in self._by_tag.get(tag, ()):
                if (best is None or rule.rank < best.rank) and rule.tags <= tags:
                    best = rule
        return best

    def select(self, domain: DomainSnapshot) -> Policy:
        # The daemon's `policy_for`, called for every domain every tick: the remembered
        # answer is read here directly, without a second call through select_explained.
        hit = self._memo.get((domain.uuid, domain.name, domain.tags))
        return (hit if hit is not None else self.select_explained(domain))[0]


def _one_regex(globs: list[str]) -> Callable[[str], re.Match[str] | None] | None:
    """One regex whose group N is glob N. Python 3.11+'s fnmatch.translate adds no capturing
    groups of its own; if a future one does, group numbers would lie, so check."""
    if not globs:
        return None
    compiled = re.compile("|".join(f"({fnmatch.translate(glob)})" for glob in globs))
    if compiled.groups != len(globs):
        raise RuntimeError("fnmatch.translate added capturing groups; update balloond")
    return compiled.match


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
    return matcher_for(policies).select(domain)


def select_explained(policies: PolicySet, domain: DomainSnapshot) -> tuple[Policy, str]:
    """The policy that governs `domain` and the selector that chose it, in words:
    "uuid 1234abcd…", "name 'web1'", "name 'web*'", "tags [tier=web]" or "default"."""
    return matcher_for(policies).select_explained(domain)
