"""Text from elsewhere made harmless for a terminal.

Domain names come from whoever defines domains, and answers on a control socket from
whatever listens there: either may hold terminal escapes (ESC ] sets the window title, ESC [
2J clears the screen, an 8-bit CSI does the same on some terminals) or bidi overrides that
reorder what the operator reads. Every string balloonctl prints that it did not write itself
goes through `printable` first: such characters are shown as `\\x1b`, `\\u202e`, never sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# C0 controls and DEL, C1 controls, and the Unicode format characters that reorder or hide
# text (bidi embeddings, overrides and isolates, zero-width marks, the BOM).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_UNSAFE_BUT_NEWLINE = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, lines: bool = False) -> str:
    """`text` with every control or reordering character written out as an escape; with
    `lines`, newlines are kept (an error of several lines), else escaped too (a cell)."""
    return (_UNSAFE_BUT_NEWLINE if lines else _UNSAFE).sub(_escape, text)


def printable_data(value: Any) -> Any:
    """A JSON-like answer with every string in it (keys too) made `printable`."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, Mapping):
        return {printable_data(key): printable_data(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [printable_data(item) for item in value]
    return value
