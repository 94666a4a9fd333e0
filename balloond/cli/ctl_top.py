"""`balloonctl top`: a live table of the domains, for operators without Grafana.

Reads the running daemon over its control socket (`status` and `list`), the same answers
`balloonctl status` and `list` show. Rendering is a pure function of one `Frame`, so tests
and other data sources (a `DaemonView`, see `view_fetch`) draw the same table.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from balloond.cli.common import EXIT_OK
from balloond.cli.printable import printable, printable_data
from balloond.daemon import present
from balloond.daemon.control import ControlClient
from balloond.daemon.runconfig import load_daemon_config
from balloond.errors import ControlError
from balloond.units import format_size
from balloond.view import DaemonView

BAR_WIDTH = 24
PRESSURE_FULL = 0.10  # a PSI `some` of 10 % fills the pressure bar: already severe
SORTS = ("pressure", "name", "current", "delta")
COMPACT_BELOW = 150  # columns: narrower consoles get the compact table


@dataclass(frozen=True)
class Frame:
    """One refresh: the daemon's `status` answer and its `list` rows (JSON-like dicts)."""

    status: Mapping[str, Any]
    rows: Sequence[Mapping[str, Any]]
    taken_at: float = field(default_factory=time.time)
    error: str | None = None  # why this frame has no fresh data


Fetch = Callable[[], Frame]


def control_fetch(socket_path: str) -> Fetch:
    """Frames from the daemon listening on `socket_path`."""
    client = ControlClient(socket_path, timeout=5.0)

    def fetch() -> Frame:
        status = client.call("status")
        listing = client.call("list")
        rows = listing.get("rows") if isinstance(listing, dict) else None
        if not isinstance(status, dict) or not isinstance(rows, list):
            raise ControlError(f"control socket {socket_path!r}: unexpected answer to list/status")
        return Frame(status, [r for r in rows if isinstance(r, dict)])

    return fetch


def view_fetch(view: DaemonView, clock: Callable[[], float] = time.time) -> Fetch:
    """Frames straight from a DaemonView (in-process observers, tests)."""

    def fetch() -> Frame:
        now = clock()
        snapshot, decision = view.last_snapshot(), view.last_decision()
        telemetry = view.telemetry()
        status = {
            "uri": view.uri,
            "connected": telemetry.libvirt_up,
            "ticks": telemetry.ticks,
            "last_tick_at": telemetry.last_tick_at,
            "reserve": view.reserve,
            "host_total": snapshot.host.total if snapshot else None,
            "host_free": snapshot.host.free if snapshot else None,
            "budget": decision.budget if decision else None,
            "holds": len(view.holds()),
            "stuck": len(view.stuck()),
        }
        return Frame(status, present.list_rows(view, now), taken_at=now)

    return fetch


# -- rendering ---------------------------------------------------------------------------------


def _num(row: Mapping[str, Any], key: str) -> float | None:
    """A number from an answer, or None: the answer is JSON and any field may be missing."""
    value = row.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _size(value: float | None) -> str:
    return "-" if value is None else format_size(value)


def size_bar(row: Mapping[str, Any], width: int = BAR_WIDTH) -> Text:
    """0..maxmem across `width` cells: filled up to current, `┃` at the target, dim past the
    ceiling. Yellow while shrinking, cyan while growing, green when at the target."""
    maxmem, current = _num(row, "maxmem"), _num(row, "mem")
    if not maxmem or maxmem <= 0 or current is None:
        return Text("?".center(width), style="dim")
    target = _num(row, "target")
    ceiling = _num(row, "ceiling") or maxmem

    def cell(size: float) -> int:
        return max(0, min(width - 1, round(size / maxmem * width) - 1))

    filled = max(0, min(width, round(current / maxmem * width)))
    colour = "green"
    if target is not None and abs(target - current) > maxmem / width / 2:
        colour = "cyan" if target > current else "yellow"
    bar = Text()
    for i in range(width):
        beyond = i > cell(ceiling)
        bar.append(
            "█" if i < filled else ("·" if beyond else "░"), style=colour if i < filled else "dim"
        )
    if target is not None:
        at = cell(target)
        bar = bar[:at] + Text("┃", style="bold magenta") + bar[at + 1 :]
    return bar


