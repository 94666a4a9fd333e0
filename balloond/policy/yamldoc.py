"""Strict, hostile-input-safe YAML reading for policy and daemon config files.

Files are composed (never constructed) with PyYAML's safe loader (libyaml's when present)
so every value keeps its line. Refused before or while parsing, each with a message that
names file and line:
files over `MAX_FILE_BYTES` (checked before reading the text), bytes that are not UTF-8,
anchors and aliases (the alias "billion laughs" bomb needs them, and our formats never do),
nesting deeper than `MAX_DEPTH`, more than one document, tags other than YAML's plain
scalar/list/mapping types. Mapping keys must be unique strings.
"""

from __future__ import annotations

import difflib
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    ScalarEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from balloond.errors import ConfigError
from balloond.units import MiB

MAX_FILE_BYTES = MiB
MAX_DEPTH = 16

_YAML = "tag:yaml.org,2002:"
_SCALAR_TAGS = {f"{_YAML}{name}" for name in ("str", "int", "float", "bool", "null")}
_CONSTRUCT = SafeConstructor()
_MAX_NUMBER_CHARS = 40
_MAX_MESSAGE_CHARS = 300  # a hostile 1 MiB value must not become a 1 MiB log line


class _Refused(yaml.YAMLError):
    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


# libyaml (C) when PyYAML has it: composing a 1 MiB file takes about 1.5 s with it and
# 10 s without. The event pre-scan below makes both equally strict.
_LOADER: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _prescan(text: str) -> None:
    """Walk the parser's events before composing anything: refuse anchors and aliases (so
    no alias is ever expanded), deep nesting, and a second document."""
    depth = documents = 0
    for event in yaml.parse(text, Loader=_LOADER):
        line = event.start_mark.line + 1 if event.start_mark is not None else 1
        if isinstance(event, AliasEvent):
            raise _Refused(
                f"YAML aliases (*{event.anchor}) are not allowed: write the value out", line
            )
        if isinstance(event, ScalarEvent | CollectionStartEvent) and event.anchor:
            raise _Refused(f"YAML anchors (&{event.anchor}) are not allowed", line)
        if isinstance(event, CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise _Refused(f"nested deeper than {MAX_DEPTH} levels", line)
        elif isinstance(event, CollectionEndEvent):
            depth -= 1
        elif isinstance(event, DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise _Refused("a second YAML document starts here; one document per file", line)


def _where(error: yaml.YAMLError) -> int | None:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    return None if mark is None else mark.line + 1


def read_text(path: str, display: str, error_cls: type[ConfigError]) -> str:
    """The file's text, refusing big files before reading them and non-UTF-8 bytes."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):  # a FIFO or device would block or never end
            raise error_cls("not a regular file", file=display)
        if info.st_size > MAX_FILE_BYTES:
            raise _too_big(display, info.st_size, error_cls)
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)  # the file may grow between stat and read
    except OSError as exc:
        raise error_cls(f"cannot read: {exc.strerror or exc}{_link(path)}", file=display) from exc
    if len(data) > MAX_FILE_BYTES:
        raise _too_big(display, len(data), error_cls)
    return decode(data, display, error_cls)


def _link(path: str) -> str:
    """' (a symlink to X)' when `path` is one: a dangling or looping link says where it points."""
    try:
        return f" (a symlink to {os.readlink(path)!r})"
    except OSError:
        return ""


def _too_big(display: str, size: int, error_cls: type[ConfigError]) -> ConfigError:
    return error_cls(
        f"file is {size} bytes, over the {MAX_FILE_BYTES} byte (1 MiB) limit; not parsing it",
        file=display,
    )


def decode(data: bytes, display: str, error_cls: type[ConfigError]) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise error_cls(
            f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})",
            file=display,
            line=line,
        ) from None


def compose(text: str, display: str, error_cls: type[ConfigError]) -> Node | None:
    """The file's single YAML document as a node tree (None when the file is empty)."""
    if len(text) > MAX_FILE_BYTES:
        raise error_cls(f"text is over the {MAX_FILE_BYTES} byte (1 MiB) limit", file=display)
    try:
        _prescan(text)
        loader = _LOADER(text)
        try:
            node: Node | None = loader.get_single_node()
        finally:
            loader.dispose()
        return node
    except _Refused as exc:
        raise error_cls(exc.message, file=display, line=exc.line) from None
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        raise error_cls(f"invalid YAML: {exc.reason}", file=display, line=line) from None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error_cls(f"invalid YAML: {problem}", file=display, line=_where(exc)) from None
    except RecursionError:
        raise error_cls("invalid YAML: nested too deeply", file=display) from None


def line_of(node: Node) -> int:
    return int(node.start_mark.line) + 1


def shown(node: Node) -> str:
    """A value as the operator wrote it, quoted, for messages."""
    if isinstance(node, ScalarNode):
        text = str(node.value)
        return repr(text if len(text) <= 60 else text[:57] + "...")
    return "a list" if isinstance(node, SequenceNode) else "a mapping"


def kind_of(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    names = {"str": "a string", "int": "an integer", "float": "a number", "bool": "a boolean"}
    return names.get(str(node.tag).removeprefix(_YAML), "null" if _is_null(node) else "a value")


def _is_null(node: Node) -> bool:
    return bool(node.tag == f"{_YAML}null")


def scalar_value(node: Node) -> Any:
    """The Python value of a plain scalar node; raise ValueError for lists, maps, odd tags."""
    if not isinstance(node, ScalarNode):
        raise ValueError(f"expected a single value, got {kind_of(node)}")
    if node.tag not in _SCALAR_TAGS:
        raise ValueError(f"unsupported YAML type {node.tag!r} for {shown(node)}")
    tag = str(node.tag).removeprefix(_YAML)
    if tag in ("int", "float") and len(str(node.value)) > _MAX_NUMBER_CHARS:
        raise ValueError(f"number {shown(node)} is implausibly long")
    method = "construct_scalar" if tag == "str" else f"construct_yaml_{tag}"
    constructor = getattr(_CONSTRUCT, method)
    return constructor(node)


def unknown_key(word: str, known: list[str], parent: str | None) -> str:
    """ "unknown key in match (did you mean 'names'?)", or the list of known keys."""
    where = f" in {parent}" if parent else ""
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    if close:
        return f"unknown key{where} (did you mean {close[0]!r}?)"
    return f"unknown key{where}; known keys: {', '.join(known)}"


@dataclass
class Errors:
    """Collects every error found in a file so the operator sees them all at once."""

    file: str
    error_cls: type[ConfigError]
    items: list[ConfigError] = field(default_factory=list)

    def add(self, node: Node | int | None, key: str | None, message: str) -> None:
        line = line_of(node) if isinstance(node, Node) else node
        if len(message) > _MAX_MESSAGE_CHARS:
            message = message[: _MAX_MESSAGE_CHARS - 1] + "…"
        self.items.append(self.error_cls(message, file=self.file, line=line, key=key))

    def sorted(self) -> list[ConfigError]:
        """The errors in line order (cross-key checks are found after the keys they name)."""
        return sorted(self.items, key=lambda error: error.line or 0)

    def entries(
        self, node: Node, key: str | None, allowed: Iterable[str] | None = None
    ) -> dict[str, tuple[Node, Node]]:
        """A mapping node's entries by key (key node, value node). Reports non-mappings,
        non-string and duplicate keys, and keys outside `allowed` with a did-you-mean."""
        if not isinstance(node, MappingNode):
            self.add(node, key, f"expected a mapping (key: value lines), got {kind_of(node)}")
            return {}
        known = None if allowed is None else list(allowed)
        result: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            name = key_node.value if isinstance(key_node, ScalarNode) else None
            if not isinstance(name, str) or key_node.tag != f"{_YAML}str":
                self.add(key_node, key, f"keys must be plain words, got {shown(key_node)}")
            elif name in result:
                first = line_of(result[name][0])
                self.add(key_node, name, f"duplicate key (first set on line {first})")
            elif known is not None and name not in known:
                self.add(key_node, name, unknown_key(name, known, key))
            else:
                result[name] = (key_node, value_node)
        return result
