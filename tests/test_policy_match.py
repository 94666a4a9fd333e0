"""Which policy governs a domain: specificity table, ties, default, explanations."""

from __future__ import annotations

import pytest

from balloond.model import DomainSnapshot
from balloond.policy.loader import parse_policy_text
from balloond.policy.match import Matcher, literal_length, select, select_explained
from balloond.policy.model import DEFAULT_POLICY, Match, Policy, PolicySet
from balloond.units import GiB

UUID = "4b1e2b54-7f3a-4c1e-9a55-0123456789ab"

POLICIES = PolicySet(
    policies=(
        Policy("glob-short", match=Match(names=("w*",))),
        Policy("glob-long", match=Match(names=("web-prod-*",))),
        Policy("glob-long-later", match=Match(names=("web-prod?*",))),
        Policy("one-tag", match=Match(tags=("tier=web",))),
        Policy("two-tags", match=Match(tags=("tier=web", "env=prod"))),
        Policy("exact", match=Match(names=("web-prod-1",))),
        Policy("by-uuid", match=Match(uuids=(UUID,))),
        Policy("exact-later", match=Match(names=("web-prod-1",))),
        Policy("class", match=Match(names=("db[0-9]",))),
    ),
    default=Policy("my-default"),
)


def domain(
    name: str, uuid: str = "00000000-0000-0000-0000-000000000000", tags: str = ""
) -> DomainSnapshot:
    return DomainSnapshot(
        name=name, uuid=uuid, current=GiB, maxmem=2 * GiB, tags=frozenset(tags.split())
    )


@pytest.mark.parametrize(
    ("dom", "policy", "rule"),
    [
        (domain("web-prod-1", uuid=UUID, tags="tier=web env=prod"), "by-uuid", "uuid 4b1e2b54…"),
        (domain("x", uuid=UUID.upper()), "by-uuid", "uuid 4b1e2b54…"),
        (domain("web-prod-1", tags="tier=web env=prod"), "exact", "name 'web-prod-1'"),
        (domain("web-prod-2", tags="tier=web env=prod"), "two-tags", "tags [tier=web, env=prod]"),
        (domain("web-prod-2", tags="tier=web"), "one-tag", "tags [tier=web]"),
        (domain("web-prod-2", tags="env=prod"), "glob-long", "name 'web-prod-*'"),
        (domain("web-test"), "glob-short", "name 'w*'"),
        (domain("db7"), "class", "name 'db[0-9]'"),
        (domain("db77"), "my-default", "default"),
        (domain("Web-prod-1"), "my-default", "default"),  # globs are case-sensitive
        (domain("other", tags="tier=db"), "my-default", "default"),
    ],
)
def test_specificity(dom: DomainSnapshot, policy: str, rule: str) -> None:
    chosen, why = select_explained(POLICIES, dom)
    assert (chosen.name, why) == (policy, rule)
    assert select(POLICIES, dom).name == policy


def test_ties_first_loaded_wins() -> None:
    # "web-prod-*" and "web-prod?*" have the same literal length; the first loaded wins.
    assert literal_length("web-prod-*") == literal_length("web-prod?*") + 1
    tie = PolicySet(
        policies=(
            Policy("first", match=Match(names=("a*c",), tags=("x",))),
            Policy("second", match=Match(names=("ab*",), tags=("y",))),
        )
    )
    assert select(tie, domain("abc")).name == "first"
    assert select(tie, domain("abc", tags="x y")).name == "first"
    assert select(tie, domain("abc", tags="y")).name == "second"


def test_policy_matches_through_its_most_specific_selector() -> None:
    both = PolicySet(
        policies=(
            Policy("tagged", match=Match(tags=("tier=web",))),
            Policy("named-too", match=Match(names=("web*", "web1"))),
        )
    )
    assert select_explained(both, domain("web1", tags="tier=web")) == (
        both.policies[1],
        "name 'web1'",
    )


def test_empty_set_gives_built_in_default() -> None:
    assert select_explained(PolicySet(), domain("any")) == (DEFAULT_POLICY, "default")


def test_literal_length_ignores_classes_and_wildcards() -> None:
    assert literal_length("web-[0-9]*") == 4
    assert literal_length("*") == 0
    assert literal_length("a?b") == 2


def test_loaded_policies_match_like_built_ones() -> None:
    policies = parse_policy_text(
        "policies:\n"
        "  - name: web\n"
        "    match: {names: ['web*'], uuids: ['4B1E2B547F3A4C1E9A550123456789AB']}\n"
    )
    assert select(policies, domain("z", uuid=UUID)).name == "web"
    assert select(policies, domain("webby")).name == "web"


def test_matcher_is_reused_and_sees_a_new_set() -> None:
    first = PolicySet(policies=(Policy("a", match=Match(names=("x*",))),))
    second = PolicySet(policies=(Policy("b", match=Match(names=("x*",))),))
    assert select(first, domain("xx")).name == "a"
    assert select(second, domain("xx")).name == "b"
    assert select(first, domain("xx")).name == "a"
    assert Matcher(second).select(domain("xx")).name == "b"


def test_many_domains_many_policies() -> None:
    policies = PolicySet(
        policies=tuple(Policy(f"p{i}", match=Match(names=(f"vm{i}-*",))) for i in range(200))
    )
    domains = [domain(f"vm{i % 250}-{i}") for i in range(10_000)]
    chosen = [select(policies, dom).name for dom in domains]
    assert chosen[5] == "p5"
    assert chosen[230] == "default"
    assert chosen[9_949] == "p199"


def test_globs_with_several_wildcards_and_classes() -> None:
    policies = PolicySet(
        policies=(
            Policy("multi", match=Match(names=("a*b*c",))),
            Policy("other", match=Match(names=("x*y*z", "q[!0-9]*"))),
        )
    )
    assert select_explained(policies, domain("xayaz"))[1] == "name 'x*y*z'"
    assert select_explained(policies, domain("aXbYc"))[1] == "name 'a*b*c'"
    assert select_explained(policies, domain("qa1"))[1] == "name 'q[!0-9]*'"
    assert select_explained(policies, domain("q1a"))[1] == "default"


def test_remembered_answers_follow_renames_and_tag_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    matcher = Matcher(POLICIES)
    before = domain("web-prod-9", tags="tier=web")
    assert matcher.select(before).name == "one-tag"
    assert matcher.select(before).name == "one-tag"  # from memory
    retagged = domain("web-prod-9", tags="tier=web env=prod")
    assert matcher.select(retagged).name == "two-tags"
    assert matcher.select(domain("web-prod-1", tags="tier=web")).name == "exact"
    monkeypatch.setattr("balloond.policy.match._MEMO_LIMIT", 2)
    answers = [matcher.select(domain(f"db{i}")).name for i in range(10)]
    assert answers == ["class"] * 10
    assert len(matcher._memo) <= 2
