"""What every operator command needs: the config, a backend for the URI, the policies (for
floors) and a domain looked up by name."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from balloond.backend.base import Backend, DomainLookup, HoldStore, Operations
from balloond.config import DaemonConfig, config_path, effective_uri, load_config
from balloond.errors import ConfigError, DomainNotFound
from balloond.model import DomainSnapshot
from balloond.policy.model import Policy, PolicySet


class OpsBackend(Backend, Operations, HoldStore, Protocol):
    """A backend that can do everything balloonctl asks of it."""


def destination_uri(dest: str, source_uri: str) -> str:
    """`migrate`'s DEST: a libvirt URI as given, or a host name that becomes
    `<driver>+ssh://HOST/system` for the source's driver (qemu unless the source is Xen)."""
    if "://" in dest or dest.endswith(":///"):
        return dest
    if not dest or any(c in dest for c in "/?#@ ") or dest.startswith("-"):
        raise ConfigError(f"migration destination {dest!r} is neither a host name nor a URI")
    scheme = urlsplit(source_uri).scheme.split("+", 1)[0]
    driver = "xen" if scheme in ("xen", "libxl") else "qemu"
    return f"{driver}+ssh://{dest}/system"


@dataclass
class OpsContext:
    """Config + URI + lazily opened backend and policies. Use as a context manager."""

    config: DaemonConfig = field(default_factory=DaemonConfig)
    uri: str | None = None
    _backend: Any = None
    _policies: PolicySet | None = None

    @classmethod
    def load(cls, *, config: str | None, connect: str | None) -> OpsContext:
        path = config_path(config)
        loaded = load_config(path)
        return cls(config=loaded, uri=effective_uri(connect, loaded))

    @property
    def backend(self) -> OpsBackend:
        if self._backend is None:
            from balloond.backend import open_backend

            self._backend = open_backend(self.uri or self.config.uri)
        backend: OpsBackend = self._backend
        return backend

    def use(self, backend: OpsBackend) -> OpsContext:
        """Work on an already opened backend (tests, the real-VM lab)."""
        self._backend = backend
        self.uri = backend.uri
        return self

    @property
    def policies(self) -> PolicySet:
        if self._policies is None:
            self._policies = load_policies(self.config.policy_dir)
        return self._policies

    def policy_for(self, dom: DomainSnapshot) -> Policy:
        from balloond.policy.match import select

        return select(self.policies, dom)

    def floor_for(self, dom: DomainSnapshot) -> int:
        return self.policy_for(dom).floor_for(dom.maxmem)

    def reserve(self, host_total: int) -> int:
        return self.config.reserve_for(host_total)

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def __enter__(self) -> OpsContext:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def load_policies(policy_dir: str) -> PolicySet:
    """The policy set of the daemon's folder; the built-in default when the folder does not
    exist (a host where balloond was never configured still has floors)."""
    if not os.path.isdir(policy_dir):
        return PolicySet()
    from balloond.policy.loader import load_policy_dir

    return load_policy_dir(policy_dir)


def find_domain(backend: Backend, name: str) -> DomainSnapshot:
    """One domain by name, active or (where the backend keeps them) shut off.

    The backend's own one-domain lookup comes first, and its "not found" is final: it reads
    that domain alone, where a listing reads every domain on the host (libvirt: each one's
    balloon statistics, a QEMU monitor round trip per domain, which `squeeze` would pay on
    every poll), and it finds what a listing cannot (libvirt's shut-off domains). Both give
    the same snapshot of an active domain. Without a lookup, the listing it is."""
    if isinstance(backend, DomainLookup):
        try:
            return backend.domain(name)
        except DomainNotFound as exc:  # libvirt's own words add nothing to this
            raise DomainNotFound(f"domain '{name}' not found on {backend.uri}") from exc
    for dom in backend.domains():
        if dom.name == name:
            return dom
    raise DomainNotFound(f"domain '{name}' not found on {backend.uri}")
