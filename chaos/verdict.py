"""Rows of the chaos table and the limits an attack must stay within to pass.

The limits are about what the attack does to the daemon, not about this machine's speed: a
scrape that waits a second while the daemon idles, memory that grows by tens of MiB, a tick
that is seconds late, or a `status` that is not answered at all only happen when the attack
got through. Normal figures here are milliseconds and a few MiB.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chaos.watch import Figures

SCRAPE_P99_LIMIT = 1.0  # seconds
RSS_GROWTH_LIMIT = 64 * 1024 * 1024  # bytes over the daemon's size before the attack
TICK_GAP_LIMIT = 2.5  # seconds (the chaos daemons tick every 0.5 s)
CPU_SHARE_LIMIT = 0.5  # of one core, while a guest floods its channel


@dataclass
class Row:
    attack: str
    figures: Figures
    verdict: str = "pass"  # pass, FAIL, skip
    why: list[str] = field(default_factory=list)

    def fail(self, reason: str) -> None:
        self.verdict = "FAIL"
        self.why.append(reason)

    def check(self, ok: bool, reason: str) -> None:
        if not ok:
            self.fail(reason)


def judge(row: Row, *, cpu: bool = False) -> Row:
    """Fail `row` on every measured figure beyond its limit (`cpu`: judge CPU share too)."""
    f = row.figures
    if f.scrape_p99 is not None:
        row.check(f.scrape_p99 <= SCRAPE_P99_LIMIT, f"scrape p99 {f.scrape_p99:.2f} s")
    if f.scrape_failures:
        row.fail(f"{f.scrape_failures} of {f.scrapes} scrapes failed")
    if f.rss_peak is not None and f.rss_before is not None:
        grown = f.rss_peak - f.rss_before
        row.check(grown <= RSS_GROWTH_LIMIT, f"RSS grew by {mib(grown)}")
    if f.tick_gap_max is not None:
        row.check(f.tick_gap_max <= TICK_GAP_LIMIT, f"a tick came {f.tick_gap_max:.1f} s late")
    if cpu and f.cpu_share is not None:
        row.check(f.cpu_share <= CPU_SHARE_LIMIT, f"daemon CPU {f.cpu_share:.0%} of a core")
    if f.status_answered is False:
        row.fail("status not answered")
    if f.state_intact is False:
        row.fail("state not intact")
    if f.limits_kept is False:
        row.fail("a target left floor..maxmem")
    return row


def mib(size: int | None) -> str:
    return "-" if size is None else f"{size / 1048576:.0f} MiB"
