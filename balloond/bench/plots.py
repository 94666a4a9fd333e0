"""PNG plots: each guest's need, balloon and target over time, one column per contender
(balloond and the best baseline). matplotlib (the `bench` extra) is imported only here."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from balloond.bench.metrics import Series
from balloond.units import GiB


def plot_scenario(path: Path, scenario: str, runs: Mapping[str, Mapping[str, Series]]) -> None:
    """`runs` maps contender name -> guest name -> series. Writes one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    contenders = list(runs)
    guests = list(next(iter(runs.values())))
    fig, axes = plt.subplots(
        len(guests),
        len(contenders),
        squeeze=False,
        sharex=True,
        figsize=(5.0 * len(contenders), 1.5 * len(guests) + 0.8),
        dpi=72,
    )
    for col, contender in enumerate(contenders):
        for row, guest in enumerate(guests):
            ax = axes[row][col]
            series = runs[contender][guest]
            ax.plot(
                series.t,
                [v / GiB for v in series.need],
                color="black",
                lw=1.0,
                label="need (demand)",
            )
            ax.plot(
                series.t,
                [v / GiB for v in series.current],
                color="tab:blue",
                lw=1.2,
                label="current",
            )
            ax.plot(
                series.t,
                [v / GiB for v in series.target],
                color="tab:orange",
                lw=0.8,
                ls="--",
                label="target",
            )
            ax.set_ylim(bottom=0, top=series.maxmem / GiB * 1.05)
            ax.tick_params(labelsize=7)
            ax.set_ylabel(f"{guest}\nGiB", fontsize=7)
            if row == 0:
                ax.set_title(contender, fontsize=9)
    axes[-1][0].set_xlabel("seconds", fontsize=7)
    axes[0][0].legend(fontsize=6, loc="upper left")
    fig.suptitle(scenario, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
