"""Is a process on this host alive? Holds name the pid of the command that took them, so a
command that dies does not pin its domain for ever."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True while `pid` exists on this host (also when it belongs to another user)."""
    if pid <= 0:
        return False  # 0 and negatives name process groups to kill(), not a process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    except OSError:
        return False
    return True
