"""PNG plots. matplotlib (the `bench` extra) is imported only here.

- One per scenario: a column per contender shown (balloond, the oracle, the best baseline);
  a row per guest with its need, what it is entitled to when that is less (min(need, fair
  share)), its balloon and its target over time; a last row with every guest's shortfall
  (need - balloon), so that who paid is visible at a glance.
- One per run (`summary.png`): reclaimed memory against weighted stall, one point per
  contender (means over the run's scenarios).

Drawn to be read: 110 dpi, no text below 9 pt, the balloon a thick solid line and the
target a thin dashed one in another colour.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from balloond.bench.metrics import Series
from balloond.units import GiB

DPI = 110
FONT = 9  # points: the smallest text on any plot
TITLE = 11


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": FONT, "axes.titlesize": TITLE, "legend.fontsize": FONT})
    return plt


def _entitled_where_short(series: Series) -> list[float]:
    """min(need, fair share) where it is below the need (NaN elsewhere: nothing to draw)."""
    nan = float("nan")
    return [e / GiB if e < n else nan for e, n in zip(series.entitled, series.need, strict=True)]


def _guest_row(ax: Any, series: Series) -> None:
    ax.plot(series.t, [v / GiB for v in series.need], color="black", lw=1.0, label="need")
    if series.entitled:
        ax.plot(
            series.t,
            _entitled_where_short(series),
            color="tab:green",
            lw=1.4,
            ls=":",
            label="fair share (when below need)",
        )
    # The balloon wide and pale underneath, the target thin and dark on top: where they
    # agree both still show.
    ax.plot(
        series.t,
        [v / GiB for v in series.current],
        color="tab:blue",
        lw=3.5,
        alpha=0.45,
        label="balloon (current)",
    )
    ax.plot(
        series.t,
        [v / GiB for v in series.target],
        color="darkred",
        lw=0.9,
        ls="--",
        label="target",
    )
    ax.set_ylim(bottom=0, top=series.maxmem / GiB * 1.05)


def _shortfall_row(ax: Any, guests: Mapping[str, Series]) -> None:
    for name, series in guests.items():
        short = [max(0, n - c) / GiB for n, c in zip(series.need, series.current, strict=True)]
        ax.plot(series.t, short, lw=1.2, label=f"{name} ({series.weight})")
    ax.set_ylim(bottom=0)


def plot_scenario(path: Path, scenario: str, runs: Mapping[str, Mapping[str, Series]]) -> None:
    """`runs` maps contender name -> guest name -> series. Writes one PNG."""
    plt = _pyplot()
    contenders = list(runs)
    guests = list(next(iter(runs.values())))
    rows = len(guests) + 1
    height = 1.7 * rows + 1.0  # inches
    fig, axes = plt.subplots(
        rows,
        len(contenders),
        squeeze=False,
        sharex=True,
        figsize=(5.2 * len(contenders), height),
        dpi=DPI,
    )
    for col, contender in enumerate(contenders):
        for row, guest in enumerate(guests):
            ax = axes[row][col]
            series = runs[contender][guest]
            _guest_row(ax, series)
            if col == 0:
                ax.set_ylabel(f"{guest} ({series.weight})\nGiB")
            if row == 0:
                ax.set_title(contender)
        _shortfall_row(axes[-1][col], runs[contender])
        axes[-1][col].set_xlabel("seconds")
    axes[-1][0].set_ylabel("shortfall\nneed − balloon\nGiB")
    # Legends under the plots, where they hide no line: the guest rows', then the shortfall's.
    handles, labels = axes[0][0].get_legend_handles_labels()
    more, names = axes[-1][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower left", ncol=len(labels), frameon=False)
    fig.legend(more, names, loc="lower right", ncol=min(len(names), 6), frameon=False)
    fig.suptitle(scenario, fontsize=TITLE + 1)
    legend_rows = 1 + (len(names) - 1) // 6
    bottom = (0.15 + 0.25 * legend_rows) / height  # inches for the legends, as a fraction
    fig.tight_layout(rect=(0, bottom, 1, 1 - 0.35 / height))
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def plot_summary(path: Path, points: Sequence[tuple[str, float, float]], scenarios: int) -> None:
    """`points`: (contender, reclaimed ratio, weighted stall ratio), means over the run."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 5.0), dpi=DPI)
    width = max((r for _, r, _ in points), default=0.0) * 100 or 1.0
    height = max((s for _, _, s in points), default=0.0) * 100 or 1.0
    placed: list[tuple[float, float]] = []
    for name, reclaimed, stall in points:
        ours = name == "balloond"
        x, y = reclaimed * 100, stall * 100
        ax.scatter(
            [x],
            [y],
            s=70 if ours else 40,
            color="tab:red" if ours else ("black" if name == "oracle" else "tab:blue"),
            zorder=3,
        )
        # A label next to another point's label goes below its point instead.
        crowded = any(
            abs(x - px) < 0.12 * width and abs(y - py) < 0.05 * height for px, py in placed
        )
        placed.append((x, y))
        ax.annotate(
            name,
            (x, y),
            textcoords="offset points",
            xytext=(6, -14) if crowded else (6, 4),
            fontweight="bold" if ours else "normal",
        )
    ax.set_xlabel("reclaimed memory, % of maxmem (more is better)")
    ax.set_ylabel("weighted stall, % of time (less is better)")
    ax.set_title(f"Reclaimed against weighted stall, means over {scenarios} scenarios")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
