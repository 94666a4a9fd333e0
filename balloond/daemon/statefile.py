"""The daemon's state that must survive a restart, in one JSON file in `state_dir`.

It holds the decision core's controller state (stuck marks and the like, as
`ControllerState.to_dict()` gives it) and the holds the daemon keeps itself (those its
control socket was asked for when the backend cannot store holds with the domain).

Writes are atomic (temp file in the same folder, fsync, rename, fsync of the folder), so a
crash leaves either the old or the new file, never half of one; the temp files of a write
that a crash interrupted are removed at the next start. A file that cannot be read or parsed,
or that is not a regular file at all (a FIFO would block the start, a device or a symlink is
not ours), is logged, set aside as `<name>.bad` without being opened, and the daemon starts
empty: a restart must never be blocked by its own leftovers. One damaged hold among good
ones is set aside alone (into `<name>.bad`); the others are kept.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from balloond.fsutil import sync_folder
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
        self._remove_leftovers()
        try:
            data = self._read()
        except FileNotFoundError:
            return PersistedState()
        except ValueError as error:  # not a regular file: never opened, set aside
            self._damaged(str(error))
            return PersistedState()
        except OSError as error:
            log.error("state file %s unreadable (%s); starting with empty state", self.path, error)
            return PersistedState()
        try:
            state, bad_holds = self._parse(data)
        except ValueError as error:
            self._damaged(str(error))
            return PersistedState()
        if bad_holds:
            self._set_holds_aside(bad_holds)
            self._last_written = None  # the next tick writes the file without them
        else:
            self._last_written = _render(state)
        return state

    def _read(self) -> bytes:
        """The file's bytes. Raises ValueError, before opening it, for anything but a
        regular file: opening a FIFO blocks until a writer comes, a device may act."""
        _check_regular(os.lstat(self.path))
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(self.path, flags)
        with os.fdopen(fd, "rb") as handle:
            _check_regular(os.fstat(fd))  # swapped after the lstat: still refused
            return handle.read(MAX_STATE_BYTES + 1)

    def _damaged(self, why: str) -> None:
        log.error(
            "state file %s is damaged (%s); set aside as %s.bad, starting empty",
            self.path,
            why,
            self.path.name,
        )
        self._set_aside()

    def _remove_leftovers(self) -> None:
        """Temp files of writes a crash (or `kill -9`) interrupted: only this daemon writes
        here, and it is starting, so none of them is being written."""
        try:
            entries = list(os.scandir(self.path.parent))
        except OSError:
            return
        prefix = f".{self.path.name}."
        for entry in entries:
            if entry.name.startswith(prefix) and entry.is_file(follow_symlinks=False):
                log.info("removing %s, left by an interrupted state write", entry.path)
                _unlink_quietly(entry.path)

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
        sync_folder(self.path.parent)  # the rename itself survives a power cut
        self._last_written = text
        return True

    def _parse(self, data: bytes) -> tuple[PersistedState, dict[str, object]]:
        """The state, and the raw hold entries that were damaged (left out of it)."""
        if len(data) > MAX_STATE_BYTES:
            raise ValueError(f"larger than {MAX_STATE_BYTES} bytes")
        try:
            raw = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as error:
            raise ValueError(f"not JSON: {str(error)[:120]}") from None
        if not isinstance(raw, dict):
            raise ValueError("top level is not an object")
        if raw.get("version") != FORMAT_VERSION:
            raise ValueError(f"version {raw.get('version')!r:.40} is not {FORMAT_VERSION}")
        controller, raw_holds = raw.get("controller", {}), raw.get("holds", {})
        if not isinstance(controller, dict) or not isinstance(raw_holds, dict):
            raise ValueError("'controller' and 'holds' must be objects")
        holds: dict[str, Hold] = {}
        bad: dict[str, object] = {}
        for uuid, entry in raw_holds.items():
            try:
                holds[str(uuid)] = hold_from_dict(entry)
            except ValueError as error:
                log.error("state file %s: hold of %s set aside: %s", self.path, uuid, error)
                bad[str(uuid)] = entry
        return PersistedState(controller=controller, holds=holds), bad

    def _set_aside(self) -> None:
        try:
            os.replace(self.path, self.bad_path)
        except OSError as error:
            log.warning("could not set aside damaged state file %s: %s", self.path, error)

    def _set_holds_aside(self, bad: dict[str, object]) -> None:
        """The damaged entries go to `<name>.bad` for the operator to look at."""
        text = json.dumps({"version": FORMAT_VERSION, "holds": bad}, sort_keys=True, default=str)
        try:
            self.bad_path.write_text(text + "\n", encoding="utf-8")
        except OSError as error:
            log.warning("could not set aside damaged holds in %s: %s", self.bad_path, error)

    @property
    def bad_path(self) -> Path:
        return self.path.with_name(self.path.name + ".bad")


def _check_regular(info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"it is a {_kind(info.st_mode)}, not a regular file")


def _kind(mode: int) -> str:
    kinds = (
        (stat.S_ISLNK, "symlink"),
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISDIR, "folder"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    )
    return next((name for test, name in kinds if test(mode)), "special file")


def _render(state: PersistedState) -> str:
    # No indent: only the compact form uses the C encoder (a 1,000-domain state: ~3 ms).
    text = json.dumps(state.to_json(), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return text + "\n"


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
