"""The whole path with the agent as its own process: `balloond-guest run` connects to a
socket standing in for the guest's port, a relay plays QEMU (guest port <-> host socket),
and a real AgentHub connects to the host socket, as balloond does to libvirt's channel."""

from __future__ import annotations

import os
import selectors
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from balloond_guest import AGENT

from balloond.channels import AgentHub, HubSettings
from balloond.model import DomainSnapshot
from balloond.telemetry import Telemetry
from balloond.units import GiB, KiB, MiB

FIXTURES = Path(__file__).parent / "agent/fixtures"


def relay(a: socket.socket, b: socket.socket, stop: threading.Event, seen: list[bytes]) -> None:
    """Copy bytes both ways until `stop` or a side goes (as QEMU's relay ends when a peer
    closes; a send into a side already gone at teardown was a BrokenPipeError in this
    thread, which pytest reports as a failure); keep what went towards the guest in `seen`."""
    with selectors.DefaultSelector() as sel:
        sel.register(a, selectors.EVENT_READ, b)
        sel.register(b, selectors.EVENT_READ, a)
        while not stop.is_set():
            for key, _ in sel.select(0.05):
                try:
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    if key.fileobj is b:
                        seen.append(data)
                    key.data.sendall(data)
                except OSError:
                    return


def test_an_agent_process_reports_to_the_hub_and_receives_its_limits(tmp_path: Path) -> None:
    root = str(tmp_path / "guest")
    shutil.copytree(FIXTURES / "linux-6.1-kvm-psi", root)
    guest_path, host_path = str(tmp_path / "port.sock"), str(tmp_path / "chan.sock")
    guest_srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    host_srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    for srv, path in ((guest_srv, guest_path), (host_srv, host_path)):
        srv.bind(path)
        srv.listen(1)
        srv.settimeout(20)
    telemetry = Telemetry()
    hub = AgentHub(telemetry, settings=HubSettings(reconnect_interval=0.05))
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1] / "guest-agent"))
    agent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "balloond_guest",
            "run",
            "--root",
            root,
            "--interval",
            "0.2",
            "--transport",
            "unix:" + guest_path,
            "--no-control",
            "--auto",
        ],
        env=env,
        stderr=subprocess.PIPE,
    )
    stop, to_guest = threading.Event(), []
    opened: list[socket.socket] = []
    thread = threading.Thread(target=relay, args=(*opened, stop, to_guest))
    try:
        hub.sync([DomainSnapshot("web1", "uuid-web1", GiB, 2 * GiB, channel=host_path)])
        host_side, _ = host_srv.accept()
        guest_side, _ = guest_srv.accept()
        opened += [guest_side, host_side]
        thread = threading.Thread(target=relay, args=(guest_side, host_side, stop, to_guest))
        thread.start()
        deadline = time.monotonic() + 20
        while "uuid-web1" not in hub.reports():
            assert time.monotonic() < deadline, "no report reached the hub"
            time.sleep(0.02)
        first = hub.reports()["uuid-web1"]
        assert first.agent_version == AGENT
        assert first.mem_total == 479848 * KiB
        assert hub.send_limits("uuid-web1", 300 * MiB, 400 * MiB)
        # --auto on KVM: the agent's request follows the limits it was just sent.
        while (hub.reports()["uuid-web1"].requested_target or 0) == 0:
            assert time.monotonic() < deadline, "the agent never requested within its limits"
            time.sleep(0.02)
        assert (300 * MiB) <= (hub.reports()["uuid-web1"].requested_target or 0) <= (400 * MiB)
        assert b'"type":"limits"' in b"".join(to_guest)
        assert telemetry.copy().reports_rejected == {}
    finally:
        stop.set()  # the relay first: the agent's end closes under it otherwise
        if thread.is_alive():
            thread.join(5)
        agent.terminate()
        _, err = agent.communicate(timeout=10)
        hub.close()
        for sock in (*opened, guest_srv, host_srv):
            sock.close()
    assert agent.returncode == 0, err.decode()
