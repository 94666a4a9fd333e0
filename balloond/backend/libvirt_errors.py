"""Where libvirt's exceptions enter balloond, and the one place they are translated.

Every call into libvirt goes through `translated(what)`; nothing above the libvirt backend
sees a `libvirt.libvirtError`. The mapping:

    VIR_ERR_NO_DOMAIN, VIR_ERR_INVALID_DOMAIN          -> DomainNotFound
    VIR_ERR_INVALID_CONN, VIR_ERR_NO_CONNECT, RPC/EOF  -> ConnectionLost
    VIR_ERR_NO_SUPPORT, VIR_ERR_ARGUMENT_UNSUPPORTED   -> NotSupported
    anything else                                      -> OperationFailed
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import libvirt

from balloond.errors import (
    BackendError,
    ConnectionLost,
    DomainNotFound,
    NotSupported,
    OperationFailed,
)

_NOT_FOUND = frozenset({libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_INVALID_DOMAIN})
_CONNECTION = frozenset(
    {libvirt.VIR_ERR_INVALID_CONN, libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_AUTH_FAILED}
)
_UNSUPPORTED = frozenset({libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED})
# Errors raised by libvirt's RPC layer itself (not the remote driver's answer): the socket
# to libvirtd broke, or the daemon went away mid-call.
_TRANSPORT_DOMAINS = frozenset({libvirt.VIR_FROM_RPC, libvirt.VIR_FROM_REMOTE})
_TRANSPORT_CODES = frozenset({libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_ERR_RPC})


def _ignore_error(_opaque: object, _error: object) -> None:
    """libvirt prints every error to stderr unless a handler is registered; we report
    errors ourselves, once, in the operator's words."""


_setup_lock = threading.Lock()
_error_handler_registered = False


def register_quiet_error_handler() -> None:
    global _error_handler_registered
    with _setup_lock:
        if not _error_handler_registered:
            libvirt.registerErrorHandler(_ignore_error, None)
            _error_handler_registered = True


def error_code(exc: libvirt.libvirtError) -> int:
    code = exc.get_error_code()
    return int(code) if code is not None else -1


def translate(
    exc: libvirt.libvirtError, what: str, alive: Callable[[], bool] | None = None
) -> BackendError:
    """The balloond error for a libvirt error raised while doing `what`."""
    code = error_code(exc)
    domain = exc.get_error_domain()
    message = f"{what}: {exc.get_error_message() or exc}"
    if code in _NOT_FOUND:
        return DomainNotFound(message)
    if code in _CONNECTION or (domain in _TRANSPORT_DOMAINS and code in _TRANSPORT_CODES):
        return ConnectionLost(message)
    if code in _UNSUPPORTED:
        return NotSupported(message)
    if alive is not None and not _safe_alive(alive):
        # An ordinary-looking error on a connection that died under us.
        return ConnectionLost(f"{message} (connection lost)")
    return OperationFailed(message)


def _safe_alive(alive: Callable[[], bool]) -> bool:
    try:
        return alive()
    except libvirt.libvirtError:
        return False


@contextmanager
def translated(what: str, alive: Callable[[], bool] | None = None) -> Iterator[None]:
    """Run a block of libvirt calls; re-raise any libvirt error as a balloond error."""
    try:
        yield
    except libvirt.libvirtError as exc:
        raise translate(exc, what, alive) from exc
