"""`balloonctl save` and `restore`: a domain's state to a file and back.

A saved image holds guest memory, so it is private (mode 0600) and never replaces an existing
file unless asked (`--force`); even then it is written next to the old one and renamed over
it only once complete, so a failed save leaves the old image intact.
"""

from __future__ import annotations

import os
import time
from contextlib import suppress
from dataclasses import dataclass

from balloond.backend.base import Backend, Locality
from balloond.errors import ConfigError, OperationFailed, Refused
from balloond.ops.context import OpsContext, find_domain
from balloond.ops.holding import clear_command_hold, working_hold
from balloond.ops.squeeze import SqueezeResult, squeeze
from balloond.units import format_size

DEFAULT_SQUEEZE_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class SaveResult:
    name: str
    path: str
    size: int | None  # bytes written (None: the image is on a remote host)
    seconds: float  # the save itself
    memory: int  # the domain's balloon size when saved
    squeezed: SqueezeResult | None = None


@dataclass(frozen=True, slots=True)
class RestoreResult:
    name: str
    path: str
    memory: int
    seconds: float


def save_domain(
    ctx: OpsContext,
    name: str,
    path: str,
    *,
    force: bool = False,
    squeeze_to_floor: bool = False,
    squeeze_timeout: float = DEFAULT_SQUEEZE_TIMEOUT,
) -> SaveResult:
    backend = ctx.backend
    local = _paths_are_local(backend)
    if not path:
        raise ConfigError(f"domain '{name}': no file name to save to")
    if local:
        path = os.path.abspath(path)
        check_image_path(name, path, force=force)
    dom = find_domain(backend, name)
    squeezed = None
    with working_hold(backend, dom, "balloonctl save", f"saving to {path}"):
        if squeeze_to_floor:
            floor = ctx.floor_for(dom)
            squeezed = squeeze(backend, name, floor, timeout=squeeze_timeout)
        memory = find_domain(backend, name).current
        target = _scratch_path(path) if local and os.path.lexists(path) else path
        start = time.monotonic()
        try:
            backend.save(name, target)
        except BaseException:
            if target != path and os.path.exists(target):
                os.unlink(target)
            raise
        seconds = time.monotonic() - start
        if local:
            _make_private(target)
        if target != path:
            os.replace(target, path)
    size = os.path.getsize(path) if local else None
    return SaveResult(name, path, size, seconds, memory, squeezed)


def check_image_path(name: str, path: str, *, force: bool) -> None:
    """Refuse, before the guest is touched (and squeezed), a FILE that cannot become its
    image: an existing one (unless `force`), a directory or device, a missing folder."""
    if os.path.isdir(path):
        raise Refused(f"domain '{name}': '{path}' is a directory; name a file inside it")
    if os.path.lexists(path):
        if not force:
            raise Refused(f"domain '{name}': '{path}' already exists (use --force to replace it)")
        # A symlink is replaced itself (never followed); a device or fifo is not replaced.
        if not os.path.isfile(path) and not os.path.islink(path):
            raise Refused(f"domain '{name}': '{path}' is not a regular file; not replacing it")
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise Refused(f"domain '{name}': folder '{folder}' does not exist")
    if not os.access(folder, os.W_OK):
        raise Refused(f"domain '{name}': cannot write in folder '{folder}'")


def _make_private(path: str) -> None:
    """The image holds guest memory: 0600 whatever the backend created it with (the libvirt
    backend pre-creates it so; another backend may not)."""
    with suppress(PermissionError):  # not ours (libvirtd's qemu user): the backend checked
        os.chmod(path, 0o600)


def _scratch_path(path: str) -> str:
    folder, base = os.path.split(path)
    return os.path.join(folder, f".{base}.balloond-{os.getpid()}.tmp")


def check_room(name: str, memory: int, reserve: int, free: int, where: str) -> None:
    """Refuse when the host cannot take the domain (pure: tested with tables)."""
    if memory + reserve > free:
        raise Refused(
            f"domain '{name}': needs {format_size(memory)} + host reserve "
            f"{format_size(reserve)} = {format_size(memory + reserve)}, but {where} has "
            f"only {format_size(free)} free"
        )


def restore_domain(ctx: OpsContext, path: str, *, force: bool = False) -> RestoreResult:
    """Restore a saved domain after checking the host has room for it (unless `force`).
    A damaged or foreign file fails before anything changes."""
    backend = ctx.backend
    if not path:
        raise ConfigError("no saved image to restore from")
    if _paths_are_local(backend) and os.path.isdir(path):
        raise OperationFailed(f"'{path}' is a directory, not a saved domain image")
    name, memory = backend.saved_image_memory(path)
    if not force:
        host = backend.host()
        check_room(name, memory, ctx.reserve(host.total), host.free, f"host '{backend.uri}'")
    start = time.monotonic()
    restored = backend.restore(path)
    seconds = time.monotonic() - start
    dom = find_domain(backend, restored)
    # The save command's hold was recorded in the live XML and came back with the image.
    clear_command_hold(backend, restored, dom.uuid)
    return RestoreResult(name=restored, path=path, memory=memory, seconds=seconds)


def _paths_are_local(backend: Backend) -> bool:
    """Whether a path we are given names the file the backend will read or write, so that
    it can be checked here first. A backend that cannot be elsewhere works on our files."""
    return backend.is_local if isinstance(backend, Locality) else True
