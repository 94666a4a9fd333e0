"""Where the daemon's lines go, and how they are marked.

Under systemd, stdout is a stream to journald and systemd says so in $JOURNAL_STREAM
("DEVICE:INODE" of that stream). Each line then starts with its syslog priority, `<4>` for a
warning, which journald reads and strips (`journalctl -p warning -u balloond` finds them). On
a terminal or in a file, lines are plain: a warning says "warning: " in words, and on a
terminal each line starts with the time (the journal adds its own).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

LEVELS = ("debug", "info", "warning", "error")
DEFAULT_LEVEL = "info"
# syslog priorities (sd-daemon.h: SD_ERR "<3>" ... SD_DEBUG "<7>")
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3}


def level_number(name: str) -> int:
    """'warning' -> logging.WARNING; a name outside LEVELS is a ValueError naming them."""
    if name not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, got: {name!r}")
    number: int = getattr(logging, name.upper())
    return number


def to_journal(stream: TextIO, environ: dict[str, str] | None = None) -> bool:
    """True when `stream` is the journal stream systemd connected (not merely when the
    variable is set: a child whose output was redirected inherits it)."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    try:
        info = os.fstat(stream.fileno())
        return (info.st_dev, info.st_ino) == (int(device), int(inode))
    except (ValueError, OSError, AttributeError):
        return False


def priority(levelno: int) -> int:
    """The syslog priority of a logging level (between two levels: the more urgent one)."""
    for number in sorted(_PRIORITY, reverse=True):
        if levelno >= number:
            return _PRIORITY[number]
    return _PRIORITY[logging.DEBUG]


class JournalFormatter(logging.Formatter):
    """`<priority>message`, on every line of a multi-line message (journald reads each
    line as an entry of its own)."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        mark = f"<{priority(record.levelno)}>"
        return "\n".join(mark + line for line in text.split("\n"))


class PlainFormatter(logging.Formatter):
    """ "warning: message" for warnings and errors; the time first when `timestamps`."""

    def __init__(self, timestamps: bool) -> None:
        super().__init__(datefmt="%H:%M:%S")
        self._timestamps = timestamps

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno >= logging.WARNING:
            text = f"{record.levelname.lower()}: {text}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        if self._timestamps:
            text = f"{self.formatTime(record, self.datefmt)} {text}"
        return text


def setup(level: str = DEFAULT_LEVEL, *, timestamps: bool | None = None) -> logging.Handler:
    """Send the daemon's log to stdout at `level`, formatted for where stdout goes.
    `timestamps`: None means on a terminal only."""
    stream = sys.stdout
    handler = logging.StreamHandler(stream)
    if to_journal(stream):
        handler.setFormatter(JournalFormatter())
    else:
        stamped = stream.isatty() if timestamps is None else timestamps
        handler.setFormatter(PlainFormatter(stamped))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level_number(level))
    # apscheduler says "Running job ..." at info every tick: its warnings are enough.
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, level_number(level)))
    return handler
