"""Where reports go: a virtio-serial port, xenstore, a unix socket, or stdout.

Every transport has `send(line) -> bool` (False: dropped, the next report will try again),
`readable()` (a file descriptor to poll for host messages, or None for one-way transports),
`read_lines()` and `close()`. Sends never block: a host that stopped reading must not stall
the agent, which would then also miss pressure events.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import struct
import subprocess
import sys
from typing import TextIO

from balloond_guest import PORT_NAME, procfs, xen
from balloond_guest.protocol import MAX_LINE

VIRTIO_PORTS = "/sys/class/virtio-ports"
XENBUS_DEVICE = "/dev/xen/xenbus"
XENSTORE_KEY = "data/balloond/report"  # relative: under this guest's /local/domain/<id>/
XS_WRITE = 11  # xs_wire.h message type


def find_virtio_port(root: str, name: str = PORT_NAME) -> str | None:
    """'/dev/vport0p2' for the port whose sysfs `name` is `name`, or None. Without udev there
    is no /dev/virtio-ports/<name> symlink, so we read /sys/class/virtio-ports/*/name."""
    base = procfs.path_under(root, VIRTIO_PORTS)
    try:
        ports = sorted(os.listdir(base))
    except OSError:
        return None
    for port in ports:
        text = procfs.read_text(root, VIRTIO_PORTS + "/" + port + "/name")
        if text is not None and text.strip() == name:
            return procfs.path_under(root, "/dev/" + port)
    return None


class _LineReader:
    """Splits what the host sends into lines; a line longer than MAX_LINE is dropped."""

    def __init__(self) -> None:
        self._buffer = b""
        self._skipping = False

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        lines = []
        while True:
            line, sep, rest = self._buffer.partition(b"\n")
            if not sep:
                break
            self._buffer = rest
            if not self._skipping and len(line) <= MAX_LINE:
                lines.append(line)
            self._skipping = False
        if len(self._buffer) > MAX_LINE:
            self._buffer, self._skipping = b"", True
        return lines


class Transport:
    """What the agent needs of a transport (the module docstring says what each call means)."""

    name = "?"

    def send(self, line: bytes) -> bool:
        raise NotImplementedError

    def readable(self) -> int | None:
        raise NotImplementedError

    def read_lines(self) -> list[bytes]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class FdTransport(Transport):
    """A two-way byte stream given as a file descriptor: virtio port or unix socket."""

    name = "fd"

    def __init__(self, fd: int, label: str) -> None:
        self.fd: int | None = fd
        self.label = label
        self._reader = _LineReader()

    def send(self, line: bytes) -> bool:
        if self.fd is None:
            return False  # closed: the agent reopens a transport before the next report
        try:
            return os.write(self.fd, line) == len(line)
        except OSError as error:
            if error.errno in (
                errno.EAGAIN,
                errno.EPIPE,
                errno.ECONNRESET,
                errno.ENOTCONN,
                errno.EIO,
            ):
                return False  # host away or not reading: drop, the next report retries
            raise

    def readable(self) -> int | None:
        return self.fd

    def read_lines(self) -> list[bytes]:
        if self.fd is None:
            raise EOFError("%s: closed" % self.label)
        try:
            data = os.read(self.fd, 65536)
        except OSError as error:
            if error.errno == errno.EAGAIN:
                return []
            data = b""
        if not data:
            raise EOFError("%s: host end closed" % self.label)
        return self._reader.feed(data)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class VirtioTransport(FdTransport):
    name = "virtio"

    @classmethod
    def open(cls, device: str) -> VirtioTransport:
        return cls(os.open(device, os.O_RDWR | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)), device)


class UnixTransport(FdTransport):
    name = "unix"

    @classmethod
    def open(cls, path: str) -> UnixTransport:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        return cls(sock.detach(), path)


class _OneWay(Transport):
    """A transport the host cannot answer on: nothing to poll, read or close."""

    def readable(self) -> int | None:
        return None

    def read_lines(self) -> list[bytes]:
        return []

    def close(self) -> None:
        pass


class StdoutTransport(_OneWay):
    name = "stdout"

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout

    def send(self, line: bytes) -> bool:
        try:
            self.stream.write(line.decode("ascii"))
            self.stream.flush()
        except (OSError, ValueError):  # reader gone (EPIPE) or stream closed
            return False
        return True


class XenstoreTransport(_OneWay):
    """One-way: the latest report under this guest's data/balloond/ (the only part of
    xenstore a guest may write). Uses `xenstore-write`, else speaks xs_wire to the xenbus
    device itself."""

    name = "xenstore"

    def __init__(self, tool: str | None = None, device: str | None = None) -> None:
        self.tool = tool
        self.device = device
        self._req = 0

    def send(self, line: bytes) -> bool:
        value = line.rstrip(b"\n")
        if self.tool is not None:
            done = subprocess.call(
                [self.tool, XENSTORE_KEY, value.decode("ascii")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            return done == 0
        if self.device is None:
            return False
        self._req += 1
        return xenbus_write(self.device, XENSTORE_KEY, value, self._req)


def xenbus_request(kind: int, req_id: int, payload: bytes) -> bytes:
    """One xs_wire message: header (type, req_id, tx_id, len) as four native u32, payload."""
    return struct.pack("=IIII", kind, req_id, 0, len(payload)) + payload


def xenbus_write(device: str, key: str, value: bytes, req_id: int) -> bool:
    """XS_WRITE `key`=`value` through the xenbus device; True when the reply is not an error."""
    payload = key.encode("ascii") + b"\0" + value
    fd = os.open(device, os.O_RDWR)
    try:
        os.write(fd, xenbus_request(XS_WRITE, req_id, payload))
        reply = os.read(fd, 16 + 4096)
    finally:
        os.close(fd)
    if len(reply) < 16:
        return False
    kind: int = struct.unpack("=IIII", reply[:16])[0]
    return kind == XS_WRITE


def choose(root: str, override: str | None = None, stream: TextIO | None = None) -> Transport:
    """The transport to use: `override` ('virtio', 'xenstore', 'stdout', 'unix:PATH',
    'virtio:/dev/vportNpM') or the first that exists: virtio port, xenstore, stdout."""
    if override and override.startswith("unix:"):
        return UnixTransport.open(override[len("unix:") :])
    if override and override.startswith("virtio:"):
        return VirtioTransport.open(override[len("virtio:") :])
    if override == "stdout":
        return StdoutTransport(stream)
    if override in (None, "auto", "virtio"):
        device = find_virtio_port(root)
        if device is not None:
            return VirtioTransport.open(device)
        if override == "virtio":
            raise OSError("no virtio-serial port named %s under %s" % (PORT_NAME, root))
    if override in (None, "auto", "xenstore"):
        found = _xenstore(root)
        if found is not None:
            return found
        if override == "xenstore":
            raise OSError("no xenstore-write tool and no %s" % XENBUS_DEVICE)
    if override not in (None, "auto"):
        raise ValueError("unknown transport %r (virtio, xenstore, stdout, unix:PATH)" % override)
    return StdoutTransport(stream)


def _xenstore(root: str) -> XenstoreTransport | None:
    if not xen.is_xen(root):
        return None
    tool = shutil.which("xenstore-write")
    if tool is not None and root == "/":
        return XenstoreTransport(tool=tool)
    device = procfs.path_under(root, XENBUS_DEVICE)
    if os.path.exists(device):
        return XenstoreTransport(device=device)
    return None
