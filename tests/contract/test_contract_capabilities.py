"""The optional capabilities (balloond/backend/base.py): which backend claims which, and that
each claimed one keeps its contract, on every backend. Callers' plain ways without them are
tested here too, on a backend stripped down to the bare contract."""

from __future__ import annotations

import time
from typing import Any

import pytest

from balloond.backend.base import (
    Backend,
    DomainLookup,
    HoldLookup,
    HoldStore,
    LimitSink,
    Locality,
    Operations,
    ReportPush,
    ReportSource,
    StatsPeriod,
    SyncedSource,
)
from balloond.errors import DomainNotFound
from balloond.model import DomainState, Hold
from balloond.ops.context import find_domain
from balloond.ops.holding import hold_of
from balloond.ops.squeeze import squeeze
from balloond.units import MiB
from tests.support.contract import BareBackend, LookingUp, running
from tests.support.pids import dead_pid

CAPABILITIES = (
    Operations,
    HoldStore,
    HoldLookup,
    DomainLookup,
    StatsPeriod,
    Locality,
    ReportSource,
    SyncedSource,
    LimitSink,
    ReportPush,
)
# The table of balloond/backend/base.py's docstring.
CLAIMED = {
    "sim": {Operations, HoldStore, HoldLookup, DomainLookup, ReportSource},
    "libvirt": {Operations, HoldStore, HoldLookup, DomainLookup, StatsPeriod, Locality},
}


def test_each_backend_claims_exactly_its_capabilities(backend: Any, harness: Any) -> None:
    assert isinstance(backend, Backend)
    claimed = {cap for cap in CAPABILITIES if isinstance(backend, cap)}
    assert claimed == CLAIMED[harness.name]


def test_the_agent_hub_is_a_report_source_that_pushes() -> None:
    from balloond.channels import AgentHub
    from balloond.telemetry import Telemetry

    hub = AgentHub(Telemetry())
    try:
        claimed = {cap for cap in CAPABILITIES if isinstance(hub, cap)}
        assert claimed == {ReportSource, SyncedSource, LimitSink, ReportPush}
    finally:
        hub.close()


# -- DomainLookup ---------------------------------------------------------------------------


def test_domain_lookup_gives_what_the_listing_gives(backend: Any) -> None:
    for listed in backend.domains():
        found = backend.domain(listed.name)
        assert (found.name, found.uuid, found.current, found.maxmem, found.state) == (
            listed.name,
            listed.uuid,
            listed.current,
            listed.maxmem,
            listed.state,
        )


def test_domain_lookup_of_an_unknown_or_vanished_domain(backend: Any, harness: Any) -> None:
    with pytest.raises(DomainNotFound):
        backend.domain("no-such-domain")
    dom = running(backend)
    harness.vanish(dom.name)
    with pytest.raises(DomainNotFound):
        backend.domain(dom.name)


def test_find_domain_reads_one_domain_when_the_backend_can(backend: Any) -> None:
    dom = running(backend)
    looking_up, bare = LookingUp(backend), BareBackend(backend)
    assert find_domain(looking_up, dom.name).uuid == dom.uuid
    assert looking_up.listings == 0  # the lookup alone: no listing of the whole host
    assert find_domain(bare, dom.name).uuid == dom.uuid
    assert bare.listings == 1
    for view in (looking_up, bare):
        with pytest.raises(DomainNotFound, match="'no-such-domain' not found on"):
            find_domain(view, "no-such-domain")


def test_squeeze_polls_through_the_lookup(backend: Any, harness: Any) -> None:
    dom = running(backend)
    floor = max(dom.current // 2, 256 * MiB) // MiB * MiB
    looking_up = LookingUp(backend)
    result = squeeze(looking_up, dom.name, floor, timeout=0.0, sleep=lambda _: None)
    assert result.target == floor and looking_up.listings == 0
    harness.vanish(dom.name)
    with pytest.raises(DomainNotFound, match="vanished while being squeezed"):
        squeeze(BareBackend(backend), dom.name, floor, timeout=0.0, sleep=lambda _: None)


# -- HoldLookup -----------------------------------------------------------------------------


def test_hold_lookup_round_trip(backend: Any) -> None:
    dom = running(backend)
    assert backend.get_hold(dom.name) is None
    hold = Hold(domain=dom.uuid, owner="balloonctl balloon", reason="pinned", target=512 * MiB)
    backend.put_hold(dom.name, hold)
    found = backend.get_hold(dom.name)
    assert found is not None
    assert (found.owner, found.reason, found.target) == (hold.owner, hold.reason, hold.target)
    assert hold_of(backend, dom) == found
    backend.clear_hold(dom.name)
    assert backend.get_hold(dom.name) is None
    with pytest.raises(DomainNotFound):
        backend.get_hold("no-such-domain")


def test_hold_lookup_judges_the_commands_pid_as_holds_does(backend: Any) -> None:
    dom = running(backend)
    backend.put_hold(
        dom.name, Hold(domain=dom.uuid, owner="balloonctl save", reason="r", pid=dead_pid())
    )
    found = backend.get_hold(dom.name)
    assert found is not None and not found.active(time.time())
    assert found == backend.holds()[dom.uuid]


def test_hold_of_without_a_lookup_reads_the_store(backend: Any) -> None:
    class StoreOnly:  # HoldStore without HoldLookup
        def holds(self) -> dict[str, Hold]:
            return dict(backend.holds())

        def put_hold(self, name: str, hold: Hold) -> None:
            backend.put_hold(name, hold)

        def clear_hold(self, name: str) -> None:
            backend.clear_hold(name)

    store = StoreOnly()
    assert isinstance(store, HoldStore) and not isinstance(store, HoldLookup)
    dom = running(backend)
    assert hold_of(store, dom) is None
    store.put_hold(dom.name, Hold(domain=dom.uuid, owner="test", reason="r"))
    found = hold_of(store, dom)
    assert found is not None and found.owner == "test"


# -- StatsPeriod, Locality (libvirt) ---------------------------------------------------------


def test_stats_period_is_set_on_a_running_domain_and_refused_for_an_unknown_one(
    backend: Any,
) -> None:
    if not isinstance(backend, StatsPeriod):
        pytest.skip("this backend's statistics are always on")
    backend.ensure_stats_period(running(backend).name, 5)
    with pytest.raises(DomainNotFound):
        backend.ensure_stats_period("no-such-domain", 5)


def test_locality_of_a_test_driver_uri(backend: Any) -> None:
    if not isinstance(backend, Locality):
        pytest.skip("this backend works on this machine's files")
    assert backend.is_local is True  # test:///... names no host: libvirtd is this machine


def test_a_shut_off_domain_is_found_only_by_the_lookup(backend: Any) -> None:
    shut_off = [d for d in backend.domains() if d.state == DomainState.SHUTOFF]
    assert shut_off == []  # the listing has active domains only
    if not isinstance(backend, Locality):  # libvirt keeps defined, shut-off domains
        pytest.skip("the simulated host has no shut-off domains")
    names = backend._conn.listDefinedDomains()
    if not names:
        pytest.skip("this test host defines no shut-off domain")
    found = find_domain(backend, names[0])
    assert found.state == DomainState.SHUTOFF
    with pytest.raises(DomainNotFound):
        find_domain(BareBackend(backend), names[0])
