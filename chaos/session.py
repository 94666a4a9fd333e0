"""The daemons the attacks share, started when first needed and stopped by pid at the end."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chaos.lab import Daemon

SIM_URI = "sim://default?speed=10"


class Session:
    def __init__(self, root: Path, tree: Path | None) -> None:
        self.root = root
        self.tree = tree
        self._daemons: dict[str, Daemon] = {}
        self._shared: dict[str, Any] = {}
        self._closers: list[Callable[[], None]] = []
        self._counter = 0

    def folder(self, name: str) -> Path:
        """A fresh private folder for one attack's own files (short: unix socket paths)."""
        self._counter += 1
        path = self.root / f"{self._counter:02d}{name[:8]}"
        path.mkdir(mode=0o700)
        return path

    def open_folder(self, name: str) -> Path:
        """A fresh folder other users can reach (the session's own root is private)."""
        path = Path(tempfile.mkdtemp(prefix=f"balloond-chaos-{name}-"))
        path.chmod(0o755)
        self.on_close(lambda: shutil.rmtree(path, ignore_errors=True))
        return path

    def daemon(
        self, name: str, uri: str = SIM_URI, settings: dict[str, object] | None = None
    ) -> Daemon:
        """The shared daemon `name`, started (again, if an attack stopped it) on first use."""
        daemon = self._daemons.get(name)
        if daemon is None:
            daemon = Daemon(self.root / name, uri, tree=self.tree, settings=settings)
            self._daemons[name] = daemon
        if not daemon.running():
            daemon.start()
        return daemon

    def fresh(self, name: str, uri: str = SIM_URI) -> Daemon:
        """A daemon of one attack's own (not started yet), stopped with the others."""
        daemon = Daemon(self.folder(name), uri, tree=self.tree)
        self._daemons[f"{name}-{self._counter}"] = daemon
        return daemon

    def shared(self, key: str, make: Callable[[], Any]) -> Any:
        """Something several attacks use (a host with its guests), made on first use."""
        if key not in self._shared:
            self._shared[key] = make()
        return self._shared[key]

    def on_close(self, closer: Callable[[], None]) -> None:
        self._closers.append(closer)

    def close(self) -> None:
        for daemon in self._daemons.values():
            try:
                daemon.stop()
            except (OSError, subprocess.SubprocessError):
                daemon.kill9()
        for closer in reversed(self._closers):
            closer()
