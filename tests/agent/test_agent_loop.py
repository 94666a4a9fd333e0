"""The agent's loop: periodic reports, immediate ones on a pressure trigger (a real pipe, a
real TCP urgent byte for POLLPRI, and the real PSI file when the kernel lets us), host
messages on the same channel, and a host end that goes away."""

from __future__ import annotations

import json
import os
import select
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from balloond_guest import psi
from balloond_guest.agent import Agent, Settings
from balloond_guest.transport import FdTransport

from tests.support.agent import FIXTURES

ROOT = str(FIXTURES / "linux-6.1-kvm-psi")


@pytest.fixture
def channel() -> Iterator[tuple[socket.socket, FdTransport]]:
    """(host end, agent transport) of a real unix socket pair."""
    host, guest = socket.socketpair()
    guest.setblocking(False)
    link = FdTransport(guest.detach(), "socketpair")
    yield host, link
    host.close()
    link.close()


def _read_reports(host: socket.socket, count: int) -> list[dict[str, object]]:
    stream = host.makefile("rb")
    try:
        return [json.loads(stream.readline()) for _ in range(count)]
    finally:
        stream.close()


def _run(agent: Agent, ticks: int) -> threading.Thread:
    thread = threading.Thread(target=agent.run, kwargs={"max_ticks": ticks}, daemon=True)
    thread.start()
    return thread


def test_a_pressure_event_on_a_pipe_sends_a_report_before_the_next_period(
    channel: tuple[socket.socket, FdTransport],
) -> None:
    host, link = channel
    read_end, write_end = os.pipe()
    trigger = psi.pipe_trigger(read_end)
    agent = Agent(Settings(root=ROOT, interval=3600.0), link, trigger=trigger)
    thread = _run(agent, 2)
    try:
        first = _read_reports(host, 1)[0]
        os.write(write_end, b"!")
        second = _read_reports(host, 1)[0]
        thread.join(10)
    finally:
        trigger.close()
        os.close(write_end)
    assert first["trigger"] == "periodic"
    assert second["trigger"] == "pressure"
    assert second["seq"] == first["seq"] + 1  # type: ignore[operator]
    assert not thread.is_alive()


class UrgentTrigger(psi.Trigger):
    """POLLPRI from a TCP urgent byte: the same poll mask a PSI trigger uses."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock.fileno(), select.POLLPRI, "tcp urgent")
        self.sock = sock

    def drain(self) -> None:
        self.sock.recv(1, socket.MSG_OOB)


def test_pollpri_wakes_the_loop_as_a_psi_trigger_would(
    channel: tuple[socket.socket, FdTransport],
) -> None:
    host, link = channel
    with socket.create_server(("127.0.0.1", 0)) as server:
        sender = socket.create_connection(server.getsockname())
        receiver, _ = server.accept()
    with sender, receiver:
        agent = Agent(Settings(root=ROOT, interval=3600.0), link, trigger=UrgentTrigger(receiver))
        thread = _run(agent, 2)
        _read_reports(host, 1)
        sender.send(b"!", socket.MSG_OOB)
        assert _read_reports(host, 1)[0]["trigger"] == "pressure"
        thread.join(10)
    assert not thread.is_alive()


def test_the_real_psi_file_accepts_our_trigger_when_the_kernel_allows() -> None:
    try:
        trigger = psi.psi_trigger(psi.PRESSURE_FILE, 150000, 2000000)
    except OSError as error:
        pytest.skip(f"no PSI trigger on this kernel/user: {error}")
    try:
        assert trigger.mask == select.POLLPRI
        poller = select.poll()
        poller.register(trigger.fileno(), trigger.mask)
        assert all(ev & select.POLLPRI for _, ev in poller.poll(0))  # idle host: usually none
    finally:
        trigger.close()


def test_a_psi_file_that_is_only_a_fixture_is_never_written() -> None:
    with pytest.raises(OSError):
        psi.psi_trigger(os.path.join(ROOT, "proc/pressure/memory.missing"))
    path = os.path.join(ROOT, "proc/pressure/memory")
    before = Path(path).read_bytes()
    with pytest.raises(OSError, match="not a kernel pressure file"):
        psi.psi_trigger(path)
    assert Path(path).read_bytes() == before


def test_host_limits_arrive_on_the_same_channel_while_running(
    channel: tuple[socket.socket, FdTransport],
) -> None:
    host, link = channel
    read_end, write_end = os.pipe()
    trigger = psi.pipe_trigger(read_end)
    agent = Agent(Settings(root=ROOT, interval=3600.0), link, trigger=trigger)
    thread = _run(agent, 2)
    try:
        _read_reports(host, 1)
        host.sendall(b'{"v":9,"type":"limits","floor":1,"ceiling":2}\n')
        host.sendall(b'{"v":1,"type":"limits","floor":268435456,"ceiling":536870912,"new":1}\n')
        os.write(write_end, b"!")  # the loop handles both host lines before or with this
        _read_reports(host, 1)
        thread.join(10)
    finally:
        trigger.close()
        os.close(write_end)
    assert (agent.adjuster.floor, agent.adjuster.ceiling) == (268435456, 536870912)


def test_host_end_closing_drops_reports_then_reopens(
    channel: tuple[socket.socket, FdTransport],
) -> None:
    host, link = channel
    spare_host, spare_guest = socket.socketpair()
    spare_guest.setblocking(False)
    reopened: list[FdTransport] = []

    def reopen() -> FdTransport:
        reopened.append(FdTransport(spare_guest.detach(), "spare"))
        return reopened[-1]

    agent = Agent(Settings(root=ROOT, interval=0.05), link, reopen=reopen)
    thread = _run(agent, 1)
    _read_reports(host, 1)
    thread.join(10)
    host.close()  # the host end goes (a save, a migration)
    agent.run(max_ticks=3)  # notices EOF, then reopens at the next report
    with spare_host:
        assert reopened and agent.transport is reopened[0]
        assert _read_reports(spare_host, 1)[0]["type"] == "report"
    reopened[0].close()
