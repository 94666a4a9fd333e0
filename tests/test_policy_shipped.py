"""Shipped policies, the JSON Schema and the docs agree with the loader's one knob table."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from balloond.errors import PolicyError
from balloond.model import DomainSnapshot
from balloond.policy.knobs import MATCH_FIELDS, POLICY_KNOBS
from balloond.policy.loader import load_policy_dir, load_policy_files, parse_policy_text
from balloond.policy.match import select_explained
from balloond.policy.model import DEFAULT_POLICY
from balloond.policy.schema import SCHEMA_PATH, policy_schema, schema_text
from balloond.units import GiB

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "policies").glob("*.yaml"))


def test_there_are_shipped_policies() -> None:
    names = {path.name for path in SHIPPED}
    assert {"default.yaml", "web-tier.yaml", "batch.yaml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: path.name)
def test_each_shipped_file_loads(path: Path) -> None:
    policies = load_policy_files([path])
    assert policies.files == (str(path),)


def test_shipped_folder_loads_as_one_set() -> None:
    policies = load_policy_dir(ROOT / "policies")
    assert policies.default.source.rpartition(":")[0].endswith("default.yaml")
    assert len(policies.policies) >= 3


def test_default_yaml_states_the_built_in_defaults() -> None:
    """The commented default.yaml must say what the code does when it is absent."""
    shipped = load_policy_files([ROOT / "policies" / "default.yaml"]).default
    assert dataclasses.replace(shipped, source=DEFAULT_POLICY.source) == DEFAULT_POLICY


def test_default_yaml_explains_every_knob() -> None:
    text = (ROOT / "policies" / "default.yaml").read_text(encoding="utf-8")
    for knob in POLICY_KNOBS:
        assert re.search(rf"^\s*#?\s*{knob.name}:", text, re.MULTILINE), knob.name


@pytest.mark.parametrize(
    ("name", "tags", "policy"),
    [
        ("web-07", "", "web-tier"),
        ("web-lb-1", "", "web-lb"),
        ("frontend", "tier=web", "web-tier"),
        ("batch-3", "", "batch"),
        ("worker", "tier=batch role=cache", "build-cache"),
        ("db-primary", "", "db-primary"),
        ("mail", "", "default"),
    ],
)
def test_shipped_examples_select_as_documented(name: str, tags: str, policy: str) -> None:
    policies = load_policy_dir(ROOT / "policies")
    domain = DomainSnapshot(name, "", GiB, GiB, tags=frozenset(tags.split()))
    assert select_explained(policies, domain)[0].name == policy


def test_schema_file_is_in_sync() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text(), (
        "regenerate with: python -m balloond.policy.schema"
    )


def test_schema_names_every_knob_and_selector() -> None:
    schema = policy_schema()
    policy_props = schema["$defs"]["policy"]["properties"]
    assert set(policy_props) == {"name", "match", *(knob.name for knob in POLICY_KNOBS)}
    assert set(schema["$defs"]["match"]["properties"]) == {field.name for field in MATCH_FIELDS}
    assert policy_props["weight"]["default"] == 1000
    assert policy_props["floor"]["default"] == "25%"
    assert policy_props["max_grow_step"]["default"] == "unlimited"
    assert "default" not in policy_props["ceiling"]


# A structural validator for the subset of JSON Schema the policy schema uses. Enough to
# check shipped files against it without a jsonschema dependency.


def validate(
    instance: Any, schema: dict[str, Any], root: dict[str, Any], path: str = "$"
) -> list[str]:
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        return validate(instance, root["$defs"][name], root, path)
    if "anyOf" in schema:
        if any(not validate(instance, option, root, path) for option in schema["anyOf"]):
            return []
        return [f"{path}: {instance!r} matches no option"]
    errors: list[str] = []
    if "const" in schema and (instance != schema["const"] or isinstance(instance, bool)):
        errors.append(f"{path}: {instance!r} is not {schema['const']!r}")
    kind = schema.get("type")
    if kind is not None and not _is_type(instance, kind):
        return [*errors, f"{path}: {instance!r} is not {kind}"]
    if isinstance(instance, str):
        if len(instance) < schema.get("minLength", 0):
            errors.append(f"{path}: too short")
        if "pattern" in schema and not re.search(schema["pattern"], instance):
            errors.append(f"{path}: {instance!r} does not match {schema['pattern']}")
    if _is_type(instance, "number") and not (
        schema.get("minimum", instance) <= instance <= schema.get("maximum", instance)
    ):
        errors.append(f"{path}: {instance!r} out of range")
    if isinstance(instance, list):
        if len(instance) < schema.get("minItems", 0):
            errors.append(f"{path}: too few items")
        for index, item in enumerate(instance):
            errors += validate(item, schema.get("items", {}), root, f"{path}[{index}]")
    if isinstance(instance, dict):
        errors += _validate_object(instance, schema, root, path)
    return errors


def _validate_object(
    instance: dict[str, Any], schema: dict[str, Any], root: dict[str, Any], path: str
) -> list[str]:
    errors = [f"{path}: missing {key}" for key in schema.get("required", ()) if key not in instance]
    properties = schema.get("properties", {})
    for key, value in instance.items():
        if key in properties:
            errors += validate(value, properties[key], root, f"{path}.{key}")
        elif schema.get("additionalProperties") is False:
            errors.append(f"{path}: unexpected key {key!r}")
    return errors


def _is_type(instance: Any, kind: str) -> bool:
    checks = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
    }
    return bool(checks[kind](instance))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: path.name)
def test_each_shipped_file_validates_under_the_schema(path: Path) -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    instance = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert validate(instance, schema, schema) == []


@pytest.mark.parametrize(
    "policy",
    [
        {"name": "a", "flor": "1G"},
        {"name": "a", "floor": "1 parsec"},
        {"name": "a", "floor": 512},
        {"name": "a", "weight": 0},
        {"name": "a", "weight": "heavy"},
        {"name": "a", "enabled": "yes"},
        {"name": "a", "buffer": 20},
        {"name": "a", "max_grow_step": "lots"},
        {"name": "a", "match": {"names": "web*"}},
        {"name": "a", "match": {"tags": ["two words"]}},
        {"name": "a", "match": {"uuids": ["nope"]}},
        {"floor": "1G"},
        {"name": "a b"},
    ],
)
def test_schema_rejects_what_the_loader_rejects(policy: dict[str, Any]) -> None:
    schema = policy_schema()
    assert validate({"policies": [policy]}, schema, schema) != []
    text = yaml.safe_dump({"policies": [{"match": {"names": ["x"]}, **policy}]})
    with pytest.raises(PolicyError, match=r"p\.yaml:\d+: "):
        parse_policy_text(text, "p.yaml")


def test_docs_describe_every_knob_and_selector() -> None:
    docs = (ROOT / "docs" / "policies.md").read_text(encoding="utf-8")
    for name in [knob.name for knob in POLICY_KNOBS] + [field.name for field in MATCH_FIELDS]:
        assert f"`{name}`" in docs, name
    assert "https://balloond.dev/xmlns/1" in docs


def test_the_demo_guests_are_governed_by_the_shipped_policies_they_are_tagged_for() -> None:
    """`make demo` runs sim://default with policies/: its web and batch guests carry the tags
    those policies match (they once had bare 'web'/'batch' and all fell to `default`)."""
    from balloond.backend.simulated import open_simulated
    from balloond.policy.loader import load_policy_dir
    from balloond.policy.match import select_explained

    policies = load_policy_dir(Path(__file__).resolve().parent.parent / "policies")
    host = open_simulated("sim://default?clock=manual")
    chosen = {d.name: select_explained(policies, d) for d in host.domains()}
    assert chosen["web"][0].name == "web-tier" and "tier=web" in chosen["web"][1]
    assert chosen["batch"][0].name == "batch" and "tier=batch" in chosen["batch"][1]
    assert chosen["idle"][0].name == "default"
