"""A process id that no process has any more (for holds of commands that died)."""

from __future__ import annotations

import subprocess
import sys


def dead_pid() -> int:
    """The pid of a child that has exited and been reaped (pids are reused only after the
    kernel wraps around, far beyond a test's lifetime)."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)
