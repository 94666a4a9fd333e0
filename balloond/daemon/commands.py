"""The control socket's commands, served from a running `Daemon`.

    status                          the daemon's health and counters
    list                            every domain, `xm list` columns plus policy fields
    explain  domain=NAME            inputs, policy, selector and why the target is what it is
    holds                           active holds
    hold     domain=NAME [owner=, reason=, seconds=, target=, pid=]
    release  domain=NAME            clear a hold (the backend's and the daemon's own)
    balloon  domain=NAME target=BYTES [force=, seconds=]
                                    `balloonctl balloon` done by the daemon itself, for a
                                    host that lives inside its process (sim://, test:///)
    operation operation=save|restore|migrate|balloon|maxmem result=ok|failed|refused
              [duration=S downtime=S]
                                    count an operator command in the daemon's metrics

Every argument arrives from a client and is checked here before use.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, cast

from balloond import telemetry
from balloond.backend import in_process
from balloond.backend.base import Backend, HoldStore
from balloond.daemon import present
from balloond.daemon.control import Handler, RequestError, UnknownDomain
from balloond.daemon.loop import Daemon
from balloond.errors import BackendError, Refused
from balloond.model import DomainSnapshot, Hold
from balloond.ops.context import OpsBackend, OpsContext
from balloond.ops.memory import BalloonResult, balloon
from balloond.units import MAX_SIZE, format_size

MAX_TEXT = 500


def handlers(daemon: Daemon, extra_status: Callable[[], Mapping[str, Any]]) -> dict[str, Handler]:
    def status(_request: Mapping[str, Any]) -> object:
        now = daemon.clock()
        return present.status(daemon, daemon.policies.current, extra_status(), now)

    def list_(_request: Mapping[str, Any]) -> object:
        snapshot = daemon.last_snapshot()
        return {
            "uri": daemon.uri,
            "rows": present.list_rows(daemon, daemon.clock()),
            "connected": daemon.connected,
            "taken_at": None if snapshot is None else snapshot.taken_at,
            "now": daemon.clock(),
        }

    def explain(request: Mapping[str, Any]) -> object:
        key = _text(request, "domain", required=True)
        result = present.explain(daemon, daemon.policies.current, key, daemon.clock())
        if result is None:
            raise UnknownDomain(f"domain {key!r} is not known to the daemon on {daemon.uri}")
        return {"uri": daemon.uri, **result}

    def holds(_request: Mapping[str, Any]) -> object:
        return {"uri": daemon.uri, "holds": present.holds_list(daemon, daemon.clock())}

    def hold(request: Mapping[str, Any]) -> object:
        return put_hold(daemon, request)

    def release(request: Mapping[str, Any]) -> object:
        return release_hold(daemon, _text(request, "domain", required=True))

    def operation(request: Mapping[str, Any]) -> object:
        return record_operation(daemon, request)

    def balloon_(request: Mapping[str, Any]) -> object:
        return balloon_in_process(daemon, request)

    return {
        "status": status,
        "list": list_,
        "explain": explain,
        "holds": holds,
        "hold": hold,
        "release": release,
        "operation": operation,
        "balloon": balloon_,
    }


OPERATIONS = frozenset(telemetry.OPERATIONS)
RESULTS = frozenset(telemetry.OPERATION_RESULTS)


def record_operation(daemon: Daemon, request: Mapping[str, Any]) -> dict[str, Any]:
    """balloonctl runs save/restore/migrate itself; it reports them here so that the daemon's
    metrics count them. Labels come from fixed sets: a client cannot add label values."""
    operation = _text(request, "operation", required=True)
    result = _text(request, "result", required=True)
    if operation not in OPERATIONS:
        raise RequestError(f"'operation' must be one of {sorted(OPERATIONS)}, got: {operation!r}")
    if result not in RESULTS:
        raise RequestError(f"'result' must be one of {sorted(RESULTS)}, got: {result!r}")
    daemon.counters().record_operation(
        operation,
        result,
        duration=_number(request, "duration"),
        downtime=_nonnegative(request, "downtime"),
    )
    return {"recorded": True}


def _nonnegative(request: Mapping[str, Any], key: str) -> float | None:
    value = request.get(key)
    if value == 0 and not isinstance(value, bool):
        return 0.0
    return _number(request, key)


def put_hold(daemon: Daemon, request: Mapping[str, Any]) -> dict[str, Any]:
    domain = _known_domain(daemon, _text(request, "domain", required=True))
    seconds = _number(request, "seconds")
    target = _size(request, "target")
    if target is not None and target > domain.maxmem:
        # A pin above maxmem can never be reached, but it would be promised: the host
        # budget would go to it and the other domains be shrunk for "contention".
        raise RequestError(
            f"'target' {format_size(target)} is above domain '{domain.name}''s maxmem "
            f"{format_size(domain.maxmem)}"
        )
    now = daemon.clock()
    hold = Hold(
        domain=domain.uuid,
        owner=_text(request, "owner") or "balloonctl hold",
        reason=_text(request, "reason") or "held by an operator",
        until=None if seconds is None else now + seconds,
        target=target,
        pid=_pid(request),
    )
    where = _store_hold(daemon, domain, hold)
    daemon.wake()
    return {
        "domain": domain.name,
        "uuid": domain.uuid,
        "stored": where,
        "hold": present.hold_dict(hold, now),
    }


def _store_hold(daemon: Daemon, domain: DomainSnapshot, hold: Hold) -> str:
    """Where the hold went: the backend's store when it has one that works, else the daemon's."""
    backend = daemon.backend
    if isinstance(backend, HoldStore):
        try:
            backend.put_hold(domain.name, hold)
            return "backend"
        except BackendError:
            pass  # the daemon keeps it instead
    daemon.holds_book.put(domain.uuid, hold)
    return "daemon"


def release_hold(daemon: Daemon, key: str) -> dict[str, Any]:
    domain = _known_domain(daemon, key)
    had = domain.uuid in daemon.holds()
    released_own = daemon.holds_book.release(domain.uuid)
    backend = daemon.backend
    if isinstance(backend, HoldStore):
        backend.clear_hold(domain.name)  # BackendError answers the client as an error
    daemon.wake()
    return {"domain": domain.name, "uuid": domain.uuid, "released": had or released_own}


def balloon_in_process(daemon: Daemon, request: Mapping[str, Any]) -> dict[str, Any]:
    """`balloonctl balloon` on a host that lives inside the daemon: done here, with the
    same rule (`balloond.ops.memory.balloon`: floor, maxmem, pin first), between ticks."""
    if not in_process(daemon.uri):
        raise RequestError(
            f"{daemon.uri} is reachable by balloonctl itself; 'balloon' is for in-process hosts"
        )
    domain = _known_domain(daemon, _text(request, "domain", required=True))
    target = _size(request, "target")
    if target is None:
        raise RequestError("'target' (bytes) is required")
    force = request.get("force", False)
    if not isinstance(force, bool):
        raise RequestError(f"'force' must be true or false, got: {force!r:.60}")
    seconds = _number(request, "seconds")
    policies = daemon.policies.current

    def act(backend: Backend) -> BalloonResult:
        if not isinstance(backend, HoldStore):
            raise Refused(f"{daemon.uri}: this host keeps no holds")
        # Not a context manager: closing it would close the daemon's own connection.
        ops = OpsContext(_policies=policies).use(cast(OpsBackend, backend))
        return balloon(ops, domain.name, target, force=force, hold_for=seconds)

    result = daemon.operate(act)
    return {
        "domain": result.name,
        "previous": result.previous,
        "target": result.target,
        "floor": result.floor,
        "hold": present.hold_dict(result.hold, daemon.clock()),
    }


def _known_domain(daemon: Daemon, key: str) -> DomainSnapshot:
    domain = present.find_domain(daemon, key)
    if domain is None:
        raise UnknownDomain(f"domain {key!r} is not known to the daemon on {daemon.uri}")
    return domain


def _text(request: Mapping[str, Any], key: str, *, required: bool = False) -> str:
    value = request.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise RequestError(f"'{key}' must be a non-empty string, got: {value!r:.60}")
    if len(value) > MAX_TEXT:
        raise RequestError(f"'{key}' is longer than {MAX_TEXT} characters")
    return value


def _number(request: Mapping[str, Any], key: str) -> float | None:
    value = request.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestError(f"'{key}' must be a number, got: {value!r:.60}")
    if not math.isfinite(value) or value <= 0 or value > 10 * 365 * 86400:
        raise RequestError(f"'{key}' must be a positive number of seconds, got: {value!r:.60}")
    return float(value)


def _size(request: Mapping[str, Any], key: str) -> int | None:
    value = request.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_SIZE:
        raise RequestError(f"'{key}' must be a positive number of bytes, got: {value!r:.60}")
    return value


def _pid(request: Mapping[str, Any]) -> int | None:
    value = request.get("pid")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 1 << 31:
        raise RequestError(f"'pid' must be a positive integer, got: {value!r:.60}")
    return value
