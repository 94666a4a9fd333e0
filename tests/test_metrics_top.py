"""`balloonctl top`: rendering of fixed frames, the control-socket source, the live loop."""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from balloond.cli import ctl
from balloond.cli.common import EXIT_UNREACHABLE
from balloond.cli.ctl_top import (
    Frame,
    control_fetch,
    pressure_cell,
    render,
    run_live,
    size_bar,
    view_fetch,
)
from balloond.daemon.control import ControlServer
from balloond.errors import ControlError
from balloond.units import GiB, MiB
from tests.support.views import NOW, hand_made_view

STATUS = {
    "uri": "qemu:///system",
    "connected": True,
    "host_total": 64 * GiB,
    "host_free": 3 * GiB,
    "reserve": 4 * GiB,
    "budget": 0,
    "last_tick_at": NOW - 7,
    "holds": 1,
    "stuck": 1,
}


def row(
    name: str, mem: int, target: int | None, pressure: float | None, **extra: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "state": "r",
        "mem": mem,
        "maxmem": 4 * GiB,
        "target": target,
        "floor": GiB,
        "ceiling": 4 * GiB,
        "pressure": pressure,
        "reason": "steady",
        "hold": None,
        "stuck_until": None,
        "report_age": 3.0,
        **extra,
    }


ROWS = [
    row("web1", 2 * GiB, 3 * GiB, 0.08, reason="grow_pressure"),
    row("idle1", 3 * GiB, 2 * GiB, 0.0, reason="shrink_idle"),
    row("db1", 2 * GiB, 2 * GiB, 0.002, hold={"owner": "balloonctl balloon"}),
    row("batch1", GiB, GiB, None, stuck_until=NOW + 60, report_age=600.0),
]


def text_of(frame: Frame, width: int = 180, width_hint: int | None = None, **kwargs: Any) -> str:
    console = Console(record=True, width=width, file=io.StringIO())
    console.print(render(frame, width=width_hint, **kwargs))
    return console.export_text()


def order(text: str, names: list[str]) -> list[str]:
    return sorted(names, key=text.index)


def test_table_shows_sizes_pressure_decision_and_flags() -> None:
    text = text_of(Frame(STATUS, ROWS, taken_at=NOW))
    assert "qemu:///system" in text and "libvirt up" in text
    assert "host free 3 GiB of 64 GiB, reserve 4 GiB" in text
    assert "last tick 7s ago" in text
    assert "grow_pressure ▲1 GiB" in text
    assert "shrink_idle ▼1 GiB" in text
    assert "8.0%" in text and "0.2%" in text
    assert "held" in text and "stuck" in text and "silent 600s" in text
    assert "1 GiB–4 GiB" in text


def test_default_order_is_highest_pressure_first() -> None:
    text = text_of(Frame(STATUS, ROWS, taken_at=NOW))
    assert order(text, ["web1", "idle1", "db1", "batch1"]) == ["web1", "db1", "idle1", "batch1"]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("name", ["batch1", "db1", "idle1", "web1"]),
        ("current", ["idle1", "web1", "db1", "batch1"]),
        ("delta", ["web1", "idle1", "db1", "batch1"]),
    ],
)
def test_sort_orders(sort: str, expected: list[str]) -> None:
    text = text_of(Frame(STATUS, ROWS, taken_at=NOW), sort=sort)
    assert order(text, expected) == expected


def test_limit_says_how_many_are_hidden() -> None:
    text = text_of(Frame(STATUS, ROWS, taken_at=NOW), limit=2)
    assert "web1" in text and "batch1" not in text
    assert "2 more domains not shown" in text


def test_narrow_console_gets_the_compact_table() -> None:
    frame = Frame(STATUS, [*ROWS, row("a-rather-long-domain-name", GiB, GiB, 0.0)], taken_at=NOW)
    text = text_of(frame, width=110, width_hint=110)
    assert "Floor–Ceiling" not in text
    assert max(len(line) for line in text.splitlines()) <= 110
    for name in ("web1", "idle1", "db1", "batch1"):
        assert name in text
    assert re.search(r"a-rather-long-dom\w*…", text)  # where it is cut depends on rich
    assert "grow_pressure" in text


def test_host_below_reserve_and_libvirt_down_are_shown() -> None:
    status = {**STATUS, "connected": False}
    text = text_of(Frame(status, [], taken_at=NOW))
    assert "libvirt DOWN" in text


def test_size_bar_marks_target_and_fills_current() -> None:
    bar = size_bar(row("x", 2 * GiB, 4 * GiB, None), width=8)
    assert bar.plain == "████░░░┃"
    assert "cyan" in str(bar.spans[0].style)  # growing
    shrinking = size_bar(row("x", 3 * GiB, GiB, None), width=8)
    assert shrinking.plain == "█┃████░░"  # the target mark ends its 1 GiB
    assert "yellow" in str(shrinking.spans[0].style)
    capped = size_bar(row("x", GiB, None, None, ceiling=2 * GiB), width=8)
    assert capped.plain == "██░░····"  # dim dots past the ceiling


