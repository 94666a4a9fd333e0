"""Load policy files into one immutable `PolicySet`, or raise with every error found.

File format (version 1; see docs/policies.md)::

    version: 1                # optional; the only version so far
    policies:
      - name: web
        match: {names: ["web-*"], tags: ["tier=web"]}
        floor: 1GiB
        buffer: 25%

A policy named ``default`` without ``match`` replaces the built-in fallback. Loading is
all-or-nothing: `load_policy_files` either returns a complete set or raises
`PolicyLoadErrors` listing every problem in every file, each as "file:line: key: message".
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from yaml.nodes import MappingNode, Node, SequenceNode

from balloond.errors import ConfigError, PolicyError
from balloond.policy.knobs import KNOBS_BY_NAME, MATCH_FIELDS, POLICY_NAME, Knob
from balloond.policy.model import DEFAULT_POLICY, Amount, Match, Policy, PolicySet
from balloond.policy.yamldoc import Errors, compose, kind_of, line_of, read_text, scalar_value

FORMAT_VERSION = 1
TOP_KEYS = ("version", "policies")
POLICY_KEYS = ("name", "match", *KNOBS_BY_NAME)
POLICY_SUFFIXES = (".yaml", ".yml")
DEFAULT_NAME = "default"


class PolicyLoadErrors(PolicyError):
    """Every error found while loading a set of policy files. Its file/line/key are the
    first error's; `errors` lists them all in file order; str() shows them one per line."""

    def __init__(self, errors: Iterable[ConfigError]) -> None:
        self.errors: list[PolicyError] = [_as_policy_error(error) for error in errors]
        if not self.errors:
            raise ValueError("PolicyLoadErrors needs at least one error")
        first = self.errors[0]
        super().__init__(first.detail, file=first.file, line=first.line, key=first.key)

    def _render(self) -> str:
        return "\n".join(str(error) for error in self.errors)


def _as_policy_error(error: ConfigError) -> PolicyError:
    if isinstance(error, PolicyLoadErrors):
        raise TypeError("nested PolicyLoadErrors")
    if isinstance(error, PolicyError):
        return error
    return PolicyError(error.detail, file=error.file, line=error.line, key=error.key)


def load_policy_dir(path: str | os.PathLike[str]) -> PolicySet:
    """Load every ``*.yaml``/``*.yml`` file of a folder, in name order. Hidden files (editor
    swap and lock files) and sub-folders are skipped; an entry that cannot be read (a
    dangling symlink, a symlink loop, no permission) is a broken file, not a missing one.
    An empty folder gives the built-in default only."""
    try:
        files = policy_files_in(path)
    except PolicyError as exc:
        raise PolicyLoadErrors([exc]) from None
    return load_policy_files(files)


def policy_files_in(folder: str | os.PathLike[str]) -> list[str]:
    """The policy files of a folder, in the order they load."""
    if not Path(folder).is_dir():
        raise PolicyError("policy folder does not exist or is not a folder", file=str(folder))
    # Everything but a folder is a policy file: one that cannot be read must fail the load
    # (the last good set stays), not drop its policies silently as if it had been removed.
    return [
        os.path.join(folder, entry.name)
        for entry in sorted(Path(folder).iterdir())
        if entry.suffix in POLICY_SUFFIXES and not entry.name.startswith(".") and not entry.is_dir()
    ]


def load_policy_files(paths: Iterable[str | os.PathLike[str]]) -> PolicySet:
    """Load the files in the order given (a folder stands for its files, see
    `load_policy_dir`). Return the complete set or raise `PolicyLoadErrors`."""
    errors: list[ConfigError] = []
    loaded: list[tuple[str, list[Parsed]]] = []
    files = _expand(paths, errors)
    for display in files:
        file_errors = Errors(display, PolicyError)
        try:
            text = read_text(display, display, PolicyError)
        except ConfigError as exc:
            errors.append(exc)
            continue
        loaded.append((display, parse_policies(text, display, file_errors)))
        errors.extend(file_errors.sorted())
    result = _assemble(loaded, errors)
    if errors:
        order = {name: index for index, name in enumerate(files)}
        errors.sort(key=lambda error: (order.get(error.file or "", -1), error.line or 0))
        raise PolicyLoadErrors(errors)
    return result


