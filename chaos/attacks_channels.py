"""Hostile guests on the agent channels, and a hold planted in libvirt metadata.

The daemon runs on a libvirt test-driver host (`test:///…/host.xml`) whose domains declare
agent channels; the harness plays QEMU, serving each channel's unix socket, and writes what
the guest would. Eight guests flood (bare newlines, then random bytes, then endless lines)
while a ninth reports honestly once a second: its reports must keep being accepted, the
ticks keep their pace, the daemon's CPU stay low, and the rejections be counted.
"""

from __future__ import annotations

import functools
import json
import random
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from chaos.attacks_control import budget_figures
from chaos.lab import Daemon, metric_values
from chaos.session import Session
from chaos.verdict import Row, judge
from chaos.watch import Figures, Watch

HOSTILE = 8
FLOOD_SECONDS = 10.0
CHUNK = 65536
MiB = 1 << 20

DOMAIN = """  <domain type='test'>
    <name>{name}</name>
    <uuid>c4a05000-0000-4000-8000-{index:012d}</uuid>
    <memory unit='MiB'>2048</memory>
    <currentMemory unit='MiB'>2048</currentMemory>
    <vcpu>1</vcpu>
    <os><type arch='x86_64'>hvm</type></os>{metadata}
    <devices>
      <channel type='unix'>
        <source mode='bind' path='{path}'/>
        <target type='virtio' name='org.balloond.agent.0'/>
      </channel>
      <memballoon model='virtio'><stats period='2'/></memballoon>
    </devices>
  </domain>
"""
# A hold someone with write access to the domain's metadata planted, 2^60 bytes.
PLANTED_HOLD = """
    <metadata><hold:hold xmlns:hold='https://balloond.dev/xmlns/1/hold' owner='planted'
      reason='chaos' target='1152921504606846976'/></metadata>"""


class Guests:
    """The QEMU side of each domain's agent channel: a listening socket, and the connection
    the daemon makes to it."""

    def __init__(self, folder: Path, groups: int, count: int) -> None:
        hostile = [f"h{group}-{i}" for group in range(groups) for i in range(1, count + 1)]
        self.names = ["honest", *hostile]
        self.paths = {name: folder / f"{name}.sock" for name in self.names}
        self.servers: dict[str, socket.socket] = {}
        self.links: dict[str, socket.socket] = {}
        self.xml = folder / "host.xml"
        for name, path in self.paths.items():
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.bind(str(path))
            server.listen(4)
            self.servers[name] = server
        domains = "".join(
            DOMAIN.format(
                name=name,
                index=index,
                path=self.paths[name],
                metadata=PLANTED_HOLD if name == "h0-1" else "",
            )
            for index, name in enumerate(self.names)
        )
        self.xml.write_text(
            "<node>\n  <cpu><mhz>2400</mhz><model>x86_64</model><nodes>1</nodes><sockets>1"
            "</sockets><cores>4</cores><threads>1</threads><active>4</active></cpu>\n"
            f"  <memory>{32 * 1024 * 1024}</memory>\n{domains}</node>\n"
        )

    @property
    def uri(self) -> str:
        return f"test://{self.xml}"

    def link(self, name: str, timeout: float = 15.0) -> socket.socket:
        """The daemon's connection to this guest's channel (waits for it to connect)."""
        if name not in self.links:
            server = self.servers[name]
            server.settimeout(timeout)
            conn, _ = server.accept()
            conn.settimeout(5.0)
            self.links[name] = conn
        return self.links[name]

    def relink(self, name: str) -> socket.socket:
        """After the daemon cut a channel off, the connection it makes when it comes back."""
        old = self.links.pop(name, None)
        if old is not None:
            old.close()
        return self.link(name, timeout=0.1)

    def close(self) -> None:
        for sock in [*self.links.values(), *self.servers.values()]:
            sock.close()


def report(seq: int) -> bytes:
    message = {
        "v": 1,
        "type": "report",
        "seq": seq,
        "agent": "chaos-honest/1",
        "mem_total": 1900 * MiB,
        "mem_available": 1200 * MiB,
        "psi_some": 0.0,
        "psi_full": 0.0,
    }
    return json.dumps(message).encode() + b"\n"


Payload = Callable[[random.Random], bytes]


def newlines(_rng: random.Random) -> bytes:
    return b"\n" * CHUNK


