"""JSON Schema (draft 2020-12) of the policy file format, rendered from the knob table.

The schema is structural: it knows keys, types, units and ranges, so editors can complete
and flag typos; cross-checks (floor above ceiling, duplicate names) stay with the loader,
which is the authority. The shipped copy, ``balloond/data/policy.schema.json``, is
regenerated with ``python -m balloond.policy.schema`` (a test checks it is in sync).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from balloond.policy.knobs import (
    MATCH_FIELDS,
    POLICY_KNOBS,
    POLICY_NAME,
    BoolKind,
    IntKind,
    Knob,
    default_of,
)
from balloond.policy.loader import DEFAULT_NAME, FORMAT_VERSION

SCHEMA_ID = "https://balloond.dev/schema/policy-1.json"
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "data" / "policy.schema.json"


def _json_default(knob: Knob) -> dict[str, Any]:
    value = default_of(knob)
    if isinstance(knob.kind, IntKind | BoolKind):
        return {"default": value}
    rendered = knob.kind.render(value)
    if rendered is None or (value is None and not getattr(knob.kind, "none_word", None)):
        return {}  # e.g. ceiling: the domain's maxmem, which no literal can say
    return {"default": rendered}


def _knob_property(knob: Knob) -> dict[str, Any]:
    return {"description": knob.help, **knob.kind.schema(), **_json_default(knob)}


def _match_schema() -> dict[str, Any]:
    properties = {
        field.name: {
            "description": field.help,
            "type": "array",
            "items": field.kind.schema(),
            "minItems": 1,
        }
        for field in MATCH_FIELDS
    }
    return {
        "description": "Which domains the policy governs; a domain matches when any listed "
        "selector matches it (uuid > exact name > tags > name glob when several policies do).",
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
    }


def _policy_schema() -> dict[str, Any]:
    properties: dict[str, Any] = {
        "name": {
            "description": f"Unique policy name; {DEFAULT_NAME!r} (without match) replaces "
            "the built-in fallback.",
            **POLICY_NAME.schema(),
        },
        "match": {"$ref": "#/$defs/match"},
    }
    properties.update({knob.name: _knob_property(knob) for knob in POLICY_KNOBS})
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["name"],
        "properties": properties,
    }


def policy_schema() -> dict[str, Any]:
    """The schema of one policy file, as a JSON-ready dict."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "balloond policy file",
        "description": "A list of balloond policies (see docs/policies.md).",
        "type": "object",
        "additionalProperties": False,
        "required": ["policies"],
        "properties": {
            "version": {"description": "Policy file format version.", "const": FORMAT_VERSION},
            "policies": {"type": "array", "items": {"$ref": "#/$defs/policy"}},
        },
        "$defs": {"policy": _policy_schema(), "match": _match_schema()},
    }


def schema_text() -> str:
    return json.dumps(policy_schema(), indent=2, ensure_ascii=False) + "\n"


def write_schema(path: Path = SCHEMA_PATH) -> None:
    path.write_text(schema_text(), encoding="utf-8")


if __name__ == "__main__":
    write_schema(Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMA_PATH)
