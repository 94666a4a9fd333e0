"""node_exporter textfile output, for hosts that already run node_exporter.

node_exporter's textfile collector reads every `*.prom` file in its directory at each of its
scrapes, so a half-written file would be read as a broken or truncated exposition: write to a
temporary file in the same directory and rename it over the target (atomic on POSIX).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from balloond.errors import ConfigError
from balloond.metrics.collector import render
from balloond.view import DaemonView


def write_textfile(
    view: DaemonView, path: str | os.PathLike[str], *, clock: Callable[[], float] | None = None
) -> None:
    """Write one scrape of `view` to `path` (which should end in `.prom`), atomically.

    With node_exporter there is no `up` for balloond: alert on
    `balloond_last_tick_timestamp_seconds` going stale instead."""
    target = Path(path)
    if target.suffix != ".prom":
        raise ConfigError(
            f"metrics textfile {str(target)!r} must end in .prom "
            "(node_exporter's textfile collector ignores other files)"
        )
    body = render(view, clock=clock)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            # No fsync: the rename alone makes the switch atomic for readers, and after a
            # crash the next tick rewrites the file; syncing a disk every tick bought nothing.
            handle.write(body)
        os.chmod(tmp, 0o644)  # node_exporter usually runs as another user
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
