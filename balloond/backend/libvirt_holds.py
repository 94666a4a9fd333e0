"""The libvirt backend's HoldStore, as a mixin: holds live in each domain's own metadata.

One element in its own namespace (see `libvirt_xml`), written to the live domain and, for a
persistent domain, to its config too, so `balloonctl` and the daemon (any process, with or
without the daemon, across daemon restarts) see the same holds. A hold that names the pid of
a command on this host that has died is returned as expired.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Any

import libvirt

from balloond.backend.libvirt_errors import error_code
from balloond.backend.libvirt_xml import (
    HOLD_KEY,
    HOLD_NS,
    DomainXmlFacts,
    StoredHold,
    hold_element,
    parse_hold,
)
from balloond.errors import DomainNotFound, OperationFailed
from balloond.model import Hold
from balloond.pids import pid_alive

log = logging.getLogger(__name__)

_LIVE = libvirt.VIR_DOMAIN_AFFECT_LIVE
_CONFIG = libvirt.VIR_DOMAIN_AFFECT_CONFIG


class LibvirtHoldsMixin:
    """Needs `_conn`, `_uri`, `_hostname`, `_call(what)`, `_lookup(name)` and `_for_each`."""

    _conn: Any
    _uri: str
    _hostname: str
    _metadata_events: bool

    def _call(self, what: str) -> AbstractContextManager[None]:
        raise NotImplementedError

    def _lookup(self, name: str) -> Any:
        raise NotImplementedError

    def _xml_facts(self, dom: Any, dom_id: int) -> tuple[DomainXmlFacts, int | None]:
        raise NotImplementedError

    def holds(self) -> dict[str, Hold]:
        with self._call(f"listing domains on '{self._uri}'"):
            doms = self._conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
        # Watched metadata: the facts `domains()` just cached hold the hold too (a change
        # fires an event that drops them). Otherwise one metadata read per domain.
        read_one = self._cached_hold if self._metadata_events else self._active_hold
        read = self._for_each(read_one, doms)
        return {hold.domain: hold for hold in read if hold is not None}

    def _for_each(self, func: Callable[[Any], Any], doms: list[Any]) -> list[Any]:
        """`func` over `doms`, in parallel on a large host (LibvirtBackend._for_each)."""
        raise NotImplementedError

    def _active_hold(self, dom: Any) -> Hold | None:
        try:
            return self._read_hold(dom, active=True)  # listed as active: no isActive RPC
        except DomainNotFound:
            return None

    def _cached_hold(self, dom: Any) -> Hold | None:
        name = str(dom.name())
        try:
            with self._call(f"domain '{name}': reading its hold"):
                facts, _ = self._xml_facts(dom, int(dom.ID()))
        except DomainNotFound:
            return None
        except OperationFailed as exc:
            log.warning("%s", exc)
            return None
        return self._judged(facts.hold)

    def get_hold(self, name: str) -> Hold | None:
        """The hold on one domain, if any (expired ones included)."""
        return self._read_hold(self._lookup(name))

    def _read_hold(self, dom: Any, active: bool | None = None) -> Hold | None:
        uuid = str(dom.UUIDString())
        name = str(dom.name())
        try:
            with self._call(f"domain '{name}': reading its hold"):
                if active is None:
                    active = bool(dom.isActive())
                flags = _LIVE if active else _CONFIG
                try:
                    xml = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, HOLD_NS, flags)
                except libvirt.libvirtError as exc:
                    if error_code(exc) == libvirt.VIR_ERR_NO_DOMAIN_METADATA:
                        return None
                    raise
        except OperationFailed as exc:
            log.warning("%s", exc)
            return None
        return self._judged(parse_hold(str(xml), uuid))

    def _judged(self, stored: StoredHold | None) -> Hold | None:
        """A stored hold whose command ran on this host and has died is expired."""
        if stored is None:
            return None
        hold = stored.hold
        if hold.pid is not None and stored.host == self._hostname and not pid_alive(hold.pid):
            hold = replace(hold, until=0.0)  # its command died: the hold died with it
        return hold

    def put_hold(self, name: str, hold: Hold) -> None:
        dom = self._lookup(name)
        xml = hold_element(hold, self._hostname)
        with self._call(f"domain '{name}': recording a hold by {hold.owner}"):
            dom.setMetadata(
                libvirt.VIR_DOMAIN_METADATA_ELEMENT, xml, HOLD_KEY, HOLD_NS, self._flags(dom)
            )

    def clear_hold(self, name: str) -> None:
        dom = self._lookup(name)
        with self._call(f"domain '{name}': releasing its hold"):
            dom.setMetadata(
                libvirt.VIR_DOMAIN_METADATA_ELEMENT, None, None, HOLD_NS, self._flags(dom)
            )

    @staticmethod
    def _flags(dom: Any) -> int:
        flags = _LIVE if dom.isActive() else 0
        if dom.isPersistent():
            flags |= _CONFIG
        return flags
