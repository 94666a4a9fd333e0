"""The changes a tick made, in the log, so that a settled host logs little.

A grow, a stop, and a shrink for a reason worth reading (the host is short, a guest asked,
a hold ended) each get their own info line, as they happen. Routine shrinks do not: an
idle guest gives memory back one step per tick, for minutes, and on a host of forty guests
that was most of the journal. Each is logged at debug (`--log-level debug` shows every one)
and summed up at info once a minute:

    routine shrinks, last 60 s: 14 on 6 domains (batch, cache, idle, leak, legacy, +1),
    2.1 GiB returned

`summary_every` 0 logs every change on its own line at info (the demo, `run --once`).
"""

from __future__ import annotations

import logging

from balloond.model import DomainDecision, Reason
from balloond.units import format_size

SUMMARY_EVERY = 60.0  # seconds between two summaries of routine shrinks
ROUTINE = frozenset({Reason.SHRINK_IDLE})
_NAMES_SHOWN = 5


def routine(action: DomainDecision) -> bool:
    """An idle guest's step down: the change a settled host makes all the time."""
    return action.delta < 0 and action.reason in ROUTINE


class DecisionLog:
    def __init__(self, logger: logging.Logger, summary_every: float = SUMMARY_EVERY) -> None:
        self._log = logger
        self._every = summary_every
        self._since: float | None = None  # when the first shrink of this summary was made
        self._count = 0
        self._returned = 0
        self._domains: dict[str, None] = {}  # names, in the order they first shrank
        self._dry_run = False

    def changed(self, action: DomainDecision, line: str, now: float, *, dry_run: bool) -> None:
        """One change applied (or, with `dry_run`, one that would have been)."""
        text = f"[dry-run] {line}" if dry_run else line
        if self._every <= 0 or not routine(action):
            self._log.info("%s", text)
            return
        self._log.debug("%s", text)
        if self._since is None:
            self._since = now
        self._count += 1
        self._returned -= action.delta
        self._domains.setdefault(action.name)
        self._dry_run = dry_run

    def tick_done(self, now: float) -> None:
        """Log the summary when its minute is up (called after every tick)."""
        if self._since is not None and now - self._since >= self._every:
            self.flush(now)

    def flush(self, now: float) -> None:
        """Log what is pending now (the minute is up, or the daemon stops)."""
        if self._since is None:
            return
        names = list(self._domains)
        shown = ", ".join(names[:_NAMES_SHOWN])
        if len(names) > _NAMES_SHOWN:
            shown += f", +{len(names) - _NAMES_SHOWN}"
        verb = "would be returned" if self._dry_run else "returned"
        self._log.info(
            "%sroutine shrinks, last %.0f s: %d on %d domain%s (%s), %s %s",
            "[dry-run] " if self._dry_run else "",
            max(now - self._since, 0.0),
            self._count,
            len(names),
            "" if len(names) == 1 else "s",
            shown,
            format_size(self._returned),
            verb,
        )
        self._since, self._count, self._returned, self._domains = None, 0, 0, {}
