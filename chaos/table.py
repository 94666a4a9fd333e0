"""The chaos table: one row an attack, the figures it measured, its verdict."""

from __future__ import annotations

from chaos.verdict import Row, mib

HEADER = (
    "attack",
    "scrape p99",
    "RSS before/peak/after",
    "tick gap max",
    "CPU",
    "status",
    "state",
    "floors/maxmem",
    "verdict",
)


def _yes_no(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "NO")


def cells(row: Row) -> tuple[str, ...]:
    f = row.figures
    scrape = "-" if f.scrape_p99 is None else f"{f.scrape_p99 * 1000:.0f} ms"
    if f.scrape_failures:
        scrape += f" ({f.scrape_failures}/{f.scrapes} failed)"
    memory = "-"
    if f.rss_peak is not None:
        memory = f"{mib(f.rss_before)}/{mib(f.rss_peak)}/{mib(f.rss_after)}"
    gap = "-" if f.tick_gap_max is None else f"{f.tick_gap_max:.2f} s"
    cpu = "-" if f.cpu_share is None else f"{f.cpu_share:.0%}"
    verdict = row.verdict + (": " + "; ".join(row.why) if row.why else "")
    return (
        row.attack,
        scrape,
        memory,
        gap,
        cpu,
        _yes_no(f.status_answered),
        _yes_no(f.state_intact),
        _yes_no(f.limits_kept),
        verdict,
    )


def render(rows: list[Row]) -> str:
    """A Markdown table (it reads the same in a terminal, a CI log and an issue)."""
    table = [HEADER, *(cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADER))]
    lines = []
    for index, line in enumerate(table):
        lines.append(
            "| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |"
        )
        if index == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    notes = [f"- {row.attack}: {'; '.join(row.figures.notes)}" for row in rows if row.figures.notes]
    return "\n".join(lines + (["", *notes] if notes else []))
