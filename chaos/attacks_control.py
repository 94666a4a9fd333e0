"""Attacks through the control socket and on balloonctl.

- slow-loris: 16 connections each sending one byte a second; `status` must still answer;
- a 5000-digit integer in a request: one clear line back, no traceback in the log;
- a hold at 2^60 bytes: refused or clamped, the host budget and every maxmem kept;
- `balloonctl balloon` against a daemon whose host lives inside it (sim://): the hold must
  happen where the daemon acts, or the command must say it cannot;
- `--socket` naming a file that is not a socket: the file survives;
- an impostor daemon run by another user on the socket path: balloonctl refuses to talk;
- an impostor run by the same user, answering with terminal escapes: nothing raw reaches
  the terminal.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from chaos import other_user
from chaos.lab import Daemon, control_request
from chaos.session import Session
from chaos.verdict import Row, judge
from chaos.watch import Figures, Watch

SLOW_CONNECTIONS = 16
HUGE = "9" * 5000
CONTROL_BYTES = frozenset(range(0x00, 0x20)) - {0x0A} | frozenset(range(0x7F, 0xA0))


def slow_loris(session: Session) -> Row:
    daemon = session.daemon("control")
    figures = Figures()
    stopping = threading.Event()
    socks: list[socket.socket] = []
    for _ in range(SLOW_CONNECTIONS):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(daemon.socket))
        socks.append(sock)

    def drip() -> None:
        while not stopping.wait(1.0):
            for sock in socks:
                with contextlib.suppress(OSError):
                    sock.send(b" ")

    dripper = threading.Thread(target=drip, daemon=True)
    with Watch(daemon, figures, scrape=False):
        dripper.start()
        time.sleep(2.5)
        asked = time.monotonic()
        figures.status_answered = daemon.answers(timeout=5.0)
        figures.notes.append(f"status after {time.monotonic() - asked:.2f} s")
        time.sleep(8.0)
        figures.status_answered &= daemon.answers(timeout=5.0)
        stopping.set()
    dripper.join(5)
    for sock in socks:
        sock.close()
    return judge(Row("control: 16 slow-loris connections, a byte/s", figures))


def huge_integer(session: Session) -> Row:
    daemon = session.daemon("control")
    figures = Figures()
    line = b'{"cmd": "hold", "domain": "web", "target": ' + HUGE.encode() + b"}\n"
    before = daemon.log_text().count("Traceback")
    answer = control_request(daemon.socket, line, 5.0)
    error = str(answer.get("error", ""))
    figures.notes.append(f"answer: {error[:90]!r}")
    time.sleep(0.2)
    row = Row("control: a 5000-digit integer", figures)
    row.check(answer.get("ok") is False, "the request was accepted")
    row.check(not error.startswith("internal error"), "answered as an internal error")
    row.check(daemon.log_text().count("Traceback") == before, "a traceback in the log")
    figures.status_answered = daemon.answers()
    return judge(row)


def limits_kept(daemon: Daemon) -> bool:
    """Every domain's target within its floor and maxmem (held ones: within maxmem)."""
    for row in daemon.rows():
        target, maxmem, floor = row.get("target"), row.get("maxmem"), row.get("floor")
        hold = row.get("hold") or {}
        pinned = hold.get("target")
        if isinstance(pinned, int) and isinstance(maxmem, int) and pinned > maxmem:
            return False
        if not isinstance(target, int) or not isinstance(maxmem, int):
            continue
        if target > maxmem or (not hold and isinstance(floor, int) and target < floor):
            return False
    return True


def budget_figures(daemon: Daemon, figures: Figures) -> None:
    """The host budget seen by `status` after a few ticks, and whether limits held."""
    time.sleep(4 * daemon.interval)
    status = daemon.call("status").get("result", {})
    budget, free, reserve = status.get("budget"), status.get("host_free"), status.get("reserve")
    figures.notes.append(f"budget {budget} B, host free {free} B, reserve {reserve} B")
    figures.limits_kept = limits_kept(daemon)
    if isinstance(budget, int) and isinstance(free, int) and isinstance(reserve, int):
        # A promise the host cannot keep eats the whole budget ("left to grant 0 B").
        figures.limits_kept &= not (budget == 0 and free - reserve > 1 << 30)


def hold_beyond_maxmem(session: Session) -> Row:
    daemon = session.daemon("control")
    figures = Figures()
    answer = daemon.call("hold", domain="web", target=1 << 60, owner="chaos")
    figures.notes.append(
        "refused: " + str(answer.get("error"))[:80] if not answer.get("ok") else "accepted"
    )
    with Watch(daemon, figures, scrape=False):
        budget_figures(daemon, figures)
    daemon.call("release", domain="web")
    figures.status_answered = daemon.answers()
    return judge(Row("control: a hold at 2^60 bytes", figures))


