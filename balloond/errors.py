"""The one exception tree of balloond.

    BalloondError                      anything balloond raises on purpose
    ├── ConfigError                    a daemon config or policy file is wrong (file, line, key)
    │   └── PolicyError                a policy file is wrong
    ├── BackendError                   the hypervisor backend failed
    │   ├── ConnectionLost             the connection to the hypervisor is gone
    │   ├── DomainNotFound             the domain vanished or never existed
    │   ├── NotSupported               the hypervisor cannot do this
    │   └── OperationFailed            the hypervisor refused or failed an operation
    ├── ReportRejected                 an untrusted guest report was refused (with a reason)
    ├── Refused                        an operator command was refused before it changed anything
    └── ControlError                   the daemon's control socket failed or answered an error

Messages name the thing and the value: "domain 'web1': target 256 MiB is below its floor 512 MiB".
Only `balloond.backend.libvirt` sees libvirt's own exceptions; it re-raises them as these with
`from exc`.
"""

from __future__ import annotations


class BalloondError(Exception):
    """Base of every error balloond raises on purpose."""


class ConfigError(BalloondError):
    """A configuration file is invalid. Carries where, so the message can name it."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.key = key
        self.detail = message
        super().__init__(self._render())

    def _render(self) -> str:
        where = ""
        if self.file is not None:
            where = self.file if self.line is None else f"{self.file}:{self.line}"
            where += ": "
        key = f"{self.key}: " if self.key else ""
        return f"{where}{key}{self.detail}"


class PolicyError(ConfigError):
    """A policy file is invalid."""


class BackendError(BalloondError):
    """The hypervisor backend failed."""


class ConnectionLost(BackendError):
    """The connection to the hypervisor is gone; the caller may reconnect."""


class DomainNotFound(BackendError):
    """The domain vanished (or never existed)."""


class NotSupported(BackendError):
    """The hypervisor or driver cannot do this operation."""


class OperationFailed(BackendError):
    """The hypervisor refused or failed an operation."""


class ReportRejected(BalloondError):
    """An untrusted guest report was refused. `reason` is a short metric label."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


class Refused(BalloondError):
    """An operator command was refused before it changed anything."""


class ControlError(BalloondError):
    """The daemon's control socket failed, or the daemon answered with an error."""