def _expand(paths: Iterable[str | os.PathLike[str]], errors: list[ConfigError]) -> list[str]:
    files: list[str] = []
    for path in paths:
        if not Path(path).is_dir():
            files.append(str(path))
            continue
        try:
            files.extend(policy_files_in(path))
        except ConfigError as exc:
            errors.append(exc)
    return files


def parse_policy_text(text: str, filename: str = "<text>") -> PolicySet:
    """Parse one file's text into a PolicySet (raises `PolicyLoadErrors`)."""
    errors = Errors(filename, PolicyError)
    policies = parse_policies(text, filename, errors)
    all_errors: list[ConfigError] = errors.sorted()
    result = _assemble([(filename, policies)], all_errors)
    if all_errors:
        raise PolicyLoadErrors(all_errors)
    return result


def _assemble(loaded: list[tuple[str, list[Parsed]]], errors: list[ConfigError]) -> PolicySet:
    """Cross-file checks (unique names, one default) and the final set."""
    seen: dict[str, str] = {}
    default = DEFAULT_POLICY
    policies: list[Policy] = []
    for _, parsed in loaded:
        for name, file, line, policy in parsed:
            if name in seen:
                message = f"policy {name!r} is already defined at {seen[name]}"
                errors.append(PolicyError(message, file=file, line=line, key="name"))
                continue
            seen[name] = f"{file}:{line}"
            if policy is None:
                continue
            if name == DEFAULT_NAME:
                default = policy
            else:
                policies.append(policy)
    files = tuple(name for name, _ in loaded)
    return PolicySet(policies=tuple(policies), default=default, files=files)


# A policy as read from a file: name, file, line, and the Policy when it is valid (names of
# invalid ones still take part in the duplicate check).
Parsed = tuple[str, str, int, Policy | None]


def parse_policies(text: str, filename: str, errors: Errors) -> list[Parsed]:
    """The policies of one file's text; problems go to `errors` (the caller decides)."""
    try:
        root = compose(text, filename, PolicyError)
    except ConfigError as exc:
        errors.items.append(exc)
        return []
    if root is None:
        errors.add(1, None, "empty file: expected 'policies:' followed by a list of policies")
        return []
    if isinstance(root, MappingNode) and _has_key(root, "name") and not _has_key(root, "policies"):
        errors.add(
            root,
            None,
            "a file holds 'policies:', a list; put this policy under it as "
            "'policies:' then '- name: ...'",
        )
        return []
    entries = errors.entries(root, None, TOP_KEYS)
    if not isinstance(root, MappingNode):
        return []
    if "version" in entries:
        _check_version(entries["version"][1], errors)
    if "policies" not in entries:
        errors.add(root, "policies", "missing: expected 'policies:' followed by a list")
        return []
    items = entries["policies"][1]
    if not isinstance(items, SequenceNode):
        errors.add(
            items, "policies", f"expected a list of policies ('- name: ...'), got {kind_of(items)}"
        )
        return []
    built = (_parse_policy(item, filename, errors) for item in items.value)
    return [parsed for parsed in built if parsed is not None]


def _has_key(node: MappingNode, key: str) -> bool:
    return any(getattr(key_node, "value", None) == key for key_node, _ in node.value)


def _check_version(node: Node, errors: Errors) -> None:
    try:
        version = scalar_value(node)
    except ValueError as exc:
        errors.add(node, "version", str(exc))
        return
    if version != FORMAT_VERSION or isinstance(version, bool):
        errors.add(
            node,
            "version",
            f"{version!r} is not supported; this balloond reads version {FORMAT_VERSION}",
        )


