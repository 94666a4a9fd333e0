"""AgentHub over real unix sockets: the test plays QEMU (the socket server, mode='bind') and
hands the accepted connection to a real guest agent, as QEMU would hand it the virtio port."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from balloond.channels import AgentHub, HubSettings
from balloond.model import DomainSnapshot
from balloond.telemetry import Telemetry
from balloond.units import GiB, MiB

FIXTURE = str(Path(__file__).parent / "agent/fixtures/linux-6.1-kvm-psi")


def wait_for(condition: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)


class FakeQemu:
    """A domain's channel socket: listens at `path`, accepts the hub's connection."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(4)
        self.server.settimeout(10)
        self.conn: socket.socket | None = None

    def accept(self) -> socket.socket:
        self.conn, _ = self.server.accept()
        return self.conn

    def agent(self, **settings: object) -> object:
        from balloond_guest.agent import Agent, Settings
        from balloond_guest.transport import FdTransport

        assert self.conn is not None
        return Agent(
            Settings(root=FIXTURE, **settings), FdTransport(os.dup(self.conn.fileno()), "qemu")
        )

    def stop(self) -> None:
        """The domain went away (save, migration): the socket closes and the path goes."""
        if self.conn is not None:
            self.conn.close()
        self.server.close()
        os.unlink(self.path)


