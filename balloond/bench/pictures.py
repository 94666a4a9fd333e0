"""The README's picture of `balloonctl top`, drawn by balloonctl's own renderer.

    python -m balloond.bench.pictures --out docs/img/balloonctl-top.svg   (make pictures)

The daemon runs the demo's simulated host (sim://default, the shipped policies) for 170
simulated seconds on a manual clock, and `balloonctl top`'s `render` draws that moment into
rich's recording console, exported as SVG. Same code, same clock, same screen: a test
redraws it and compares the text the picture shows, so the picture cannot go stale.
"""

from __future__ import annotations

import argparse
import html
import io
import re
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from balloond.backend.simulated import open_simulated
from balloond.cli.ctl_top import render, view_fetch
from balloond.daemon.assemble import build_daemon, source_tree_policies
from balloond.daemon.loop import LoopSettings
from balloond.policy.model import Amount

WIDTH = 150  # columns: the full table (balloonctl top goes compact below 150)
TICKS = 17  # 170 simulated seconds: growing, shrinking and steady guests at once
STEP = 10.0  # simulated seconds per tick
TITLE = "balloonctl top"
_TEXT = re.compile(r'<text class="[^"]*-r\d+" x="([0-9.]+)" y="([0-9.]+)"[^>]*>([^<]*)</text>')


def top_console() -> Console:
    """A recording console holding `balloonctl top` at the chosen moment."""
    host = open_simulated("sim://default?clock=manual")
    daemon = build_daemon(
        "sim://default",
        LoopSettings(
            interval=STEP, reserve=Amount(size=host.scenario.host.reserve), routine_summary=0.0
        ),
        source_tree_policies(),
        clock=host.now,
        connect=lambda: host,
        channels=False,
        policy_dir_required=False,
    )
    try:
        for _ in range(TICKS):
            host.advance(STEP)
            daemon.tick()
        frame = view_fetch(daemon, clock=host.now)()
    finally:
        daemon.close()
    console = Console(
        record=True,
        width=WIDTH,
        file=io.StringIO(),
        force_terminal=True,
        color_system="truecolor",
        legacy_windows=False,
    )
    console.print(render(frame, width=WIDTH))
    return console


def top_svg() -> str:
    svg: str = top_console().export_svg(title=TITLE)
    return svg


def svg_lines(svg: str) -> list[str]:
    """The screen's text in a rich SVG export, line by line (what a reader sees)."""
    lines: dict[float, list[tuple[float, str]]] = {}
    for x, y, text in re.findall(
        r'<text class="[^"]*-r\d+" x="([0-9.]+)" y="([0-9.]+)"[^>]*>([^<]*)</text>', svg
    ):
        lines.setdefault(float(y), []).append((float(x), html.unescape(text).replace("\xa0", " ")))
    return ["".join(t for _, t in sorted(parts)).rstrip() for _, parts in sorted(lines.items())]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m balloond.bench.pictures", description=__doc__)
    parser.add_argument("--out", metavar="FILE", required=True, help="the SVG to write")
    args = parser.parse_args(argv)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(top_svg(), encoding="utf-8")
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
