"""Write a benchmark's results: Markdown per scenario and overall, JSON, PNG plots (one per
scenario, and `summary.png`, reclaimed against weighted stall per contender)."""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

from balloond.bench.runner import Run
from balloond.bench.tables import best_baseline, overall_markdown, scenario_markdown
from balloond.sim.scenario import Scenario

Results = Sequence[tuple[Scenario, Mapping[str, Run]]]


def publish(results: Results, out: Path | None, *, plots: bool) -> str:
    """Return the whole report as Markdown; with `out`, also write its files there."""
    sections = []
    for scenario, runs in results:
        rows = [r.figures for r in runs.values()]
        text = scenario_markdown(rows, scenario.description)
        if out is not None and plots:
            picture = _plot(out, scenario, runs)
            if picture:
                text += f"\n![{scenario.name}]({picture})\n"
        sections.append(text)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / f"{scenario.name}.md").write_text(text + "\n", encoding="utf-8")
    all_rows = [r.figures for _, runs in results for r in runs.values()]
    overall = "## Overall\n\n" + overall_markdown(all_rows)
    if out is not None and plots and all_rows:
        _summary(out, results)
        overall += "\n![reclaimed against weighted stall](summary.png)\n"
    if out is not None:
        (out / "overall.md").write_text(overall + "\n", encoding="utf-8")
        records = [f.to_json() for f in all_rows]
        (out / "results.json").write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
    return "\n".join([*sections, overall])


def _plot(out: Path, scenario: Scenario, runs: Mapping[str, Run]) -> str | None:
    from balloond.bench.plots import plot_scenario

    chosen = [name for name in ("balloond", "oracle") if name in runs]
    best = best_baseline([r.figures for r in runs.values()])
    if best is not None:
        chosen.append(best.contender)
    chosen = list(dict.fromkeys(chosen))
    if not chosen:
        return None
    out.mkdir(parents=True, exist_ok=True)
    name = f"{scenario.name}.png"
    plot_scenario(out / name, scenario.name, {c: runs[c].series for c in chosen})
    return name


def _summary(out: Path, results: Results) -> None:
    from balloond.bench.plots import plot_summary

    names = list(dict.fromkeys(name for _, runs in results for name in runs))
    points = []
    for name in names:
        rows = [runs[name].figures for _, runs in results if name in runs]
        points.append(
            (
                name,
                statistics.fmean(f.reclaimed_ratio for f in rows),
                statistics.fmean(f.weighted_stall_ratio for f in rows),
            )
        )
    out.mkdir(parents=True, exist_ok=True)
    plot_summary(out / "summary.png", points, len(results))