def _parse_policy(node: Node, filename: str, errors: Errors) -> Parsed | None:
    before = len(errors.items)
    entries = errors.entries(node, _label(node), POLICY_KEYS)
    if not isinstance(node, MappingNode):
        return None
    name = _parse_name(node, entries, errors)
    before_match = len(errors.items)
    match = _parse_match(entries["match"][1], errors) if "match" in entries else Match()
    match_ok = len(errors.items) == before_match
    knobs: dict[str, Any] = {}
    for key, (_, value_node) in entries.items():
        if key in KNOBS_BY_NAME:
            value = _parse_value(KNOBS_BY_NAME[key], value_node, errors)
            if value is not _INVALID:
                knobs[key] = value
    _check_floor_ceiling(knobs, entries, errors)
    if name is not None:
        _check_match(name, match, entries, node, errors, match_ok)
    if name is None:
        return None
    line = line_of(node)
    if len(errors.items) > before:
        return name, filename, line, None
    policy = Policy(name=name, source=f"{filename}:{line}", match=match, **knobs)
    return name, filename, line, policy


def _label(node: Node) -> str:
    """ "policy 'web'" for messages, when the policy's name is a plain word."""
    if isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            if getattr(key_node, "value", None) == "name" and isinstance(value_node.value, str):
                return f"policy {value_node.value!r}"
    return "policy"


def _parse_name(node: Node, entries: dict[str, tuple[Node, Node]], errors: Errors) -> str | None:
    if "name" not in entries:
        errors.add(node, "name", "missing: every policy needs a name")
        return None
    value = _parse_value(Knob("name", POLICY_NAME, ""), entries["name"][1], errors)
    return value if isinstance(value, str) else None


_INVALID = object()


def _parse_value(knob: Knob, node: Node, errors: Errors) -> Any:
    try:
        return knob.kind.parse(scalar_value(node))
    except ValueError as exc:
        errors.add(node, knob.name, str(exc))
        return _INVALID


def _parse_match(node: Node, errors: Errors) -> Match:
    entries = errors.entries(node, "match", [field.name for field in MATCH_FIELDS])
    lists: dict[str, tuple[str, ...]] = {}
    for field in MATCH_FIELDS:
        if field.name in entries:
            lists[field.name] = _parse_list(field, entries[field.name][1], errors)
    return Match(**lists)


def _parse_list(field: Knob, node: Node, errors: Errors) -> tuple[str, ...]:
    key = f"match.{field.name}"
    if not isinstance(node, SequenceNode):
        errors.add(node, key, f"expected a list such as ['...'], got {kind_of(node)}")
        return ()
    values: list[str] = []
    for item in node.value:
        value = _parse_value(Knob(key, field.kind, ""), item, errors)
        if isinstance(value, str) and value not in values:
            values.append(value)
    return tuple(values)


def _check_match(
    name: str,
    match: Match,
    entries: dict[str, tuple[Node, Node]],
    node: Node,
    errors: Errors,
    match_ok: bool,
) -> None:
    if name == DEFAULT_NAME:
        if "match" in entries:
            errors.add(
                entries["match"][0],
                "match",
                "the 'default' policy applies to every "
                "domain no other policy matches; it takes no match",
            )
    elif "match" not in entries:
        errors.add(
            node,
            "match",
            f"missing: policy {name!r} needs a match (names, uuids or "
            "tags); only 'default' applies to every domain",
        )
    elif match.is_empty and match_ok:
        errors.add(
            entries["match"][1],
            "match",
            f"policy {name!r} matches nothing: list names, uuids or tags",
        )


def _check_floor_ceiling(
    knobs: dict[str, Any], entries: dict[str, tuple[Node, Node]], errors: Errors
) -> None:
    floor, ceiling = knobs.get("floor"), knobs.get("ceiling")
    if not isinstance(floor, Amount) or not isinstance(ceiling, Amount):
        return
    if floor.size is not None and ceiling.size is not None:
        larger = floor.size > ceiling.size
    elif floor.ratio is not None and ceiling.ratio is not None:
        larger = floor.ratio > ceiling.ratio
    else:
        return  # one absolute, one relative to maxmem: depends on the domain
    if larger:
        floor_node, ceiling_node = entries["floor"][1], entries["ceiling"][1]
        errors.add(
            floor_node,
            "floor",
            f"{_written(floor_node)} is larger than ceiling {_written(ceiling_node)}",
        )


def _written(node: Node) -> str:
    return repr(str(node.value))
