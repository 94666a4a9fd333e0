"""Telling a running daemon what an operator command did, so that its metrics count it
(`balloond_operations_total{operation,result}`, migration duration and downtime).

balloonctl does the work in its own process: the daemon learns of it only from this one
best-effort message on its control socket. With no daemon listening nothing happens, and the
command's own outcome (its exit code, its one line) never depends on the report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from balloond.errors import ConfigError, Refused

log = logging.getLogger(__name__)

OK = "ok"
FAILED = "failed"
REFUSED = "refused"
ABORTED = "aborted"

Send = Callable[..., bool]


def result_of(error: BaseException | None) -> str:
    """The daemon's label for how an operation ended (pure: tested with values)."""
    if error is None:
        return OK
    if isinstance(error, KeyboardInterrupt):
        return ABORTED
    if isinstance(error, Refused | ConfigError):  # nothing was changed
        return REFUSED
    return FAILED


@dataclass
class Outcome:
    """Filled in by the command when it succeeds: figures more precise than the wall time
    of the whole command (a migration's own duration and its measured downtime)."""

    duration: float | None = None
    downtime: float | None = None


def _default_send(path: str, operation: str, result: str, **figures: float | None) -> bool:
    from balloond.daemon.control import report_operation

    try:
        return report_operation(path, operation, result, **figures)
    except Exception as exc:  # e.g. an odd socket path: the command's outcome still stands
        log.debug("operation %s/%s not reported: %s", operation, result, exc)
        return False


@contextmanager
def reported(
    socket: str | None,
    operation: str,
    *,
    send: Send = _default_send,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[Outcome]:
    """Report how the block ends (ok, refused, failed, aborted by Ctrl-C) to the daemon
    listening on `socket` (None: report nothing). The block's exception goes on unchanged."""
    outcome = Outcome()
    start = clock()
    try:
        yield outcome
    except BaseException as error:
        if socket is not None:
            send(socket, operation, result_of(error), duration=clock() - start)
        raise
    if socket is not None:
        duration = outcome.duration if outcome.duration is not None else clock() - start
        send(socket, operation, OK, duration=duration, downtime=outcome.downtime)


def daemon_socket(config_uri: str, control_socket: str, uri: str | None) -> str | None:
    """Where to report an operation on `uri`: the config's daemon manages the config's URI;
    an operation on another host (`--connect` elsewhere) is not its to count."""
    if uri is not None and uri != config_uri:
        return None
    return control_socket
