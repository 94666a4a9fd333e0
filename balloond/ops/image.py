"""`balloonctl save` and `restore`: a domain's state to a file and back.

A saved image holds guest memory, so it is private (mode 0600) and never replaces an existing
file unless asked (`--force`). root writes it, and libvirt opens it by name, so no other
user may be able to swap the path for a link while it does (that once let a local user
have guest memory written over any root-owned file):

- the folder, and every folder above it, must belong to root or to the invoking user and be
  writable by no one else (a sticky folder such as /tmp excepted: others cannot rename what
  is not theirs there), as ssh's StrictModes asks of a home folder;
- libvirt writes into a fresh folder of mode 0700 made for this save inside it, where only
  we can name anything; the image is made private through a descriptor opened without
  following links, then linked into place without replacing anything (renamed over the old
  file with `--force`), so the name appears only when the image is complete and a failed
  save leaves nothing behind.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from balloond.backend.base import Backend, Locality
from balloond.errors import ConfigError, OperationFailed, Refused
from balloond.fsutil import make_private, size_of, sync_folder
from balloond.ops.context import OpsBackend, OpsContext, find_domain
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
        if local:
            check_disk_room(name, path, memory, _free_bytes(os.path.dirname(path)))
        start = time.monotonic()
        if local:
            _save_privately(backend, name, path, force=force)
        else:
            backend.save(name, path)
        seconds = time.monotonic() - start
    size = size_of(path) if local else None
    return SaveResult(name, path, size, seconds, memory, squeezed)


SCRATCH_PREFIX = ".balloond-save-"


def _save_privately(backend: OpsBackend, name: str, path: str, *, force: bool) -> None:
    """Save into a fresh 0700 folder beside `path`, then put the image in place."""
    folder = os.path.dirname(path)
    scratch = tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=folder)  # 0700, ours
    image = os.path.join(scratch, "image")
    try:
        backend.save(name, image)
        _check_private(name, image)
    except BaseException:
        _remove_scratch(scratch)
        raise
    # The domain is saved now and this is its only copy: from here on a failure keeps it.
    _put_in_place(name, image, path, force=force)
    _remove_scratch(scratch)
    sync_folder(folder)


def _check_private(name: str, image: str) -> None:
    try:
        make_private(image)
    except OSError as exc:
        raise OperationFailed(f"domain '{name}': saved image not put in place: {exc}") from exc


def _put_in_place(name: str, image: str, path: str, *, force: bool) -> None:
    """Link the image to `path` without replacing anything (rename over it with `force`:
    the old file or link itself is replaced, never followed). If that fails (`path` was
    created meanwhile), the image stays where it is and the error says where."""
    try:
        if force:
            os.replace(image, path)
        else:
            os.link(image, path, follow_symlinks=False)
    except OSError as exc:
        why = "was created while saving" if isinstance(exc, FileExistsError) else str(exc)
        raise OperationFailed(
            f"domain '{name}': '{path}' {why}; the image is kept in '{image}'"
        ) from None


def _remove_scratch(scratch: str) -> None:
    """The save's own folder (and the image's second name, once linked in place): only we
    can name things in it, so what is there is ours."""
    with suppress(OSError):
        for entry in os.scandir(scratch):
            os.unlink(entry.path)
        os.rmdir(scratch)


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
    check_folder_safe(name, folder)


def check_disk_room(name: str, path: str, memory: int, free: int | None) -> None:
    """Refuse, before the guest is suspended, an image that cannot fit where it goes: an
    image is about the domain's balloon size. On Xen a save that runs out of space leaves
    the domain suspended while libvirt calls it running (seen in the Xen lab, tests/xen)."""
    if free is not None and free < memory:
        raise Refused(
            f"domain '{name}': its image needs about {format_size(memory)}, but the "
            f"file system of '{path}' has only {format_size(free)} free"
        )


def _free_bytes(folder: str) -> int | None:
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def check_folder_safe(name: str, folder: str, uid: int | None = None) -> None:
    """Refuse a folder in which another user could swap the image's path for a link while
    root's libvirtd writes it: the folder or one above it belongs to someone other than
    root or `uid` (the invoking user), or someone else may write in it. A sticky folder
    (/tmp) is safe: others cannot rename or remove what is not theirs there."""
    uid = os.geteuid() if uid is None else uid
    real = os.path.realpath(folder)
    for place in [real, *(str(p) for p in Path(real).parents)]:
        info = os.lstat(place)
        why = _unsafe(info, uid)
        if why is not None:
            where = f"folder '{folder}'" if place == real else f"'{place}', above '{folder}',"
            raise Refused(
                f"domain '{name}': {where} {why}: another user could swap the image for a "
                "link while it is written; save into a folder only root (or you) can write"
            )


def _unsafe(info: os.stat_result, uid: int) -> str | None:
    if info.st_uid not in (0, uid):
        return f"belongs to {_owner(info.st_uid)}"
    if info.st_mode & stat.S_ISVTX:
        return None  # sticky: others cannot rename or remove what is not theirs
    if info.st_mode & stat.S_IWOTH:
        return "is writable by every user"
    if info.st_mode & stat.S_IWGRP:
        return f"is writable by group {_group(info.st_gid)}"
    return None


def _owner(uid: int) -> str:
    try:
        return f"user '{pwd.getpwuid(uid).pw_name}' (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _group(gid: int) -> str:
    try:
        return f"'{grp.getgrgid(gid).gr_name}' (gid {gid})"
    except KeyError:
        return f"gid {gid}"


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
