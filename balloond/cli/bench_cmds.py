"""`balloond bench`: run scenario files against every contender and publish the figures."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from balloond.errors import ConfigError

_HELP = """\
Run each scenario with each contender on the simulated host and print the figures of
issue 7 (docs/bench.md): a Markdown table per scenario and an overall table, or with
--json one JSON record per scenario and contender (one per line).

With --out DIR it also writes DIR/<scenario>.md, DIR/overall.md, DIR/results.json and
(unless --no-plots) DIR/<scenario>.png with balloond and the best baseline."""


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="benchmark balloond against today's balancing laws",
        description=_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "scenarios",
        nargs="*",
        metavar="SCENARIO",
        help="scenario files (YAML, see docs/simulator.md)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON record per scenario and contender"
    )
    parser.add_argument("--out", metavar="DIR", help="also write Markdown, JSON and plots here")
    parser.add_argument(
        "--contenders",
        metavar="A,B",
        help="comma-separated contenders (default: all: static, mom, squeezed,"
        " qmemman, proxmox, selfballoon, senpai, esx, hyperv, oracle, balloond)",
    )
    parser.add_argument(
        "--plots",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write PNG plots (needs matplotlib and --out; default: on with --out)",
    )
    parser.add_argument(
        "--scale",
        action="store_true",
        help="also time decide() and a full simulated tick at 100, 1,000 and"
        " 10,000 domains (about a minute; bench/scale.py does only this)",
    )
    parser.set_defaults(func=_bench)


def _contenders(text: str | None) -> list[str]:
    from balloond.bench.contenders import NAMES

    if not text:
        return list(NAMES)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in NAMES]
    if unknown or not names:
        raise ConfigError(
            f"unknown contender(s) {', '.join(unknown) or repr(text)}; known: {', '.join(NAMES)}",
            key="--contenders",
        )
    return list(dict.fromkeys(names))


def _bench(args: argparse.Namespace) -> int:
    from balloond.bench.publish import publish
    from balloond.bench.runner import run
    from balloond.sim.scenario import load_scenario

    contenders = _contenders(args.contenders)
    plots = bool(args.out) if args.plots is None else args.plots
    if plots and not args.out:
        raise ConfigError("--plots needs --out DIR", key="--plots")
    if not args.scenarios and not args.scale:
        raise ConfigError("name at least one scenario file (or --scale)", key="SCENARIO")
    scenarios = [load_scenario(path) for path in args.scenarios]
    results = []
    for scenario in scenarios:
        print(
            f"bench: {scenario.name} ({len(scenario.guests)} guests, {scenario.duration:g} s)",
            file=sys.stderr,
        )
        runs = {name: run(scenario, name) for name in contenders}
        results.append((scenario, runs))
        if args.json:
            for result in runs.values():
                print(json.dumps(result.figures.to_json()), flush=True)
    if results:
        text = publish(results, Path(args.out) if args.out else None, plots=plots)
        if not args.json:
            print(text)
    if args.scale:
        from balloond.bench.scale import main as scale_main

        scale_argv = ["--out", str(Path(args.out) / "scale.md")] if args.out else []
        scale_main(scale_argv)
    return 0
