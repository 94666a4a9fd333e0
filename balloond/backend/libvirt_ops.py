"""The explicit operations (save, restore, migrate) of the libvirt backend, as a mixin.

Saved images hold guest memory: they are created mode 0600 and never overwrite a file.
When libvirtd runs on this machine (a URI without a host) the file is pre-created here with
O_EXCL and mode 0600, so there is no moment where the image exists with wider permissions and
no race with another writer; libvirt then writes into it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractContextManager, suppress
from typing import Any

from balloond.backend.base import JobProgress, MigrationResult
from balloond.backend.libvirt_migrate import run_migration
from balloond.backend.libvirt_xml import MAX_SAVED_XML, libxl_saved_xml, saved_image_facts
from balloond.errors import NotSupported, OperationFailed
from balloond.fsutil import make_private


class LibvirtOperationsMixin:
    """Needs `_conn`, `_call(what)`, `_lookup(name)` and `is_local` from the backend."""

    _conn: Any
    _uri: str

    def _call(self, what: str) -> AbstractContextManager[None]:
        raise NotImplementedError

    def _lookup(self, name: str) -> Any:
        raise NotImplementedError

    @property
    def is_local(self) -> bool:
        raise NotImplementedError

    def save(self, name: str, path: str) -> None:
        dom = self._lookup(name)
        path = os.path.abspath(path) if self.is_local else path
        created = False
        if self.is_local:
            created = _create_private(name, path)
        try:
            with self._call(f"domain '{name}': saving to '{path}'"):
                dom.save(path)
        except BaseException:
            if created:
                _remove_quietly(path)
            raise
        if self.is_local:
            _make_private(name, path)

    def saved_image_memory(self, path: str) -> tuple[str, int]:
        if self.is_local and not os.path.exists(path):
            raise OperationFailed(f"saved image '{path}' does not exist")
        try:
            try:
                with self._call(f"saved image '{path}'"):
                    xml = self._conn.saveImageGetXMLDesc(path, 0)
            except NotSupported:
                if not self.is_local:
                    raise
                xml = _libxl_image_xml(path)  # Xen's libxl driver: read its header here
        except OperationFailed as exc:
            raise OperationFailed(
                f"'{path}' is not a saved domain image (damaged, truncated or foreign): {exc}"
            ) from exc
        try:
            return saved_image_facts(str(xml))
        except ValueError as exc:
            raise OperationFailed(f"saved image '{path}': {exc}") from exc

    def restore(self, path: str) -> str:
        name, _memory = self.saved_image_memory(path)  # refuses damaged files before restoring
        with self._call(f"restoring domain '{name}' from '{path}'"):
            self._conn.restore(path)
        return name

    def migrate(
        self,
        name: str,
        dest_uri: str,
        *,
        live: bool,
        max_downtime: float | None = None,
        progress: Callable[[JobProgress], None] | None = None,
        data_uri: str | None = None,
        poll_interval: float = 0.5,
    ) -> MigrationResult:
        """See `Operations.migrate`. `data_uri` is where QEMU sends the memory stream (e.g.
        tcp://10.0.0.2) when it differs from the destination's libvirt address."""
        dom = self._lookup(name)
        return run_migration(
            dom,
            name,
            dest_uri,
            call=self._call,
            live=live,
            max_downtime=max_downtime,
            progress=progress,
            data_uri=data_uri,
            poll_interval=poll_interval,
        )


def _create_private(name: str, path: str) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise OperationFailed(
            f"domain '{name}': '{path}' already exists; not overwriting it"
        ) from None
    except OSError as exc:
        raise OperationFailed(f"domain '{name}': cannot create '{path}': {exc}") from exc
    os.close(fd)
    return True


def _make_private(name: str, path: str) -> None:
    """libvirt may recreate the file with its own mode; make sure it ends up 0600, through
    a descriptor opened without following links (a path swapped for a link to another
    file must not make that file 0600)."""
    try:
        make_private(path)
    except OSError as exc:
        raise OperationFailed(f"domain '{name}': saved image '{path}': {exc}") from exc


def _remove_quietly(path: str) -> None:
    """Remove a file this process created exclusively (a failed save leaves no half image)."""
    with suppress(OSError):
        os.unlink(path)


def _libxl_image_xml(path: str) -> str:
    try:
        with open(path, "rb") as image:
            head = image.read(64 + MAX_SAVED_XML)
        return libxl_saved_xml(head)
    except (OSError, ValueError) as exc:
        raise OperationFailed(f"{exc}") from exc
