"""Save, restore and migration for the simulated host.

A saved image is a small JSON file naming the guest and its memory; the guest's model state
stays in this process (keyed by the image's real path) so a restore continues where the
save left off. A restore in another process rebuilds the guest from the scenario by name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass

from balloond.backend.base import JobProgress, MigrationResult
from balloond.errors import OperationFailed
from balloond.sim.guest import SimGuest
from balloond.sim.scenario import Scenario
from balloond.units import GiB, KiB

FORMAT = "balloond-sim-save/1"
TRANSFER_RATE = 1 * GiB  # bytes/s of a simulated migration stream
MAX_IMAGE_BYTES = 64 * KiB

_SAVED: dict[str, SimGuest] = {}


@dataclass(frozen=True, slots=True)
class Image:
    name: str
    uuid: str
    memory: int
    maxmem: int
    host: str


def write_image(path: str, guest: SimGuest, host_uri: str) -> None:
    record = {
        "format": FORMAT,
        "name": guest.spec.name,
        "uuid": guest.uuid,
        "memory": guest.current,
        "maxmem": guest.maxmem,
        "host": host_uri,
    }
    try:
        with open(path, "x", encoding="utf-8") as out:  # "x": never overwrite an image
            json.dump(record, out)
    except FileExistsError:
        raise OperationFailed(
            f"domain '{guest.spec.name}': save file {path} already exists"
        ) from None
    except OSError as exc:
        raise OperationFailed(
            f"domain '{guest.spec.name}': cannot write {path}: {exc.strerror}"
        ) from exc
    _SAVED[os.path.realpath(path)] = guest


def read_image(path: str) -> Image:
    try:
        with open(path, "rb") as image:
            data = image.read(MAX_IMAGE_BYTES + 1)
    except OSError as exc:
        raise OperationFailed(f"cannot read saved image {path}: {exc.strerror}") from exc
    try:  # UnicodeDecodeError is a ValueError: binary garbage is "not an image" too
        record = json.loads(data.decode("utf-8")) if len(data) <= MAX_IMAGE_BYTES else None
    except ValueError:
        record = None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise OperationFailed(f"{path} is not a simulated host's saved image")
    try:
        return Image(
            name=str(record["name"]),
            uuid=str(record["uuid"]),
            memory=_positive(record["memory"]),
            maxmem=_positive(record["maxmem"]),
            host=str(record["host"]),
        )
    except (KeyError, TypeError, ValueError):
        raise OperationFailed(f"{path}: saved image is damaged") from None


def _positive(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(value)
    return value


def guest_for_image(image: Image, path: str, scenario: Scenario) -> SimGuest:
    guest = _SAVED.get(os.path.realpath(path))
    if guest is not None:
        return guest
    for index, spec in enumerate(scenario.guests):
        if spec.name == image.name:
            rebuilt = SimGuest(spec, scenario.name, domain_id=len(scenario.guests) + index + 1)
            rebuilt.current = rebuilt.target = min(image.memory, rebuilt.maxmem)
            return rebuilt
    raise OperationFailed(
        f"saved image {path}: domain '{image.name}' is not part of scenario '{scenario.name}'"
    )


def forget_image(path: str) -> None:
    _SAVED.pop(os.path.realpath(path), None)


def simulate_transfer(
    memory: int,
    live: bool,
    max_downtime: float | None,
    progress: Callable[[JobProgress], None] | None,
) -> MigrationResult:
    """A migration that takes no real time; progress is reported in quarters."""
    duration = memory / TRANSFER_RATE
    if progress is not None:
        for quarter in range(1, 5):
            done = memory * quarter // 4
            progress(
                JobProgress(
                    processed=done,
                    remaining=memory - done,
                    total=memory,
                    dirty_rate=0,
                    elapsed=duration * quarter / 4,
                )
            )
    downtime = duration if not live else min(0.05, max_downtime or 0.05)
    return MigrationResult(duration=duration, bytes_transferred=memory, downtime=downtime)
