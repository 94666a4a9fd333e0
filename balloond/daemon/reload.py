"""Policy reload: on SIGHUP, and when the policy folder changes.

The folder is fingerprinted each tick (names, sizes, mtimes: one `scandir`, cheap). A change
loads the whole set again; if any file is wrong the error is logged as "file:line: key:
message", counted, and the last good set keeps running. A set is swapped in whole or not at
all, so nothing is ever half-applied.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from balloond.errors import ConfigError
from balloond.policy.loader import POLICY_SUFFIXES, load_policy_dir
from balloond.policy.model import PolicySet
from balloond.telemetry import Telemetry

log = logging.getLogger(__name__)

Fingerprint = tuple[tuple[str, int, int], ...]
Loader = Callable[[Path], PolicySet]


def fingerprint(folder: Path | None) -> Fingerprint:
    """What changes when a policy file is added, removed, renamed or rewritten."""
    if folder is None:
        return ()
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return ()  # like an empty folder: the built-in default until files appear
    except OSError:
        return (("<unreadable>", 0, 0),)
    marks = []
    for entry in entries:
        if not entry.name.endswith(POLICY_SUFFIXES) or entry.name.startswith("."):
            continue  # the loader skips hidden files (editor swap files) too
        try:
            stat = entry.stat()
        except OSError:
            continue  # vanished between scandir and stat: the next tick sees the rest
        marks.append((entry.name, stat.st_mtime_ns, stat.st_size))
    return tuple(sorted(marks))


def default_loader(folder: Path) -> PolicySet:
    return load_policy_dir(folder)


class PolicyWatcher:
    """Owns the running policy set. `current` is always a complete, validated set."""

    def __init__(
        self,
        folder: str | os.PathLike[str] | None,
        telemetry: Telemetry,
        *,
        loader: Loader = default_loader,
        initial: PolicySet | None = None,
    ) -> None:
        self.folder = Path(folder) if folder is not None else None
        self._telemetry = telemetry
        self._loader = loader
        self._current = initial if initial is not None else PolicySet()
        self._seen: Fingerprint | None = None
        self._requested = threading.Event()
        self._lock = threading.Lock()

    @property
    def current(self) -> PolicySet:
        return self._current

    def load_initial(self, *, required: bool = True) -> PolicySet:
        """Load at start. Unlike a reload this raises: with no last good set to fall back
        on, starting on a broken set would silently run policies the operator did not write.
        A folder that does not exist is an error when `required` (named by the operator),
        else the built-in default runs until the folder appears."""
        self._seen = fingerprint(self.folder)
        if self.folder is None:
            return self._current
        if not required and not self.folder.exists():
            log.warning(
                "policy folder %s does not exist; using the built-in default policy until it does",
                self.folder,
            )
            return self._current
        self._current = self._loader(self.folder)
        self._telemetry.record_policy_load(None)
        log.info("policies loaded from %s: %s", self.folder, describe(self._current))
        return self._current

    def request_reload(self) -> None:
        """Ask for a reload at the next `check` (safe from a signal handler)."""
        self._requested.set()

    def check(self) -> bool:
        """Reload if asked to or if the folder changed; return True if a new set is running."""
        if self.folder is None:
            self._requested.clear()
            return False
        mark = fingerprint(self.folder)
        if not self._requested.is_set() and mark == self._seen:
            return False
        self._requested.clear()
        self._seen = mark
        return self.reload()

    def reload(self) -> bool:
        """Load the whole folder now; keep the last good set on any error."""
        if self.folder is None:
            return False
        if not self.folder.exists() and not self._current.files:
            return False  # still absent, nothing loaded from it yet: nothing wrong
        with self._lock:
            try:
                policies = self._load(self.folder)
            except ConfigError as error:
                # One log line per error, each "file:line: key: message".
                for line in str(error).splitlines():
                    log.error("policy reload failed, keeping the last good set: %s", line)
                self._telemetry.record_policy_load(str(error))
                return False
            except OSError as error:
                message = f"{self.folder}: {error.strerror or error}"
                log.error("policy reload failed, keeping the last good set: %s", message)
                self._telemetry.record_policy_load(message)
                return False
            except Exception as error:  # a loader bug must not stop the balancing either
                message = f"{self.folder}: internal error: {type(error).__name__}: {error}"
                log.exception("policy reload failed, keeping the last good set")
                self._telemetry.record_policy_load(message)
                return False
            self._current = policies
            self._telemetry.record_policy_load(None)
            log.info("policies reloaded from %s: %s", self.folder, describe(policies))
            return True

    def _load(self, folder: Path) -> PolicySet:
        """The folder's set. A folder that had policy files and is gone, or has none now
        (emptied while a deploy rewrites it), fails like a broken file does: falling back to
        the built-in default for a tick would move every domain to the default's floor."""
        had = len(self._current.files)
        files = f"{had} file{'' if had == 1 else 's'}"
        if had and not folder.is_dir():
            raise ConfigError(f"the policy folder is gone (it had {files})", file=str(folder))
        policies = self._loader(folder)
        if had and not policies.files:
            raise ConfigError(
                f"the policy folder has no policy files (it had {files}); to run on the "
                "built-in default alone, leave one file holding 'policies: []'",
                file=str(folder),
            )
        return policies


def describe(policies: PolicySet) -> str:
    names = [policy.name for policy in policies.policies]
    return f"{len(names)} policies ({', '.join(names) or 'none'}) + default"