def pressure_cell(row: Mapping[str, Any], width: int = 8) -> Text:
    pressure = _num(row, "pressure")
    if pressure is None:
        return Text("-", style="dim")
    style = "green" if pressure < 0.005 else "yellow" if pressure < 0.05 else "bold red"
    filled = max(0, min(width, round(pressure / PRESSURE_FULL * width)))
    if pressure > 0 and filled == 0 and width > 0:
        filled = 1  # any stall shows
    text = Text("▮" * filled, style=style)
    text.append("▯" * (width - filled), style="dim")
    text.append(f"{' ' if width else ''}{pressure * 100:5.1f}%", style=style)
    return text


def decision_cell(row: Mapping[str, Any]) -> Text:
    reason = row.get("reason")
    current, target = _num(row, "mem"), _num(row, "target")
    text = Text(str(reason) if reason else "-")
    if target is not None and current is not None and target != current:
        arrow = "▲" if target > current else "▼"
        text.append(
            f" {arrow}{format_size(abs(target - current))}",
            style="cyan" if target > current else "yellow",
        )
    return text


def flags_cell(row: Mapping[str, Any]) -> Text:
    text = Text()
    if row.get("hold"):
        text.append("held ", style="bold blue")
    if row.get("stuck_until") is not None:
        text.append("stuck ", style="bold red")
    age = _num(row, "report_age")
    if age is not None and age > 60:
        text.append(f"silent {age:.0f}s", style="yellow")  # no guest report for that long
    return text


def _sort_key(sort: str) -> Callable[[Mapping[str, Any]], Any]:
    if sort == "name":
        return lambda r: str(r.get("name", ""))
    if sort == "current":
        return lambda r: -(_num(r, "mem") or 0)
    if sort == "delta":
        return lambda r: -abs((_num(r, "target") or 0) - (_num(r, "mem") or 0))

    def by_pressure(r: Mapping[str, Any]) -> tuple[bool, float, str]:
        pressure = _num(r, "pressure")  # domains without data go last
        return (pressure is None, -(pressure or 0.0), str(r.get("name", "")))

    return by_pressure


