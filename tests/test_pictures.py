"""The README's pictures are what the code draws now (`make pictures` redraws them)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from balloond.bench.pictures import svg_lines, top_console

ROOT = Path(__file__).resolve().parent.parent
TOP = ROOT / "docs" / "img" / "balloonctl-top.svg"


@pytest.mark.skipif(
    bool(os.environ.get("BALLOOND_FLOOR_RUN")),
    reason="drawn with the development venv's rich; Debian 12's rich lays cells out apart",
)
def test_the_balloonctl_top_picture_shows_what_top_draws_now() -> None:
    """The screen's text, not the SVG's markup, which changes with rich's releases (blanks
    are left out: the SVG draws runs of spaces as background, not text)."""
    now = ["".join(line.split()) for line in top_console().export_text().splitlines()]
    shown = ["".join(line.split()) for line in svg_lines(TOP.read_text(encoding="utf-8"))]
    assert shown == now, f"{TOP.relative_to(ROOT)} is stale: run `make pictures`"


def test_the_svg_text_reader_reads_the_screen() -> None:
    console = top_console()
    lines = svg_lines(console.export_svg(title="t"))
    assert lines[0].startswith("balloond sim://default  libvirt up")
    assert any(line.startswith("│web ") for line in lines)


def test_the_readme_shows_the_pictures() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "](docs/img/balloonctl-top.svg)" in readme
    assert "](bench/results/summary.png)" in readme
    assert (ROOT / "bench" / "results" / "summary.png").exists()
