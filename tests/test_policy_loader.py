"""Policy loading: valid files become immutable objects; every bad input is named by
file:line: key, all errors are reported at once, nothing is half-loaded."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from balloond.errors import ConfigError, PolicyError
from balloond.policy import yamldoc
from balloond.policy.loader import (
    PolicyLoadErrors,
    load_policy_dir,
    load_policy_files,
    parse_policy_text,
)
from balloond.policy.model import DEFAULT_POLICY, Amount, Match, Policy
from balloond.policy.yamldoc import MAX_FILE_BYTES
from balloond.units import GiB, MiB

FULL = """\
version: 1
policies:
  - name: web
    match:
      names: ["web-*", web1]
      uuids: ["4B1E2B54-7F3A-4C1E-9A55-0123456789AB"]
      tags: [tier=web, env=prod]
    floor: 1GiB
    ceiling: 90%
    buffer: 25%
    weight: 4000
    max_shrink_step: 64MiB
    max_grow_step: 50%
    deadband: 1%
    pressure_target: 0.2%
    swap_guard: false
    self_adjust: no
    enabled: true
"""


def errors_of(text: str, name: str = "p.yaml") -> list[str]:
    with pytest.raises(PolicyLoadErrors) as info:
        parse_policy_text(text, name)
    return [str(error) for error in info.value.errors]


def one_policy(body: str, match: str = "{names: [x]}") -> str:
    lines = "".join(f"    {line}\n" for line in body.splitlines())
    return f"policies:\n  - name: p\n    match: {match}\n{lines}"


def test_full_policy_parses_every_knob() -> None:
    policies = parse_policy_text(FULL, "web.yaml")
    (web,) = policies.policies
    assert web == Policy(
        name="web",
        source="web.yaml:3",
        match=Match(
            names=("web-*", "web1"),
            uuids=("4b1e2b54-7f3a-4c1e-9a55-0123456789ab",),
            tags=("tier=web", "env=prod"),
        ),
        floor=Amount(size=GiB),
        ceiling=Amount(ratio=0.9),
        buffer=0.25,
        weight=4000,
        max_shrink_step=Amount(size=64 * MiB),
        max_grow_step=Amount(ratio=0.5),
        deadband=Amount(ratio=0.01),
        pressure_target=pytest.approx(0.002),  # type: ignore[arg-type]
        swap_guard=False,
        self_adjust=False,
        enabled=True,
    )
    assert policies.default is DEFAULT_POLICY
    assert policies.files == ("web.yaml",)


def test_unset_knobs_take_the_model_defaults() -> None:
    (policy,) = parse_policy_text(one_policy("weight: 7")).policies
    assert dataclasses.replace(policy, weight=1000, match=Match(), source="", name="d") == (
        dataclasses.replace(DEFAULT_POLICY, source="", name="d")
    )


def test_unlimited_grow_step_and_zero_floor() -> None:
    (policy,) = parse_policy_text(one_policy("max_grow_step: unlimited\nfloor: 0")).policies
    assert policy.max_grow_step is None
    assert policy.floor == Amount(size=0)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("flor: 1GiB", "p.yaml:4: flor: unknown key in policy 'p' (did you mean 'floor'?)"),
        (
            "max_grow: 1G",
            "p.yaml:4: max_grow: unknown key in policy 'p' (did you mean 'max_grow_step'?)",
        ),
        ("zzz: 1", "p.yaml:4: zzz: unknown key in policy 'p'; known keys: name, match, floor"),
        ("weight: heavy", "p.yaml:4: weight: expected a whole number 1..10000, got 'heavy'"),
        ("weight: 1000.0", "p.yaml:4: weight: expected a whole number 1..10000, got 1000.0"),
        ("weight: true", "p.yaml:4: weight: expected a whole number 1..10000, got boolean true"),
        ("weight: 0", "p.yaml:4: weight: 0 is out of range 1..10000"),
        ("weight: 10001", "p.yaml:4: weight: 10001 is out of range 1..10000"),
        ("enabled: maybe", "p.yaml:4: enabled: expected true or false, got 'maybe'"),
        ("enabled: 1", "p.yaml:4: enabled: expected true or false, got 1"),
        ("swap_guard: [true]", "p.yaml:4: swap_guard: expected a single value, got a list"),
        ("floor: {size: 1G}", "p.yaml:4: floor: expected a single value, got a mapping"),
        ("floor: -1G", "p.yaml:4: floor: '-1G' is negative; sizes and percentages start at 0"),
        ("floor: -5", "p.yaml:4: floor: '-5' is negative"),
        ("deadband: -1%", "p.yaml:4: deadband: '-1%' is negative"),
        ("floor: 512", "p.yaml:4: floor: 512 has no unit: write '512MiB' or '512GiB'"),
        ("floor: 0.25", "p.yaml:4: floor: 0.25 has no unit: write '25%' for a share of maxmem"),
        ("floor: 5 parsecs", "p.yaml:4: floor: unknown size unit 'parsecs'"),
        ("floor: 5 G B", "p.yaml:4: floor: expected a size such as '512MiB'"),
        ("floor: 2PB", "p.yaml:4: floor: unknown size unit 'PB'"),
        ("floor: 150%", "p.yaml:4: floor: percentage must be between 0% and 100%, got: '150%'"),
        (
            "floor: null",
            "p.yaml:4: floor: expected a size such as '512MiB' or a percentage "
            "such as '25%', got nothing (null)",
        ),
        ("ceiling: unlimited", "p.yaml:4: ceiling: expected a size such as '512MiB'"),
        ("buffer: 120%", "p.yaml:4: buffer: percentage must be between 0% and 100%"),
        ("buffer: 20", "p.yaml:4: buffer: 20 is out of range 0..1; did you mean '20%'?"),
        ("pressure_target: -1%", "p.yaml:4: pressure_target: percentage must be between"),
        ("pressure_target: lots", "p.yaml:4: pressure_target: expected a percentage"),
        ("max_shrink_step: 0%", "p.yaml:4: max_shrink_step: '0%' must be above zero"),
        ("max_grow_step: 0", "p.yaml:4: max_grow_step: '0' must be above zero"),
        ("floor: 5GB\nceiling: 4GiB", "p.yaml:4: floor: '5GB' is larger than ceiling '4GiB'"),
        ("floor: 60%\nceiling: 50%", "p.yaml:4: floor: '60%' is larger than ceiling '50%'"),
        ("floor: 1G\nfloor: 2G", "p.yaml:5: floor: duplicate key (first set on line 4)"),
        ("floor: !!binary aGVsbG8=", "p.yaml:4: floor: unsupported YAML type"),
        ("floor: !!python/object:os.system x", "p.yaml:4: floor: unsupported YAML type"),
        ("floor: 2024-01-01", "p.yaml:4: floor: unsupported YAML type"),
        ("weight: " + "9" * 200, "p.yaml:4: weight: number '9999"),
        ("? [a, b]\n: 1", "p.yaml:4: policy 'p': keys must be plain words, got a list"),
        ("1: 2", "p.yaml:4: policy 'p': keys must be plain words, got '1'"),
    ],
)
def test_bad_knob(body: str, expected: str) -> None:
    errors = errors_of(one_policy(body))
    assert len(errors) == 1, errors
    assert errors[0].startswith(expected), errors


def test_floor_and_ceiling_of_different_kinds_are_not_compared() -> None:
    # 90% of a 1 GiB domain is below 2 GiB, of a 64 GiB one above: it depends on the domain.
    (policy,) = parse_policy_text(one_policy("floor: 2GiB\nceiling: 90%")).policies
    assert policy.floor == Amount(size=2 * GiB)


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        ("{name: [x]}", "p.yaml:3: name: unknown key in match (did you mean 'names'?)"),
        ("{names: web-*}", "p.yaml:3: match.names: expected a list such as ['...'], got a string"),
        ("{names: [[a]]}", "p.yaml:3: match.names: expected a single value, got a list"),
        ("{names: [42]}", "p.yaml:3: match.names: expected name glob (quote it"),
        ("{names: ['']}", "p.yaml:3: match.names: name glob must not be empty"),
        ("{uuids: [not-a-uuid]}", "p.yaml:3: match.uuids: 'not-a-uuid' is not a UUID"),
        ("{tags: ['two words']}", "p.yaml:3: match.tags: 'two words' is not a valid tag"),
        ("{tags: ['=x']}", "p.yaml:3: match.tags: '=x' is not a valid tag"),
        ("{}", "p.yaml:3: match: policy 'p' matches nothing: list names, uuids or tags"),
        ("web-*", "p.yaml:3: match: expected a mapping (key: value lines), got a string"),
    ],
)
def test_bad_match(match: str, expected: str) -> None:
    errors = errors_of(one_policy("", match=match))
    assert errors[0].startswith(expected), errors


def test_policy_without_match_is_refused() -> None:
    assert errors_of("policies:\n  - name: web\n    floor: 1G\n") == [
        "p.yaml:2: match: missing: policy 'web' needs a match (names, uuids or tags); "
        "only 'default' applies to every domain"
    ]


def test_default_takes_no_match() -> None:
    errors = errors_of("policies:\n  - name: default\n    match: {names: [x]}\n")
    assert errors[0].startswith("p.yaml:3: match: the 'default' policy applies to every domain")


def test_default_policy_replaces_the_built_in_one() -> None:
    policies = parse_policy_text("policies:\n  - name: default\n    floor: 2GiB\n", "d.yaml")
    assert policies.policies == ()
    assert policies.default.floor == Amount(size=2 * GiB)
    assert policies.default.source == "d.yaml:2"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "p.yaml:1: empty file: expected 'policies:'"),
        ("# only a comment\n", "p.yaml:1: empty file"),
        ("- name: a\n", "p.yaml:1: expected a mapping (key: value lines), got a list"),
        ("just text\n", "p.yaml:1: expected a mapping (key: value lines), got a string"),
        ("name: web\nfloor: 1G\n", "p.yaml:1: a file holds 'policies:', a list"),
        ("polices: []\n", "p.yaml:1: polices: unknown key (did you mean 'policies'?)"),
        ("version: 1\n", "p.yaml:1: policies: missing"),
        ("policies: {name: a}\n", "p.yaml:1: policies: expected a list of policies"),
        ("version: 2\npolicies: []\n", "p.yaml:1: version: 2 is not supported"),
        ("policies: []\n---\npolicies: []\n", "p.yaml:2: a second YAML document starts here"),
        ("policies: [\n", "p.yaml:2: invalid YAML"),
        ("policies:\n  - name: a\n   floor: 1G\n", "p.yaml:3: invalid YAML"),
        ("policies: []\n\tx: 1\n", "p.yaml:2: invalid YAML"),
        ("policies: [\x07]\n", "p.yaml:1: invalid YAML: "),
        ("policies:\n  - \x00\n", "p.yaml:2: invalid YAML: "),
        (
            "policies:\n  - name: [a]\n    match: {names: [a]}\n",
            "p.yaml:2: name: expected a single value, got a list",
        ),
        (
            "policies:\n  - name: 'a b'\n    match: {names: [a]}\n",
            "p.yaml:2: name: 'a b' is not a valid policy name",
        ),
        (
            "policies:\n  - name: no\n    match: {names: [a]}\n",
            "p.yaml:2: name: expected policy "
            "name (letters, digits, '_', '.', '-') (quote it if YAML reads it as another type), "
            "got boolean false",
        ),
        ("policies:\n  - match: {names: [a]}\n", "p.yaml:2: name: missing"),
        ("policies:\n  - just-a-string\n", "p.yaml:2: policy: expected a mapping"),
    ],
)
def test_bad_file_shape(text: str, expected: str) -> None:
    errors = errors_of(text)
    assert errors[0].startswith(expected), errors


def test_anchors_and_aliases_are_refused() -> None:
    text = "x: &big [1, 2]\npolicies: *big\n"
    assert errors_of(text) == ["p.yaml:1: YAML anchors (&big) are not allowed"]


def test_alias_bomb_is_refused_at_once() -> None:
    # "Billion laughs": nine levels of ten aliases would expand to 10**9 items.
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, 10):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"a{level}: &a{level} [{refs}]")
    errors = errors_of("\n".join(lines) + "\npolicies: *a9\n")
    assert errors == ["p.yaml:1: YAML anchors (&a0) are not allowed"]


def test_alias_without_anchor_is_refused() -> None:
    errors = errors_of("policies: *nothing\n")
    assert errors == ["p.yaml:1: YAML aliases (*nothing) are not allowed: write the value out"]


def test_merge_keys_need_aliases_and_are_refused() -> None:
    text = "policies:\n  - <<: *base\n    name: a\n"
    assert errors_of(text)[0].startswith("p.yaml:2: YAML aliases (*base) are not allowed")


def test_deep_nesting_is_refused() -> None:
    deep = "policies:\n" + "".join(f"{'  ' * level}- \n" for level in range(1, 30))
    assert errors_of(deep) == ["p.yaml:17: nested deeper than 16 levels"]


def test_very_deep_flow_nesting_is_refused() -> None:
    deep = "policies: " + "[" * 50_000 + "]" * 50_000 + "\n"
    (error,) = errors_of(deep)
    # Our limit, or libyaml's own (it scans flow brackets ahead): refused either way.
    assert error in (
        "p.yaml:1: nested deeper than 16 levels",
        "p.yaml:1: invalid YAML: exceeded maximum nesting depth",
    )


def test_every_error_of_a_file_is_reported_in_line_order() -> None:
    text = (
        "policies:\n"
        "  - name: a\n"
        "    match: {names: [a]}\n"
        "    floor: 5GB\n"
        "    ceiling: 4GiB\n"
        "    wieght: 3\n"
        "  - name: b\n"
        "    match: {names: [b]}\n"
        "    buffer: 200%\n"
        "  - name: a\n"
        "    match: {names: [c]}\n"
    )
    assert [error.split(":", 3)[1] for error in errors_of(text)] == ["4", "6", "9", "10"]


def test_aggregate_error_is_a_policy_error_with_every_line() -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy_text(one_policy("floor: -1G\nweight: 0"), "w.yaml")
    error = info.value
    assert isinstance(error, PolicyLoadErrors)
    assert (error.file, error.line, error.key) == ("w.yaml", 4, "floor")
    assert str(error).splitlines() == [str(item) for item in error.errors]
    assert len(error.errors) == 2
    assert all(isinstance(item, PolicyError) for item in error.errors)


def test_hostile_long_values_are_clipped_in_messages() -> None:
    errors = errors_of(one_policy("floor: " + "x" * 500_000))
    assert len(errors[0]) < 400


# Files and folders ------------------------------------------------------------------------


def write(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_folder_loads_in_name_order_and_skips_other_files(tmp_path: Path) -> None:
    write(tmp_path, "20-b.yml", "policies:\n  - name: b\n    match: {names: ['*']}\n")
    write(tmp_path, "10-a.yaml", "policies:\n  - name: a\n    match: {names: ['*']}\n")
    write(tmp_path, ".10-a.yaml.swp", "garbage: [")
    write(tmp_path, ".#lock.yaml", "garbage: [")
    write(tmp_path, "README.txt", "not policies")
    write(tmp_path, "old.yaml~", "garbage: [")
    (tmp_path / "sub.yaml").mkdir()
    policies = load_policy_dir(tmp_path)
    assert [policy.name for policy in policies.policies] == ["a", "b"]
    assert policies.files == (str(tmp_path / "10-a.yaml"), str(tmp_path / "20-b.yml"))


def test_empty_folder_gives_the_built_in_default(tmp_path: Path) -> None:
    policies = load_policy_dir(tmp_path)
    assert policies.policies == () and policies.default is DEFAULT_POLICY


def test_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="policy folder does not exist"):
        load_policy_dir(tmp_path / "nope")


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyLoadErrors, match=r"nope\.yaml: cannot read"):
        load_policy_files([tmp_path / "nope.yaml"])


def test_all_files_are_checked_and_nothing_is_half_loaded(tmp_path: Path) -> None:
    good = write(tmp_path, "a.yaml", "policies:\n  - name: a\n    match: {names: [a]}\n")
    bad1 = write(
        tmp_path, "b.yaml", "policies:\n  - name: b\n    match: {names: [b]}\n    weight: -3\n"
    )
    bad2 = write(tmp_path, "c.yaml", "policies:\n  - name: a\n    match: {names: [c]}\n")
    with pytest.raises(PolicyLoadErrors) as info:
        load_policy_files([good, bad1, bad2])
    assert [str(error) for error in info.value.errors] == [
        f"{bad1}:4: weight: -3 is out of range 1..10000",
        f"{bad2}:2: name: policy 'a' is already defined at {good}:2",
    ]


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    with pytest.raises(PolicyLoadErrors, match=r"fifo\.yaml: not a regular file"):
        load_policy_files([fifo])
    with pytest.raises(PolicyLoadErrors, match=r"fifo\.yaml: not a regular file"):
        load_policy_dir(tmp_path)  # the folder scan finds it too: a broken file, not none


def test_oversized_file_is_refused_before_parsing(tmp_path: Path) -> None:
    # 10 MB of a single valid-looking YAML comment: refused by size, never parsed.
    big = write(tmp_path, "big.yaml", b"# " + b"x" * (10 * 1000 * 1000) + b"\n")
    with pytest.raises(PolicyLoadErrors) as info:
        load_policy_files([big])
    assert str(info.value) == (
        f"{big}: file is 10000003 bytes, over the 1048576 byte (1 MiB) limit; not parsing it"
    )


def test_file_at_the_limit_is_read(tmp_path: Path) -> None:
    body = "policies: []\n"
    padded = body + "#" * (MAX_FILE_BYTES - len(body) - 1) + "\n"
    path = write(tmp_path, "edge.yaml", padded)
    assert load_policy_files([path]).policies == ()


def test_oversized_text_is_refused() -> None:
    assert "limit" in errors_of("#" * (MAX_FILE_BYTES + 1))[0]


def test_non_utf8_bytes_are_refused_with_their_line(tmp_path: Path) -> None:
    path = write(tmp_path, "latin1.yaml", "policies:\n  - name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(PolicyLoadErrors) as info:
        load_policy_files([path])
    assert str(info.value) == f"{path}:2: not valid UTF-8 (byte 0xe9 at offset 23)"


def test_utf8_bom_and_unicode_values_are_fine(tmp_path: Path) -> None:
    path = write(tmp_path, "bom.yaml", "\ufeffpolicies:\n  - name: a\n    match: {names: ['é*']}\n")
    (policy,) = load_policy_files([path]).policies
    assert policy.match.names == ("é*",)


def test_config_error_subclass_is_policy_error() -> None:
    with pytest.raises(ConfigError):
        parse_policy_text("policies: 3")


# Fuzz: whatever the bytes, the loader answers with a PolicySet or a PolicyError. -----------

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(["1GiB", "20%", "-1G", "unlimited", "web-*", "tier=web", "0", "1e9"]),
)
_KEYS = st.sampled_from(
    [
        "name",
        "match",
        "names",
        "tags",
        "uuids",
        "floor",
        "ceiling",
        "buffer",
        "weight",
        "max_grow_step",
        "enabled",
        "policies",
        "x",
    ]
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=5),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_KEYS, _VALUES, max_size=4) | st.lists(_VALUES, max_size=3))
def test_fuzz_structured(document: object) -> None:
    text = yaml.safe_dump({"policies": [document]} if isinstance(document, dict) else document)
    try:
        parse_policy_text(text, "f.yaml")
    except PolicyError as error:
        assert str(error).startswith("f.yaml")


@settings(max_examples=150, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("ab:-[]{}&*!|>'\"#%@` \n\t,?.1%\x00\ufeff")), max_size=60)
)
def test_fuzz_text(text: str) -> None:
    try:
        parse_policy_text(text, "f.yaml")
    except PolicyError as error:
        assert str(error).startswith("f.yaml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (FULL, None),
        ("a: &x [1]\npolicies: *x\n", "p.yaml:1: YAML anchors (&x) are not allowed"),
        ("policies: *x\n", "p.yaml:1: YAML aliases (*x) are not allowed"),
        ("policies: []\n---\n", "p.yaml:2: a second YAML document starts here"),
        ("policies: " + "[" * 40 + "]" * 40, "p.yaml:1: nested deeper than 16 levels"),
        ("policies: [\x07]\n", "p.yaml:1: invalid YAML: "),
        ("policies: [\n", "p.yaml:2: invalid YAML: "),
    ],
)
def test_pure_python_yaml_is_as_strict(
    monkeypatch: pytest.MonkeyPatch, text: str, expected: str | None
) -> None:
    """Without libyaml PyYAML falls back to its Python parser: same answers."""
    monkeypatch.setattr(yamldoc, "_LOADER", yaml.SafeLoader)
    if expected is None:
        assert parse_policy_text(text, "p.yaml").policies[0].name == "web"
    else:
        assert errors_of(text)[0].startswith(expected)
