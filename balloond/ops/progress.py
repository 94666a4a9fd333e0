"""A one-line progress bar for migrations, from libvirt's job statistics (stdlib only)."""

from __future__ import annotations

from typing import TextIO

from balloond.backend.base import JobProgress
from balloond.units import format_size

WIDTH = 30


def render(progress: JobProgress) -> str:
    """`[#########.....]  45%  1.2 GiB of 2.0 GiB, 300 MiB left, dirty 12 MiB/s, 4.2 s`."""
    total = progress.total or progress.processed + progress.remaining
    done = 0.0 if total <= 0 else min(1.0, max(0.0, 1.0 - progress.remaining / total))
    filled = int(done * WIDTH)
    bar = "#" * filled + "." * (WIDTH - filled)
    return (
        f"[{bar}] {done * 100:3.0f}%  {format_size(progress.processed)} sent, "
        f"{format_size(progress.remaining)} left, dirty {format_size(progress.dirty_rate)}/s, "
        f"{progress.elapsed:.1f} s"
    )


class ProgressLine:
    """Rewrites one terminal line; prints nothing when the stream is not a TTY."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._enabled = stream.isatty()
        self._shown = False

    def __call__(self, progress: JobProgress) -> None:
        if self._enabled:
            self._stream.write("\r" + render(progress) + "\x1b[K")
            self._stream.flush()
            self._shown = True

    def finish(self) -> None:
        if self._shown:
            self._stream.write("\n")
            self._stream.flush()
            self._shown = False
