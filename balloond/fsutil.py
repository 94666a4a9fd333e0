"""File operations for files root writes in places others can see: nothing here follows a
symlink, and what was written survives a power cut."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

PathLike = str | os.PathLike[str]


def make_private(path: PathLike) -> None:
    """Make the regular file at `path` mode 0600, or raise OSError. It is opened without
    following a symlink (ELOOP) and changed through that descriptor, so a file swapped for
    a link to something else changes nothing. A file of another user that cannot be made
    private (libvirtd handed it to its qemu user, root-squashed NFS) is an error too."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path}: not a regular file")
        with contextlib.suppress(PermissionError):  # judged by its mode below
            os.fchmod(fd, 0o600)
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
    finally:
        os.close(fd)
    if mode & 0o077:
        raise PermissionError(f"{path}: mode {mode:o} (another user's file), expected 600")


def sync_folder(folder: PathLike) -> None:
    """fsync a folder, so that a rename or link done in it is on disk too."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def size_of(path: PathLike) -> int:
    """The size of a file, without following a final symlink."""
    return os.lstat(Path(path)).st_size
