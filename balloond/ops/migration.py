"""`balloonctl migrate`: move a domain to another host, live or not.

Before anything moves, the destination's free memory is checked against what the domain
needs there (its balloon size, after `--squeeze`, plus the host reserve). The backend aborts
the migration on failure or Ctrl-C, leaving the guest running here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from balloond.backend.base import HostIdentity, JobProgress, MigrationResult
from balloond.errors import BalloondError, Refused
from balloond.model import DomainState
from balloond.ops.context import OpsContext, destination_uri, find_domain
from balloond.ops.holding import clear_command_hold, working_hold
from balloond.ops.image import check_room
from balloond.ops.squeeze import SqueezeResult, squeeze

DEFAULT_SQUEEZE_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class MigrateResult:
    name: str
    dest_uri: str
    memory: int  # the balloon size that travelled
    result: MigrationResult
    squeezed: SqueezeResult | None = None
    total_seconds: float = 0.0  # including the checks and the squeeze


def open_destination(uri: str) -> Any:
    from balloond.backend import open_backend

    return open_backend(uri)


def migrate_domain(
    ctx: OpsContext,
    name: str,
    dest: str,
    *,
    live: bool = True,
    squeeze_to_floor: bool = False,
    squeeze_timeout: float = DEFAULT_SQUEEZE_TIMEOUT,
    max_downtime: float | None = None,
    progress: Callable[[JobProgress], None] | None = None,
    force: bool = False,
    data_uri: str | None = None,
    destination: Any = None,
) -> MigrateResult:
    """Migrate `name` to `dest` (a host name or a libvirt URI). `force` skips the
    destination capacity check (not the migration's own checks). `destination` is an
    already open backend for `dest` (tests, the real-VM lab); it is left open."""
    start = time.monotonic()
    backend = ctx.backend
    dest_uri = destination_uri(dest, backend.uri)
    dom = find_domain(backend, name)
    target = destination if destination is not None else open_destination(dest_uri)
    try:
        floor = ctx.floor_for(dom)
        needed = min(dom.current, floor) if squeeze_to_floor else dom.current
        check = not force and dom.state != DomainState.SHUTOFF  # offline: its definition only
        if check:
            _check_destination(ctx, target, name, needed, dest_uri)
        _check_elsewhere(backend, target, name, dest_uri)
        squeezed = None
        with working_hold(backend, dom, "balloonctl migrate", f"migrating to {dest_uri}"):
            if squeeze_to_floor:
                squeezed = squeeze(backend, name, floor, timeout=squeeze_timeout)
            memory = find_domain(backend, name).current
            if check and memory > needed:  # the guest stopped short of its floor
                _check_destination(ctx, target, name, memory, dest_uri)
            extra: dict[str, Any] = {"data_uri": data_uri} if data_uri else {}
            result = backend.migrate(
                name, dest_uri, live=live, max_downtime=max_downtime, progress=progress, **extra
            )
        _forget_travelling_hold(target, name, dom.uuid)
    finally:
        if destination is None:
            target.close()
    return MigrateResult(
        name=name,
        dest_uri=dest_uri,
        memory=memory,
        result=result,
        squeezed=squeezed,
        total_seconds=time.monotonic() - start,
    )


def _check_elsewhere(source: Any, target: Any, name: str, uri: str) -> None:
    """Refuse a destination that is this same host, whatever --force says. libvirt's QEMU
    driver refuses it itself; its libxl driver tries, is refused by its own prepare step,
    and is left calling the domain 'paused (migrating)' while Xen runs it, unable to resume
    it (seen in the Xen lab): the daemon then leaves the domain alone as busy."""
    if not (isinstance(source, HostIdentity) and isinstance(target, HostIdentity)):
        return
    here = source.host_identity()
    if here is not None and here == target.host_identity():
        raise Refused(
            f"domain '{name}': '{uri}' is this same host ({here}); migrate to another host"
        )


def _check_destination(ctx: OpsContext, target: Any, name: str, needed: int, uri: str) -> None:
    host = target.host()
    check_room(name, needed, ctx.reserve(host.total), host.free, f"'{uri}'")


def _forget_travelling_hold(target: Any, name: str, uuid: str) -> None:
    """The command hold travelled in the live XML; on the new host it means nothing."""
    with suppress(BalloondError):  # else the destination's daemon expires it by its dead pid
        clear_command_hold(target, name, uuid)
