"""The daemon's state that must survive a restart, in one JSON file in `state_dir`.

It holds the decision core's controller state (stuck marks and the like, as
`ControllerState.to_dict()` gives it) and the holds the daemon keeps itself (those its
control socket was asked for when the backend cannot store holds with the domain).

Writes are atomic (temp file in the same folder, fsync, rename), so a crash leaves either
the old or the new file, never half of one. A file that cannot be read or parsed is logged,
set aside as `<name>.bad`, and the daemon starts empty: a restart must never be blocked by
its own leftovers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from balloond.model import Hold
from balloond.units import MiB

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
STATE_FILE_NAME = "state.json"
# A state file this large is not ours (the real one is a few KiB even with 1000 domains).
MAX_STATE_BYTES = 16 * MiB


@dataclass(frozen=True)
class PersistedState:
    controller: Mapping[str, Any] = field(default_factory=dict)
    holds: Mapping[str, Hold] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "controller": dict(self.controller),
            "holds": {uuid: hold_to_dict(hold) for uuid, hold in sorted(self.holds.items())},
        }


def hold_to_dict(hold: Hold) -> dict[str, Any]:
    return {
        "domain": hold.domain,
        "owner": hold.owner,
        "reason": hold.reason,
        "until": hold.until,
        "target": hold.target,
        "pid": hold.pid,
    }


def hold_from_dict(raw: object) -> Hold:
    """Build a Hold from untrusted JSON; ValueError names the bad field."""
    if not isinstance(raw, dict):
        raise ValueError(f"hold must be an object, got: {raw!r:.80}")
    domain, owner, reason = raw.get("domain"), raw.get("owner", ""), raw.get("reason", "")
    if not isinstance(domain, str) or not domain:
        raise ValueError(f"hold domain must be a non-empty string, got: {domain!r:.80}")
    if not isinstance(owner, str) or not isinstance(reason, str):
        raise ValueError("hold owner and reason must be strings")
    until = _optional_number(raw.get("until"), "until")
    target = raw.get("target")
    if target is not None and (isinstance(target, bool) or not isinstance(target, int)):
        raise ValueError(f"hold target must be bytes as an integer, got: {target!r:.80}")
    if target is not None and target < 0:
        raise ValueError(f"hold target must not be negative, got: {target}")
    pid = raw.get("pid")
    if pid is not None and (isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0):
        raise ValueError(f"hold pid must be a positive integer, got: {pid!r:.80}")
    return Hold(
        domain=domain, owner=owner[:200], reason=reason[:500], until=until, target=target, pid=pid
    )


def _optional_number(value: object, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"hold {name} must be a number, got: {value!r:.80}")
    return float(value)


class StateFile:
    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.path = Path(state_dir) / STATE_FILE_NAME
        self._last_written: str | None = None

    def load(self) -> PersistedState:
        """The saved state, or an empty one when there is none or it is garbage."""
        try:
            with self.path.open("rb") as handle:
                data = handle.read(MAX_STATE_BYTES + 1)
        except FileNotFoundError:
            return PersistedState()
        except OSError as error:
            log.error("state file %s unreadable (%s); starting with empty state", self.path, error)
            return PersistedState()
        try:
            state = self._parse(data)
        except ValueError as error:
            log.error(
                "state file %s is damaged (%s); set aside as %s.bad, starting empty",
                self.path,
                error,
                self.path.name,
            )
            self._set_aside()
            return PersistedState()
        self._last_written = _render(state)
        return state

    def save(self, state: PersistedState) -> bool:
        """Write `state` if it differs from what is on disk; return True when written."""
        text = _render(state)
        if text == self._last_written:
            return False
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.path)
        except BaseException:
            _unlink_quietly(temp)
            raise
        self._last_written = text
        return True

    def _parse(self, data: bytes) -> PersistedState:
        if len(data) > MAX_STATE_BYTES:
            raise ValueError(f"larger than {MAX_STATE_BYTES} bytes")
        try:
            raw = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
            raise ValueError(f"not JSON: {error}") from None
        if not isinstance(raw, dict):
            raise ValueError("top level is not an object")
        if raw.get("version") != FORMAT_VERSION:
            raise ValueError(f"version {raw.get('version')!r:.40} is not {FORMAT_VERSION}")
        controller, holds = raw.get("controller", {}), raw.get("holds", {})
        if not isinstance(controller, dict) or not isinstance(holds, dict):
            raise ValueError("'controller' and 'holds' must be objects")
        return PersistedState(
            controller=controller,
            holds={str(uuid): hold_from_dict(hold) for uuid, hold in holds.items()},
        )

    def _set_aside(self) -> None:
        try:
            os.replace(self.path, self.path.with_name(self.path.name + ".bad"))
        except OSError as error:
            log.warning("could not set aside damaged state file %s: %s", self.path, error)


def _render(state: PersistedState) -> str:
    # No indent: only the compact form uses the C encoder (a 1,000-domain state: ~3 ms).
    text = json.dumps(state.to_json(), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return text + "\n"


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