def domain(name: str, channel: str | None, maxmem: int = 2 * GiB) -> DomainSnapshot:
    return DomainSnapshot(
        name=name, uuid=f"uuid-{name}", current=GiB, maxmem=maxmem, channel=channel
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def hub() -> Iterator[tuple[AgentHub, Telemetry, Clock]]:
    telemetry, clock = Telemetry(), Clock()
    hub = AgentHub(telemetry, clock, HubSettings(reconnect_interval=0.05, rate=0.01, burst=50))
    yield hub, telemetry, clock
    hub.close()


@pytest.fixture
def qemus(tmp_path: Path) -> Iterator[Callable[[str], FakeQemu]]:
    made: list[FakeQemu] = []

    def make(name: str) -> FakeQemu:
        made.append(FakeQemu(str(tmp_path / f"{name}.sock")))
        return made[-1]

    yield make
    for qemu in made:
        if qemu.conn is not None:
            qemu.conn.close()
        qemu.server.close()


def test_a_real_agent_report_reaches_the_hub_under_its_channels_domain(hub, qemus) -> None:  # type: ignore[no-untyped-def]
    hub_, telemetry, _ = hub
    web = qemus("web1")
    hub_.sync([domain("web1", web.path), domain("db1", None)])
    web.accept()
    agent = web.agent()
    message = agent.tick()
    wait_for(lambda: "uuid-web1" in hub_.reports(), "web1's report")
    report = hub_.reports()["uuid-web1"]
    assert report.seq == message["seq"] and report.demand == message["demand"]
    assert set(hub_.reports()) == {"uuid-web1"}
    assert telemetry.reports_accepted["web1"] == 1
    agent.transport.close()


def test_a_hostile_guest_cannot_touch_another_domain(hub, qemus) -> None:  # type: ignore[no-untyped-def]
    hub_, telemetry, _ = hub
    good, evil = qemus("good"), qemus("evil")
    hub_.sync([domain("good", good.path), domain("evil", evil.path, maxmem=GiB)])
    good.accept()
    attacker = evil.accept()
    agent = good.agent()
    agent.tick()
    wait_for(lambda: "uuid-good" in hub_.reports(), "good's report")
    before = hub_.reports()["uuid-good"]
    flood = [
        b'{"v":1,"type":"report","seq":9,"uuid":"uuid-good","name":"good","request":1}',
        b'{"v":1,"type":"report","seq":10,"domain":"good","request":99999999999999}',
        b"\x00\xff" * 3000,
        b"[" * 4000,
        b'{"v":1,"type":"report","seq":11,"psi_some":NaN}',
        b'{"v":2,"type":"report","seq":12}',
    ]
    attacker.sendall(b"\n".join(flood) + b"\n")
    attacker.sendall(b'{"v":1,"type":"report","seq":20,"request":536870912}\n')
    wait_for(lambda: telemetry.copy().reports_accepted["evil"] == 2, "evil's last, valid report")
    assert hub_.reports()["uuid-good"] == before  # untouched by anything evil wrote
    assert hub_.reports()["uuid-evil"].requested_target == 512 * MiB
    rejected = telemetry.copy().reports_rejected
    assert sum(rejected.values()) == 5 and rejected["too_long"] == 1
    assert telemetry.reports_accepted["evil"] == 2  # the "uuid" field is just ignored
    agent.transport.close()


def test_floods_are_rate_limited_per_domain(qemus) -> None:  # type: ignore[no-untyped-def]
    telemetry, clock = Telemetry(), Clock()
    hub = AgentHub(telemetry, clock, HubSettings(reconnect_interval=0.05, rate=0.001, burst=5))
    try:
        noisy = qemus("noisy")
        hub.sync([domain("noisy", noisy.path)])
        conn = noisy.accept()
        lines = [b'{"v":1,"type":"report","seq":%d}' % i for i in range(2000, 2040)]
        conn.sendall(b"\n".join(lines) + b"\n")
        wait_for(lambda: sum(telemetry.copy().reports_rejected.values()) == 35, "35 rate-limited")
        assert telemetry.copy().reports_rejected["rate_limited"] == 35
        assert telemetry.copy().reports_accepted["noisy"] == 5
        clock.now += 1000  # one token per 1000 s: one more line gets through
        conn.sendall(b'{"v":1,"type":"report","seq":3000}\n')
        wait_for(
            lambda: hub.reports().get("uuid-noisy") and hub.reports()["uuid-noisy"].seq == 3000,
            "the report after the refill",
        )
    finally:
        hub.close()


def test_stale_reports_expire(hub, qemus) -> None:  # type: ignore[no-untyped-def]
    hub_, _, clock = hub
    web = qemus("web1")
    hub_.sync([domain("web1", web.path)])
    web.accept().sendall(b'{"v":1,"type":"report","seq":1}\n')
    wait_for(lambda: "uuid-web1" in hub_.reports(), "the report")
    clock.now += 29.0
    assert "uuid-web1" in hub_.reports()
    clock.now += 2.0
    assert hub_.reports() == {}


def test_limits_go_to_the_agent_and_again_after_a_reconnect(hub, qemus, tmp_path) -> None:  # type: ignore[no-untyped-def]
    hub_, _, _ = hub
    web = qemus("web1")
    hub_.sync([domain("web1", web.path)])
    web.accept()
    wait_for(lambda: "uuid-web1" in hub_.connected(), "connection")
    assert hub_.send_limits("uuid-web1", 256 * MiB, GiB)
    assert hub_.send_limits("uuid-web1", 256 * MiB, GiB)  # unchanged: not sent twice
    agent = web.agent()
    line = web.conn.makefile("rb").readline()  # type: ignore[union-attr]
    assert agent.handle_host_line(line.rstrip(b"\n")) == {
        "type": "limits",
        "floor": 256 * MiB,
        "ceiling": GiB,
    }
    agent.transport.close()
    # The guest is saved: socket and path vanish; restored: a new QEMU, same path.
    web.stop()
    wait_for(lambda: "uuid-web1" not in hub_.connected(), "the hub to notice")
    assert not hub_.send_limits("uuid-web1", 256 * MiB, GiB)
    again = FakeQemu(web.path)
    try:
        conn = again.accept()
        conn.settimeout(10)
        assert json.loads(conn.makefile("rb").readline())["type"] == "limits"  # re-sent
        conn.sendall(b'{"v":1,"type":"report","seq":1}\n')  # restored agent, seq from scratch
        wait_for(lambda: "uuid-web1" in hub_.reports(), "a report over the new connection")
    finally:
        again.stop()


def test_a_request_is_acknowledged(hub, qemus) -> None:  # type: ignore[no-untyped-def]
    hub_, _, _ = hub
    web = qemus("web1")
    hub_.sync([domain("web1", web.path)])
    conn = web.accept()
    conn.settimeout(10)
    conn.sendall(b'{"v":1,"type":"report","seq":77,"request":1073741824}\n')
    assert json.loads(conn.makefile("rb").readline()) == {"v": 1, "type": "ack", "seq": 77}


def test_vanished_domains_are_dropped_and_their_socket_closed(hub, qemus) -> None:  # type: ignore[no-untyped-def]
    hub_, _, _ = hub
    web = qemus("web1")
    hub_.sync([domain("web1", web.path)])
    conn = web.accept()
    conn.sendall(b'{"v":1,"type":"report","seq":1}\n')
    wait_for(lambda: "uuid-web1" in hub_.reports(), "the report")
    hub_.sync([])
    assert hub_.reports() == {}
    conn.settimeout(10)
    assert conn.recv(100) == b""  # the hub hung up


def test_a_channel_that_is_not_there_yet_is_retried(hub, tmp_path) -> None:  # type: ignore[no-untyped-def]
    hub_, _, _ = hub
    path = str(tmp_path / "late.sock")
    hub_.sync([domain("late", path)])
    time.sleep(0.1)  # a few failed attempts (ENOENT)
    late = FakeQemu(path)
    try:
        late.accept().sendall(b'{"v":1,"type":"report","seq":1}\n')
        wait_for(lambda: "uuid-late" in hub_.reports(), "the late domain's report")
    finally:
        late.stop()


def test_a_flooding_domain_is_left_unread_while_its_bucket_is_empty(qemus) -> None:  # type: ignore[no-untyped-def]
    telemetry, clock = Telemetry(), Clock()
    settings = HubSettings(reconnect_interval=0.05, rate=0.001, burst=2, max_pause=3600.0)
    hub = AgentHub(telemetry, clock, settings)
    try:
        noisy, quiet = qemus("noisy"), qemus("quiet")
        hub.sync([domain("noisy", noisy.path), domain("quiet", quiet.path)])
        flood, calm = noisy.accept(), quiet.accept()
        flood.sendall(b'{"v":1,"type":"report","seq":5000}\n' * 3)
        wait_for(lambda: telemetry.copy().reports_rejected["rate_limited"] == 1, "the third line")
        flood.setblocking(False)
        sent = 0
        with contextlib.suppress(BlockingIOError):
            for _ in range(100_000):  # until the socket is full: nobody reads it now
                sent += flood.send(b"\n" * 4096)
        calm.sendall(b'{"v":1,"type":"report","seq":1}\n')
        wait_for(lambda: "uuid-quiet" in hub.reports(), "the quiet domain's report")
        assert sent > 0
        assert telemetry.copy().reports_rejected["rate_limited"] == 1  # not one more line read
    finally:
        hub.close()


def test_xen_domains_are_read_from_xenstore_by_the_same_hub() -> None:
    from balloond.channels import XenstoreReader

    line = '{"v":1,"type":"report","seq":3,"demand":1048576}\n'
    telemetry = Telemetry()
    reader = XenstoreReader(telemetry, lambda: 1000.0, lambda argv: line)
    hub = AgentHub(telemetry, Clock(), xenstore=reader)
    try:
        xen = DomainSnapshot(
            name="pv1", uuid="uuid-pv1", current=GiB, maxmem=GiB, id=4, hypervisor="xen"
        )
        hub.sync([xen, domain("kvm1", None)])
        assert hub.reports()["uuid-pv1"].demand == 1048576
        assert telemetry.reports_accepted["pv1"] == 1
    finally:
        hub.close()


def test_a_flood_of_bare_newlines_is_skipped_not_paid_for_line_by_line(qemus) -> None:  # type: ignore[no-untyped-def]
    """Issue 16: 8 guests sending bare newlines cost 28.7 s of CPU in 29 s: every newline
    paid a rate-limit check and a counter update (and the buffer was cut line by line)."""
    telemetry, clock = Telemetry(), Clock()
    hub = AgentHub(telemetry, clock, HubSettings(reconnect_interval=0.05, burst=50))
    try:
        noisy = qemus("noisy")
        hub.sync([domain("noisy", noisy.path)])
        conn = noisy.accept()
        conn.sendall(b"\n" * 60_000 + b'{"v":1,"type":"report","seq":1}\n')
        wait_for(lambda: "uuid-noisy" in hub.reports(), "the report after the newlines")
        counted = telemetry.copy()
        assert sum(counted.reports_rejected.values()) == 0, "a blank line is not a report"
        assert counted.reports_accepted["noisy"] == 1
    finally:
        hub.close()


def test_a_channel_over_its_byte_budget_is_cut_off_and_counted(qemus) -> None:  # type: ignore[no-untyped-def]
    telemetry, clock = Telemetry(), Clock()
    settings = HubSettings(
        reconnect_interval=0.05, byte_rate=100.0, byte_burst=8192.0, cutoff=3600.0
    )
    hub = AgentHub(telemetry, clock, settings)
    try:
        noisy, quiet = qemus("noisy"), qemus("quiet")
        hub.sync([domain("noisy", noisy.path), domain("quiet", quiet.path)])
        flood, calm = noisy.accept(), quiet.accept()
        with contextlib.suppress(OSError):  # the hub hangs up mid-flood
            for _ in range(16):
                flood.sendall(b"x" * 4096)  # one endless line: no newline ever
        wait_for(lambda: telemetry.copy().channel_cutoffs["uuid-noisy"] == 1, "the cut-off")
        flood.settimeout(5)
        with contextlib.suppress(ConnectionResetError):
            while flood.recv(65536):
                pass  # closed by the hub
        noisy.server.settimeout(0.5)
        with pytest.raises(TimeoutError):
            noisy.server.accept()  # not reconnected: cut off for an hour here
        calm.sendall(b'{"v":1,"type":"report","seq":1}\n')
        wait_for(lambda: "uuid-quiet" in hub.reports(), "the other domain's report")
        assert telemetry.copy().channel_cutoffs == {"uuid-noisy": 1}
    finally:
        hub.close()


def test_the_budget_is_the_domains_not_the_connections(qemus) -> None:  # type: ignore[no-untyped-def]
    """Reconnecting does not refill it: a guest cannot reset its budget by closing."""
    telemetry, clock = Telemetry(), Clock()
    settings = HubSettings(reconnect_interval=0.05, byte_rate=1.0, byte_burst=6000.0, cutoff=0.1)
    hub = AgentHub(telemetry, clock, settings)
    try:
        noisy = qemus("noisy")
        hub.sync([domain("noisy", noisy.path)])
        conn = noisy.accept()
        conn.sendall(b"y" * 5000 + b"\n")
        wait_for(lambda: telemetry.copy().reports_rejected["too_long"] == 1, "the long line")
        conn.close()
        again = noisy.accept()  # the hub reconnects; the budget has 999 bytes left
        with contextlib.suppress(OSError):
            again.sendall(b"y" * 5000 + b"\n")
        wait_for(lambda: telemetry.copy().channel_cutoffs["uuid-noisy"] == 1, "the cut-off")
    finally:
        hub.close()
