"""A hold's pinned size never exceeds its domain's maxmem, whichever way the hold arrived:
the control socket refuses it, and holds read from the state file or from the backend's
store (libvirt metadata) are held at maxmem. A pin above maxmem would be promised in full
and take the host's whole budget (issue 16, defect 3)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from balloond.daemon.commands import handlers
from balloond.daemon.control import ControlClient, ControlServer
from balloond.daemon.loop import Daemon
from balloond.errors import ControlError
from balloond.model import DomainSnapshot, DomainState, Hold
from tests.support.daemon import Recording, make_daemon, run_ticks, sim_host

HUGE = 1 << 60


def _dom(uuid: str, maxmem: int) -> DomainSnapshot:
    return DomainSnapshot(
        name=uuid, uuid=uuid, id=1, state=DomainState.RUNNING, current=maxmem // 2, maxmem=maxmem
    )


def _hold(uuid: str, target: int | None) -> Hold:
    return Hold(domain=uuid, owner="test", reason="r", target=target)


def test_within_maxmem_brings_pins_down_and_names_them() -> None:
    from balloond.daemon.holds import within_maxmem

    domains = [_dom("a", 4 << 30), _dom("b", 2 << 30)]
    holds = {"a": _hold("a", HUGE), "b": _hold("b", 1 << 30), "gone": _hold("gone", HUGE)}
    kept, clamped = within_maxmem(holds, domains)
    assert kept["a"].target == 4 << 30
    assert kept["b"].target == 1 << 30, "a pin within maxmem is left as it is"
    assert kept["gone"].target == HUGE, "a domain not seen is not judged"
    assert [(dom.uuid, hold.target) for dom, hold in clamped] == [("a", HUGE)]


def test_the_control_socket_refuses_a_pin_above_maxmem(tmp_path: Path) -> None:
    host = sim_host()
    daemon = make_daemon(lambda: Recording(host), clock=host.now)
    run_ticks(daemon, host, 1)
    server = ControlServer(tmp_path / "c.sock", handlers(daemon, dict))
    try:
        client = ControlClient(server.path)
        with pytest.raises(ControlError, match="above domain 'web''s maxmem 4 GiB"):
            client.call("hold", domain="web", target=HUGE)
        assert client.call("holds")["holds"] == []
        assert client.call("hold", domain="web", target=4 << 30)["hold"]["target"] == 4 << 30
    finally:
        server.close()


def _budget_kept(daemon: Daemon, web_uuid: str) -> None:
    decision = daemon.last_decision()
    assert decision is not None
    held = daemon.holds()[web_uuid]
    assert held.target == 4 << 30
    assert decision.budget > 0, "the pin ate the host's whole budget"


def test_a_state_file_pin_above_maxmem_is_held_at_maxmem(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    host = sim_host()
    web = next(d for d in host.domains() if d.name == "web")
    hold = {"domain": web.uuid, "owner": "edited", "reason": "r", "until": None, "target": HUGE}
    (tmp_path / "state.json").write_text(
        json.dumps({"version": 1, "controller": {}, "holds": {web.uuid: hold}})
    )
    daemon = make_daemon(lambda: Recording(host), clock=host.now, state_dir=tmp_path)
    with caplog.at_level(logging.WARNING):
        run_ticks(daemon, host, 3)
    _budget_kept(daemon, web.uuid)
    warnings = [r.getMessage() for r in caplog.records if "above its maxmem" in r.getMessage()]
    assert len(warnings) == 1, "warned once, not every tick"
    assert "domain 'web': hold by edited pins 1048576 TiB, above its maxmem 4 GiB" in warnings[0]


def test_a_backend_pin_above_maxmem_is_held_at_maxmem() -> None:
    host = sim_host()
    web = next(d for d in host.domains() if d.name == "web")
    host.put_hold("web", _hold(web.uuid, HUGE))  # as libvirt metadata edited by hand
    daemon = make_daemon(lambda: Recording(host), clock=host.now)
    run_ticks(daemon, host, 3)
    _budget_kept(daemon, web.uuid)
