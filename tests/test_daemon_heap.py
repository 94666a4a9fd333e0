"""The daemon's garbage-collector settings (balloond.daemon.heap)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from balloond.cli import daemon_cmds
from balloond.daemon import heap


@pytest.fixture
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_settle_freezes_startup_objects_and_raises_only_the_young_threshold(
    restore_gc: None,
) -> None:
    gc.set_threshold(700, 10, 10)
    frozen_before = gc.get_freeze_count()
    startup = {"policies": [[] for _ in range(100)]}  # containers startup leaves behind
    heap.settle()
    assert gc.get_threshold() == (heap.YOUNG_THRESHOLD, 10, 10)
    assert gc.get_freeze_count() >= frozen_before + 101  # never scanned again
    assert startup["policies"] == [[]] * 100  # frozen is not freed


def test_a_cycle_made_after_settling_is_still_collected(restore_gc: None) -> None:
    heap.settle()
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1  # a full collection, as the raised threshold eventually runs


class _Runner:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def install_signal_handlers(self) -> None:
        self.calls.append("signals")

    def start(self) -> None:
        self.calls.append("start")

    def wait(self, duration: float | None) -> None:
        self.calls.append(f"wait {duration}")

    def shutdown(self) -> None:
        self.calls.append("shutdown")


def test_run_and_demo_settle_the_heap_before_the_first_tick(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runner = _Runner()
    monkeypatch.setattr(heap, "settle", lambda: runner.calls.append("settle"))
    daemon_cmds._run_until_stopped(runner, 1.0)  # type: ignore[arg-type]
    assert runner.calls == ["settle", "signals", "start", "wait 1.0", "shutdown"]