def garbage(rng: random.Random) -> bytes:
    return rng.randbytes(CHUNK)


def endless_line(_rng: random.Random) -> bytes:
    return b"x" * CHUNK


def _flood(guests: Guests, name: str, payload: Payload, stopping: threading.Event) -> None:
    rng = random.Random(name)
    while not stopping.is_set():
        try:
            sock = guests.links.get(name) or guests.relink(name)
            sock.settimeout(0.2)
            sock.sendall(payload(rng))
        except TimeoutError:
            continue  # the daemon is not reading (paused): keep pushing, as QEMU would
        except OSError:
            guests.links.pop(name, None)
            stopping.wait(0.05)  # cut off: try again, as a hostile guest would


def _honest(guests: Guests, stopping: threading.Event, sent: list[int]) -> None:
    seq = 1
    while not stopping.wait(1.0):
        try:
            guests.link("honest").sendall(report(seq))
            sent.append(seq)
            seq += 1
        except OSError:
            guests.links.pop("honest", None)


def _accepted(exposition: str, domain: str) -> float:
    values = metric_values(exposition, "balloond_reports_accepted_total", f'domain="{domain}"')
    return values[0] if values else 0.0


def _rejected(exposition: str) -> float:
    return sum(metric_values(exposition, "balloond_reports_rejected_total"))


def flood(session: Session, what: str, payload: Payload, group: int) -> Row:
    """Guests of `group` flood (each group once: a guest cut off stays so for 30 s)."""
    daemon, guests = _lab(session)
    hostile = [name for name in guests.names if name.startswith(f"h{group}-")]
    for name in ["honest", *hostile]:
        guests.link(name)
    figures = Figures()
    before = daemon.scrape()
    stopping = threading.Event()
    sent: list[int] = []
    threads = [threading.Thread(target=_honest, args=(guests, stopping, sent), daemon=True)]
    threads += [
        threading.Thread(target=_flood, args=(guests, name, payload, stopping), daemon=True)
        for name in hostile
    ]
    with Watch(daemon, figures, scrape=True):
        for thread in threads:
            thread.start()
        time.sleep(FLOOD_SECONDS)
        figures.status_answered = daemon.answers()
        after = daemon.scrape()
        stopping.set()
    for thread in threads:
        thread.join(5)
    accepted = _accepted(after, "honest") - _accepted(before, "honest")
    rejected = _rejected(after) - _rejected(before)
    cutoffs = sum(metric_values(after, "balloond_channel_cutoffs_total")) - sum(
        metric_values(before, "balloond_channel_cutoffs_total")
    )
    figures.notes.append(
        f"honest guest: {accepted:.0f} of {len(sent)} reports accepted; "
        f"rejections counted {rejected:.0f}; cut-offs {cutoffs:.0f}"
    )
    row = Row(f"guests: {HOSTILE} channels flooded with {what}", figures)
    row.check(accepted >= len(sent) - 2, "the honest guest's reports were lost")
    row.check(rejected + cutoffs > 0, "the flood was not counted (rejections, cut-offs)")
    return judge(row, cpu=True)


def planted_hold(session: Session) -> Row:
    daemon, _guests = _lab(session)
    figures = Figures()
    with Watch(daemon, figures, scrape=False):
        budget_figures(daemon, figures)
    figures.status_answered = daemon.answers()
    return judge(Row("libvirt metadata: a hold at 2^60 bytes", figures))


def _lab(session: Session) -> tuple[Daemon, Guests]:
    """One test-driver host with its guests for the session (made on first use)."""

    def make() -> tuple[Daemon, Guests]:
        guests = Guests(session.folder("guests"), len(FLOODS), HOSTILE)
        session.on_close(guests.close)
        return session.daemon("guests", guests.uri), guests

    lab: tuple[Daemon, Guests] = session.shared("guests", make)
    return lab


FLOODS: tuple[tuple[str, Payload], ...] = (
    ("bare newlines", newlines),
    ("random bytes", garbage),
    ("one endless line", endless_line),
)


def attacks(session: Session) -> list[tuple[str, Callable[[], Row]]]:
    found: list[tuple[str, Callable[[], Row]]] = [
        (f"guests: {what}", functools.partial(flood, session, what, payload, group))
        for group, (what, payload) in enumerate(FLOODS)
    ]
    found.append(("libvirt metadata: hold at 2^60", lambda: planted_hold(session)))
    return found