def test_pressure_cell_scale() -> None:
    assert pressure_cell(row("x", GiB, GiB, 0.0), width=4).plain == "▯▯▯▯   0.0%"
    assert pressure_cell(row("x", GiB, GiB, 0.001), width=4).plain.startswith("▮▯▯▯")
    assert pressure_cell(row("x", GiB, GiB, 0.5), width=4).plain == "▮▮▮▮  50.0%"
    assert pressure_cell(row("x", GiB, GiB, None)).plain == "-"


HOSTILE: list[Mapping[str, Any]] = [
    {"name": "[bold red]evil[/]", "mem": GiB, "maxmem": 2 * GiB},
    {"name": None, "mem": "lots", "maxmem": None, "target": [1], "pressure": "high"},
    {"mem": math.nan, "maxmem": math.inf, "target": -5, "pressure": math.nan},
    {"name": "zero", "mem": GiB, "maxmem": 0, "target": GiB, "ceiling": -1},
    {"name": "negative", "mem": -GiB, "maxmem": GiB, "target": 10 * GiB, "pressure": -1.0},
    {},
]


def test_hostile_rows_render_without_crashing_or_markup() -> None:
    text = text_of(Frame({"uri": 5, "host_free": "x"}, HOSTILE, taken_at=NOW))
    assert "[bold red]evil[/]" in text  # printed literally, not interpreted
    assert "zero" in text and "negative" in text


def test_view_fetch_renders_a_daemon_view() -> None:
    frame = view_fetch(hand_made_view(), lambda: NOW)()
    text = text_of(frame)
    assert "web1" in text and "db1" in text
    assert "shrink_idle ▼512 MiB" in text
    assert "held" in text and "stuck" in text
    assert "holds 1  stuck 1" in text


# -- over a real control socket -----------------------------------------------------------------


@pytest.fixture
def socket_path(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "run" / "control.sock"
    path.parent.mkdir(mode=0o700)
    server = ControlServer(
        path,
        {
            "status": lambda _req: STATUS,
            "list": lambda _req: {"uri": STATUS["uri"], "rows": ROWS},
        },
    )
    try:
        yield path
    finally:
        server.close()


def test_control_fetch_reads_status_and_list(socket_path: Path) -> None:
    frame = control_fetch(str(socket_path))()
    assert frame.status["uri"] == "qemu:///system"
    assert [r["name"] for r in frame.rows] == [r["name"] for r in ROWS]
    assert frame.rows[0]["mem"] == 2 * GiB


def test_control_fetch_refuses_a_malformed_answer(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    server = ControlServer(path, {"status": lambda _r: [1, 2], "list": lambda _r: "rows"})
    try:
        with pytest.raises(ControlError, match="unexpected answer"):
            control_fetch(str(path))()
    finally:
        server.close()


def test_balloonctl_top_once(socket_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert ctl.main(["top", "--once", "--socket", str(socket_path), "--sort", "name"]) == 0
    out = capsys.readouterr().out
    assert order(out, ["web1", "batch1"]) == ["batch1", "web1"]
    assert "grow_pressure" in out


def test_balloonctl_top_without_a_daemon_exits_unreachable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nothing.sock"
    assert ctl.main(["top", "--once", "--socket", str(missing)]) == EXIT_UNREACHABLE
    assert "not running" in capsys.readouterr().err


@pytest.mark.parametrize("interval", ["0", "-1", "abc", "1e9"])
def test_bad_interval_is_refused(interval: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        ctl.main(["top", "--interval", interval])
    assert exit_info.value.code == 2
    assert "interval" in capsys.readouterr().err


def test_live_loop_keeps_the_last_table_when_the_daemon_stops_answering() -> None:
    answers: list[Frame | Exception] = [
        Frame(STATUS, ROWS[:1], taken_at=NOW),
        ControlError("balloond is not running (no listener on '/run/x.sock')"),
    ]

    def fetch() -> Frame:
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    console = Console(record=True, width=160, file=io.StringIO(), force_terminal=False)
    run_live(fetch, console, interval=0.01, sort="name", limit=None, frames=2)
    text = console.export_text()
    assert "web1" in text
    assert "not running" in text and "retrying" in text


def test_frames_are_json_round_trippable() -> None:
    """What the control socket carries survives JSON unchanged (no tuples, no bytes)."""
    frame = view_fetch(hand_made_view(), lambda: NOW)()
    assert json.loads(json.dumps(list(frame.rows))) == list(frame.rows)
    assert frame.rows[0]["mem"] == 2 * GiB and frame.rows[0]["target"] == 1536 * MiB


def test_ctrl_c_ends_the_live_loop_quietly() -> None:
    calls = 0

    def fetch() -> Frame:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise KeyboardInterrupt
        return Frame(STATUS, ROWS, taken_at=NOW)

    console = Console(record=True, width=160, file=io.StringIO())
    run_live(fetch, console, interval=0.01, sort="name", limit=None)  # returns: no exception
    assert calls == 2
    assert "web1" in console.export_text()
