"""The benchmark: contenders on one short scenario, metric definitions, goal checks, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from balloond.bench.contenders import NAMES
from balloond.bench.metrics import Figures, Series, percentile, reaction_times, rises
from balloond.bench.runner import run
from balloond.bench.tables import checks, overall_markdown, scenario_markdown
from balloond.cli.daemon import main
from balloond.sim.host import SimHost
from balloond.sim.scenario import parse_scenario
from balloond.units import GiB, MiB

SHORT = """\
name: short
host: {memory: 8GiB, reserve: 512MiB}
duration: 120s
step: 1s
guests:
  - name: spiky
    maxmem: 4GiB
    initial: 2GiB
    demand:
      anon: [[0, 600MiB], [40, 600MiB], [45, 2GiB], [90, 2GiB], [95, 600MiB]]
      file: 100MiB
  - {name: idle, maxmem: 2GiB, agent: false, demand: {anon: 200MiB, file: 50MiB}}
"""
KEYS = {
    "scenario",
    "contender",
    "reclaimed_ratio",
    "stall_mean_ratio",
    "stall_worst_ratio",
    "oom_events",
    "swap_in_bytes",
    "reaction_p50_s",
    "reaction_p95_s",
    "ops_per_guest_hour",
    "reserve_violations",
    "weighted_stall_ratio",
    "unfair_shortfall_ratio",
    "oom_below_fair_share",
    "contention_s",
    "guests",
}
GUEST_KEYS = {
    "name",
    "weight",
    "stall_mean_ratio",
    "oom_events",
    "oom_below_fair_share",
    "shortfall_mean_bytes",
    "unfair_shortfall_mean_bytes",
}


@pytest.fixture(scope="module")
def results() -> dict[str, Figures]:
    scenario = parse_scenario(SHORT)
    return {name: run(scenario, name).figures for name in NAMES}


def test_every_contender_runs_and_reports_every_key(results: dict[str, Figures]) -> None:
    for name, figures in results.items():
        record = figures.to_json()
        assert set(record) == KEYS
        assert [set(g) for g in record["guests"]] == [GUEST_KEYS, GUEST_KEYS]
        assert [g["name"] for g in record["guests"]] == ["spiky", "idle"]
        assert record["contender"] == name and record["scenario"] == "short"
        assert 0.0 <= figures.reclaimed_ratio < 1.0
        assert 0.0 <= figures.stall_mean_ratio <= figures.stall_worst_ratio <= 1.0


def test_oracle_never_stalls_and_reclaims_most(results: dict[str, Figures]) -> None:
    oracle = results["oracle"]
    assert oracle.stall_worst_ratio == 0.0 and oracle.oom_events == 0
    assert oracle.reaction_p95_s == 0.0
    assert oracle.reclaimed_ratio >= max(f.reclaimed_ratio for f in results.values()) - 0.01


def test_static_grows_everyone_to_maxmem(results: dict[str, Figures]) -> None:
    static = results["static"]
    assert static.reclaimed_ratio < 0.05
    assert static.stall_worst_ratio == 0.0


def test_balloond_keeps_the_reserve(results: dict[str, Figures]) -> None:
    assert results["balloond"].reserve_violations == 0
    assert results["balloond"].oom_events == 0
    assert results["balloond"].reclaimed_ratio > results["static"].reclaimed_ratio


def test_runs_are_deterministic() -> None:
    scenario = parse_scenario(SHORT)
    assert run(scenario, "mom").figures == run(scenario, "mom").figures


def series_of(need: list[int], current: list[int]) -> Series:
    return Series(
        t=[float(i) for i in range(len(need))],
        need=need,
        current=current,
        target=current,
        stall=[0.0] * len(need),
        maxmem=8 * GiB,
    )


def test_rises_and_reaction_times() -> None:
    sim = SimHost(parse_scenario(SHORT))
    flat, high = 1 * GiB, 2 * GiB
    need = [flat] * 5 + [flat + i * 256 * MiB for i in range(1, 5)] + [high] * 10
    late = [high] * 5 + [flat] * 9 + [high] * 5  # covers the rise 5 s after it ends
    assert rises(series_of(need, late), 1.0) == [(4, 8)]
    assert reaction_times(series_of(need, late), sim) == [10.0]
    assert reaction_times(series_of(need, [high] * len(need)), sim) == [0.0]
    never = reaction_times(series_of(need, [flat] * len(need)), sim)
    assert never == [float(len(need) - 4)]  # counted until the end
    small = [flat, flat + 32 * MiB, flat + 48 * MiB]
    assert rises(series_of(small, small), 1.0) == []  # below RISE_MIN


def test_percentile() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([0.0, 10.0], 0.95) == pytest.approx(9.5)


def fig(
    contender: str, reclaimed: float, stall: float, oom: int = 0, unfair: float = 0.0
) -> Figures:
    return Figures(
        scenario="steady-x",
        contender=contender,
        reclaimed_ratio=reclaimed,
        stall_mean_ratio=stall,
        stall_worst_ratio=stall,
        oom_events=oom,
        swap_in_bytes=0,
        reaction_p50_s=None,
        reaction_p95_s=None,
        ops_per_guest_hour=0.0,
        reserve_violations=0,
        weighted_stall_ratio=stall,
        unfair_shortfall_ratio=unfair,
    )


def test_goal_checks() -> None:
    rows = [
        fig("mom", 0.30, 0.001),
        fig("qmemman", 0.50, 0.0, oom=2),
        fig("oracle", 0.60, 0.0),
        fig("balloond", 0.55, 0.0005),
    ]
    found = {c.goal: c.met for c in checks(rows)}
    assert found == {
        "no OOM, no reserve violation": True,
        "stall ≤ lowest-stall baseline that reclaims": True,  # qmemman OOMs: not a standard
        "unfair shortfall ≤ 0.2 %": True,
        "no OOM below the fair share": True,
        "reclaimed within 10 % of the oracle": True,
    }
    worse = [*rows[:3], fig("balloond", 0.20, 0.01, unfair=0.0021)]
    assert {c.goal: c.met for c in checks(worse)} == {
        "no OOM, no reserve violation": True,
        "stall ≤ lowest-stall baseline that reclaims": False,
        "reclaimed ≥ best baseline at equal or lower stall": False,
        "unfair shortfall ≤ 0.2 %": False,
        "no OOM below the fair share": True,
        "reclaimed within 10 % of the oracle": False,
    }
    assert "**missed**" in scenario_markdown(worse)
    assert "| **balloond** | 20.0 %" in overall_markdown(worse)


def test_cli_json_and_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "short.yaml"
    path.write_text(SHORT)
    out = tmp_path / "results"
    code = main(
        [
            "bench",
            str(path),
            "--json",
            "--contenders",
            "static,balloond",
            "--out",
            str(out),
            "--no-plots",
        ]
    )
    assert code == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["contender"] for r in records] == ["static", "balloond"]
    assert all(set(r) == KEYS for r in records)
    text = (out / "short.md").read_text()
    assert text.startswith("### short")
    assert "| guest (weight) | balloond |" in text and "| spiky (1000) |" in text
    assert "| **balloond** |" in (out / "overall.md").read_text()
    assert len(json.loads((out / "results.json").read_text())) == 2


@pytest.mark.parametrize(
    "argv",
    [["--contenders", "static,hal9000"], ["--plots"], ["--contenders", ","], ["--json"]],
)
def test_cli_bad_options_exit_2(tmp_path: Path, argv: list[str]) -> None:
    path = tmp_path / "short.yaml"
    path.write_text(SHORT)
    scenario = [] if argv == ["--json"] else [str(path)]  # no scenario at all
    assert main(["bench", *scenario, *argv]) == 2


def test_cli_bad_scenario_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(SHORT.replace("maxmem: 4GiB", "maxmem: lots"))
    assert main(["bench", str(path)]) == 2
    assert "bad.yaml:7" in capsys.readouterr().err


def test_cli_writes_plots(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "short.yaml"
    path.write_text(SHORT)
    out = tmp_path / "results"
    assert main(["bench", str(path), "--contenders", "mom,balloond", "--out", str(out)]) == 0
    png = out / "short.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![short](short.png)" in (out / "short.md").read_text()
    summary = out / "summary.png"
    assert summary.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "(summary.png)" in (out / "overall.md").read_text()
    # Readable: at least 110 dpi (a pHYs chunk of >= 4331 pixels per metre).
    for picture in (png, summary):
        data = picture.read_bytes()
        at = data.index(b"pHYs") + 4
        per_metre = int.from_bytes(data[at : at + 4], "big")
        assert per_metre >= 4330, (picture.name, per_metre)
