"""Transport selection over fake /sys trees, and what each transport puts on the wire."""

from __future__ import annotations

import io
import os
import select
import socket
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from balloond_guest import transport

from tests.support.agent import FIXTURES


def test_virtio_port_is_found_by_its_sysfs_name_not_its_number() -> None:
    root = str(FIXTURES / "linux-6.1-kvm-psi")
    assert transport.find_virtio_port(root) == os.path.join(root, "dev/vport0p2")
    assert transport.find_virtio_port(root, "org.qemu.guest_agent.0") == os.path.join(
        root, "dev/vport0p1"
    )
    assert transport.find_virtio_port(str(FIXTURES / "linux-5.4-kvm-nopsi")) is None


def test_auto_picks_the_virtio_port_and_writes_lines_to_it(tree: Callable[[str], str]) -> None:
    root = tree("linux-6.1-kvm-psi")
    os.makedirs(os.path.join(root, "dev"))
    os.mkfifo(os.path.join(root, "dev/vport0p2"))  # a char device in real life; a FIFO reads alike
    link = transport.choose(root)
    try:
        assert link.name == "virtio"
        assert link.send(b'{"v":1}\n')
        assert os.read(link.readable(), 100) == b'{"v":1}\n'
    finally:
        link.close()


def test_auto_on_a_kvm_guest_without_the_port_falls_back_to_stdout() -> None:
    stream = io.StringIO()
    link = transport.choose(str(FIXTURES / "linux-5.4-kvm-nopsi"), stream=stream)
    assert link.name == "stdout"
    assert link.send(b"x\n") and stream.getvalue() == "x\n"


def test_forced_virtio_without_a_port_is_an_error() -> None:
    with pytest.raises(OSError, match=r"org\.balloond\.agent\.0"):
        transport.choose(str(FIXTURES / "linux-5.4-kvm-nopsi"), "virtio")
    with pytest.raises(ValueError, match="unknown transport"):
        transport.choose(str(FIXTURES / "linux-5.4-kvm-nopsi"), "carrier-pigeon")


def test_xen_guest_with_xenbus_device_uses_xenstore(tree: Callable[[str], str]) -> None:
    root = tree("linux-4.19-xen-pv")
    os.makedirs(os.path.join(root, "dev/xen"))
    os.mkfifo(os.path.join(root, "dev/xen/xenbus"))
    link = transport.choose(root)
    assert link.name == "xenstore"
    # Through a FIFO, xenstored's reply is our own request echoed: check what we sent.
    assert link.send(b'{"v":1,"seq":7}\n')


def test_xenbus_write_is_a_well_formed_xs_wire_message() -> None:
    wire = transport.xenbus_request(transport.XS_WRITE, 9, b"data/balloond/report\x00{}")
    kind, req, tx, length = struct.unpack("=IIII", wire[:16])
    assert (kind, req, tx) == (11, 9, 0)
    assert wire[16:] == b"data/balloond/report\x00{}" and length == len(wire) - 16


def test_xen_guest_without_xenstore_access_falls_back_to_stdout() -> None:
    link = transport.choose(str(FIXTURES / "xenlinux-2.6.18"), stream=io.StringIO())
    assert link.name == "stdout"


def test_unix_transport_connects_and_reads_host_lines(tmp_path: Path) -> None:
    path = str(tmp_path / "h.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(1)
        link = transport.choose("/", "unix:" + path)
        conn, _ = server.accept()
        try:
            assert link.send(b"hello\n")
            assert conn.recv(100) == b"hello\n"
            conn.sendall(b'{"a":1}\n{"b"')
            assert _read_until(link, 1) == [b'{"a":1}']
            conn.sendall(b":2}\n" + b"x" * 5000 + b"\nok\n")  # the long line is dropped
            assert _read_until(link, 2) == [b'{"b":2}', b"ok"]
            conn.close()
            with pytest.raises(EOFError):
                _read_until(link, 1)
        finally:
            link.close()


def _read_until(link: transport.FdTransport, count: int) -> list[bytes]:
    lines: list[bytes] = []
    while len(lines) < count:
        select.select([link.readable()], [], [], 5)
        lines += link.read_lines()
    return lines
