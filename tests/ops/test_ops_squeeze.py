"""--squeeze's wait, on the simulated host (its balloon moves over simulated time)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from balloond.errors import DomainNotFound
from balloond.ops.squeeze import squeeze
from balloond.units import GiB, MiB


class SimClock:
    def __init__(self, backend: object) -> None:
        self.now = 0.0
        self.backend = backend

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.backend.advance(seconds)  # type: ignore[attr-defined]


@pytest.fixture
def sim() -> Iterator[object]:
    simulated = pytest.importorskip("balloond.backend.simulated")
    backend = simulated.open_simulated("sim://default?clock=manual")
    yield backend
    backend.close()


def test_squeeze_waits_until_the_guest_gets_there(sim: object) -> None:
    clock = SimClock(sim)
    result = squeeze(
        sim,
        "idle",
        GiB,
        timeout=60,
        poll=1.0,  # type: ignore[arg-type]
        clock=lambda: clock.now,
        sleep=clock.sleep,
    )
    assert result.complete and result.reached <= GiB + 4 * MiB
    assert result.before == 2 * GiB and 0 < result.seconds < 60


def test_squeeze_gives_up_at_the_timeout(sim: object) -> None:
    clock = SimClock(sim)
    result = squeeze(
        sim,
        "web",
        256 * MiB,
        timeout=2,
        poll=1.0,  # type: ignore[arg-type]
        clock=lambda: clock.now,
        sleep=clock.sleep,
    )
    assert not result.complete
    assert 256 * MiB < result.reached < 2 * GiB  # on its way down
    assert result.seconds == 2.0


def test_nothing_to_squeeze(sim: object) -> None:
    result = squeeze(sim, "idle", 4 * GiB, timeout=60)  # type: ignore[arg-type]
    assert result.seconds == 0.0 and result.reached == result.before


def test_a_vanished_guest_stops_the_squeeze(sim: object) -> None:
    sim.vanish("idle")  # type: ignore[attr-defined]
    with pytest.raises(DomainNotFound):
        squeeze(sim, "idle", GiB, timeout=60)  # type: ignore[arg-type]
