"""The lab's machine-wide lock (e2e.procs.session_lock): one lab at a time, from any checkout."""

from __future__ import annotations

import fcntl
import gc
from pathlib import Path
from typing import IO, Any

import pytest

from e2e import procs


def test_a_held_lock_times_out_and_leaves_no_file_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = tmp_path / "lab.lock"
    monkeypatch.setattr(procs, "LAB_LOCK", lock)
    with open(lock, "a+") as other:  # another checkout's lab holds it
        fcntl.flock(other, fcntl.LOCK_EX)
        with (
            pytest.raises(TimeoutError, match="another lab session holds"),
            procs.session_lock(timeout=0.2),
        ):
            pass
        gc.collect()  # an unclosed file would warn here (warnings are errors)


def test_the_lock_is_taken_and_given_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lock = tmp_path / "lab.lock"
    monkeypatch.setattr(procs, "LAB_LOCK", lock)
    with (
        procs.session_lock(timeout=1.0),
        open(lock, "a+") as other,
        pytest.raises(BlockingIOError),
    ):
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with open(lock, "a+") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again


class Interrupted(BaseException):
    """What pytest-timeout or Ctrl-C raises into a lab test waiting for the lock."""


def test_an_interrupted_wait_leaves_no_file_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = tmp_path / "lab.lock"
    monkeypatch.setattr(procs, "LAB_LOCK", lock)
    opened: list[IO[str]] = []
    real_open = open

    def remember(*args: Any, **kw: Any) -> Any:
        handle = real_open(*args, **kw)
        opened.append(handle)
        return handle

    def interrupt(seconds: float) -> None:
        raise Interrupted

    monkeypatch.setattr(procs, "open", remember, raising=False)
    monkeypatch.setattr(procs.time, "sleep", interrupt)
    with real_open(lock, "a+") as other:
        fcntl.flock(other, fcntl.LOCK_EX)
        with pytest.raises(Interrupted), procs.session_lock(timeout=60.0):
            pass
    assert [handle.closed for handle in opened] == [True]