def domain_table(
    rows: Sequence[Mapping[str, Any]],
    *,
    sort: str = "pressure",
    limit: int | None = None,
    compact: bool = False,
) -> Table:
    """`compact` (narrow terminals): shorter bars and no floor–ceiling column."""
    table = Table(expand=False, pad_edge=False, header_style="bold")
    columns = [
        ("Domain", "left"),
        ("St", "center"),
        ("Current", "right"),
        ("Size of maxmem (┃ target)", "left"),
        ("Target", "right"),
        ("Floor–Ceiling", "right"),
        ("Pressure", "left"),
        ("Last decision", "left"),
        ("", "left"),
    ]
    if compact:
        columns[3] = ("Size ┃target", "left")
        del columns[5]
    table.add_column(
        columns[0][0],
        min_width=6,
        max_width=20 if compact else 32,
        no_wrap=True,
        overflow="ellipsis",
    )
    for title, justify in columns[1:]:
        table.add_column(title, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    ordered = sorted(rows, key=_sort_key(sort))
    shown = ordered if limit is None else ordered[: max(0, limit)]
    for row in shown:
        cells: list[RenderableType] = [
            Text(str(row.get("name", "?"))),  # Text, not markup: names are not ours to style
            Text(str(row.get("state") or "-")),
            _size(_num(row, "mem")),
            size_bar(row, width=10 if compact else BAR_WIDTH),
            _size(_num(row, "target")),
            f"{_size(_num(row, 'floor'))}–{_size(_num(row, 'ceiling'))}",
            pressure_cell(row, width=0 if compact else 8),
            decision_cell(row),
            flags_cell(row),
        ]
        if compact:
            del cells[5]
        table.add_row(*cells)
    if len(shown) < len(ordered):
        table.caption = f"{len(ordered) - len(shown)} more domains not shown (--limit, --sort)"
    return table


def header(frame: Frame) -> Text:
    status = frame.status
    text = Text()
    text.append("balloond ", style="bold")
    text.append(str(status.get("uri", "?")))
    connected = status.get("connected")
    text.append("  libvirt ")
    text.append("up" if connected else "DOWN", style="green" if connected else "bold red")
    free, reserve = _num(status, "host_free"), _num(status, "reserve")
    text.append(f"  host free {_size(free)} of {_size(_num(status, 'host_total'))}")
    short = free is not None and reserve is not None and free < reserve
    text.append(f", reserve {_size(reserve)}", style="bold red" if short else "")
    text.append(f", budget {_size(_num(status, 'budget'))}")
    last = _num(status, "last_tick_at")
    age = "-" if last is None else f"{max(0.0, frame.taken_at - last):.0f}s ago"
    text.append(f"  last tick {age}")
    text.append(f"  holds {status.get('holds', 0)}  stuck {status.get('stuck', 0)}")
    if frame.error:
        text.append(f"\n{frame.error}", style="bold red")
    return text


def render(
    frame: Frame, *, sort: str = "pressure", limit: int | None = None, width: int | None = None
) -> RenderableType:
    """`width`: the console's, when known; below 150 columns the table goes compact. Every
    string of the frame is shown `printable`: it came from the daemon or the hypervisor."""
    compact = width is not None and width < COMPACT_BELOW
    error = None if frame.error is None else printable(frame.error)
    frame = Frame(printable_data(frame.status), printable_data(frame.rows), frame.taken_at, error)
    return Group(header(frame), domain_table(frame.rows, sort=sort, limit=limit, compact=compact))


# -- the command -------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "top",
        help="live table of domains: sizes, targets, pressure, last decision",
        description="A live, refreshing table of the running daemon's domains: current size "
        "against target and maxmem, pressure, and each domain's last decision. Reads the "
        "daemon's control socket; Ctrl-C quits.",
    )
    parser.add_argument(
        "--socket",
        metavar="PATH",
        help="the daemon's control socket (default: the config's "
        "`control_socket`, /run/balloond/control.sock)",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="daemon config to read the socket path from (default: "
        "/etc/balloond/balloond.yaml if it exists)",
    )
    parser.add_argument(
        "--interval",
        "-d",
        type=_positive,
        default=2.0,
        metavar="SECONDS",
        help="seconds between refreshes (default: %(default)s)",
    )
    parser.add_argument(
        "--sort",
        choices=SORTS,
        default="pressure",
        help="row order (default: %(default)s, highest first)",
    )
    parser.add_argument(
        "--limit",
        "-n",
        type=int,
        metavar="N",
        help="show at most N domains (default: what fits the terminal)",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="print one table and exit (exit 4 if the daemon is not running)",
    )
    parser.set_defaults(func=cmd_top)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got: {text!r}") from None
    if not 0.1 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"interval must be 0.1-3600 seconds, got: {text}")
    return value


def cmd_top(args: argparse.Namespace) -> int:
    path = args.socket or str(load_daemon_config(args.config).control_socket)
    fetch = control_fetch(path)
    console = Console()
    if args.once:
        # Piped output has no width to fit: print the full table rather than an 80-column one.
        width = console.width if console.is_terminal else 200
        console = Console(width=width)
        console.print(render(fetch(), sort=args.sort, limit=args.limit, width=width))
        return EXIT_OK
    run_live(fetch, console, interval=args.interval, sort=args.sort, limit=args.limit)
    return EXIT_OK


def run_live(
    fetch: Fetch,
    console: Console,
    *,
    interval: float,
    sort: str,
    limit: int | None,
    frames: int | None = None,
) -> None:
    """Refresh every `interval` seconds until Ctrl-C (or `frames` refreshes, for tests). A
    daemon that stops answering shows as an error line over the last good table."""
    last = Frame({}, [])

    def draw() -> RenderableType:
        nonlocal last
        try:
            last = fetch()
        except ControlError as error:
            last = Frame(last.status, last.rows, error=f"{error} (retrying)")
        rows_fit = limit if limit is not None else max(1, console.height - 8)
        return render(last, sort=sort, limit=rows_fit, width=console.width)

    count = 0
    with Live(draw(), console=console, auto_refresh=False, screen=False) as live:
        try:
            while frames is None or count < frames:
                time.sleep(interval)
                live.update(draw(), refresh=True)
                count += 1
        except KeyboardInterrupt:
            pass