def balloon_on_sim(session: Session) -> Row:
    daemon = session.daemon("control")
    figures = Figures()
    size_mib = 1536
    done = daemon.balloonctl("balloon", "web", str(size_mib), "--config", str(daemon.config))
    figures.notes.append(f"exit {done.returncode}: {(done.stdout + done.stderr).decode()[:90]!r}")
    # Acted where the daemon acts: its own host holds web at the size (how fast the balloon
    # gets there is the simulated guest's business: a busy guest gives memory back slowly).
    time.sleep(2 * daemon.interval)
    row = next((r for r in daemon.rows() if r.get("name") == "web"), {})
    hold = row.get("hold") or {}
    acted = hold.get("target") == size_mib << 20
    figures.notes.append(
        f"the daemon's web: {row.get('mem', 0) >> 20} MiB, pinned {hold.get('target')}"
    )
    result = Row("balloonctl balloon on sim:// (host inside the daemon)", figures)
    # Either the daemon holds the domain at the size, or the command said it cannot.
    result.check(acted or done.returncode != 0, "exit 0 but the daemon's domain did not move")
    figures.state_intact = acted or done.returncode != 0
    daemon.balloonctl("release", "web", "--config", str(daemon.config))
    return judge(result)


def socket_clobber(session: Session) -> Row:
    figures = Figures()
    daemon = session.fresh("clobber")
    victim = daemon.socket
    victim.parent.mkdir(mode=0o700, exist_ok=True)
    victim.write_text("precious\n")
    daemon.start(wait=False)
    deadline = time.monotonic() + 15
    while daemon.running() and time.monotonic() < deadline and not daemon.answers(1.0):
        time.sleep(0.2)
    started = daemon.running()
    code = daemon.stop()
    intact = victim.is_file() and victim.read_text() == "precious\n"
    figures.state_intact = intact
    tail = daemon.log_tail(1)
    figures.notes.append(f"daemon {'ran' if started else f'exited {code}'}: {tail[:100]!r}")
    return judge(Row("control: socket path names a regular file", figures))


def _has_control_bytes(text: bytes) -> bool:
    decoded = text.decode("utf-8", errors="replace")
    return any(ord(c) in CONTROL_BYTES for c in decoded)


def impostor(session: Session, *, other: bool) -> Row:
    name = (
        "balloonctl: impostor socket of another user"
        if other
        else "balloonctl: escapes in a daemon's answers"
    )
    figures = Figures()
    why_not = other_user.can_run_as_nobody()
    if why_not is not None:
        row = Row(name, figures, verdict="skip")
        row.why.append(why_not)
        return row
    folder = session.open_folder("impostor")
    path = folder / "control.sock"
    if other:
        os.chown(folder, other_user.NOBODY, other_user.NOBODY)
        proc = other_user.start_as_nobody(other_user.FAKE_DAEMON, str(path))
    else:
        proc = _start_as_root(other_user.FAKE_DAEMON, str(path))
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # "ready"
        daemon = session.daemon("control")
        outputs = []
        codes = []
        for argv in (("status",), ("list",), ("holds",), ("top", "--once")):
            done = daemon.balloonctl(*argv, "--socket", str(path), timeout=30)
            outputs.append(done.stdout + done.stderr)
            codes.append(done.returncode)
    finally:
        other_user.stop(proc)
    raw = any(_has_control_bytes(out) for out in outputs)
    row = Row(name, figures)
    row.check(not raw, "raw control characters reached the terminal")
    if other:
        refused = all(
            code != 0 and b"not root or you" in out
            for code, out in zip(codes, outputs, strict=True)
        )
        row.check(refused, "balloonctl talked to another user's socket")
        figures.notes.append(f"exits {codes}: {outputs[0].decode(errors='replace')[:80]!r}")
    else:
        figures.notes.append(f"exits {codes}")
    figures.state_intact = not raw
    return judge(row)


def _start_as_root(code: str, path: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", code, path],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def attacks(session: Session) -> list[tuple[str, Callable[[], Row]]]:
    return [
        ("control: slow-loris", lambda: slow_loris(session)),
        ("control: huge integer", lambda: huge_integer(session)),
        ("control: hold at 2^60", lambda: hold_beyond_maxmem(session)),
        ("balloonctl: balloon on sim://", lambda: balloon_on_sim(session)),
        ("control: socket path is a file", lambda: socket_clobber(session)),
        ("balloonctl: impostor of another user", lambda: impostor(session, other=True)),
        ("balloonctl: escapes in answers", lambda: impostor(session, other=False)),
    ]
