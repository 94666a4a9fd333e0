"""A fingerprint of everything decide() produces, for changes that must not change behaviour
(performance work, refactoring): every domain's decision with its explanation realized, the
tick's notes, budget and actions, and the next controller state, over every shipped bench
scenario and two generated fleets. Two trees that print the same digests decided the same.

    python -m balloond.bench.fingerprint                # all of it (about 10 s)
    python -m balloond.bench.fingerprint --quick        # two scenarios, 100 domains x 10 ticks

Compare the output of the tree before and after a change (a `git worktree` of the old commit,
run with PYTHONPATH pointing at it). Deterministic: manual clocks, fixed epochs and seeds, no
dependence on PYTHONHASHSEED (tests/test_bench_fingerprint.py holds it to that).
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Sequence
from pathlib import Path

from balloond.backend.simulated import SimulatedHost
from balloond.bench.contenders import make
from balloond.bench.contenders.balloond import Balloond
from balloond.bench.runner import EPOCH, act, observe
from balloond.bench.scale import ScaleFleet
from balloond.core.state import ControllerState
from balloond.model import Decision
from balloond.sim.scenario import load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "bench" / "scenarios"


def digest_tick(digest: hashlib._Hash, decision: Decision, state: ControllerState) -> None:
    for d in decision.domains:
        digest.update(
            repr(
                (
                    d.name,
                    d.uuid,
                    d.policy,
                    d.reason.value,
                    d.current,
                    d.target,
                    d.floor,
                    d.ceiling,
                    d.explanation,
                    d.demand,
                    d.pressure,
                    d.act,
                )
            ).encode()
        )
    digest.update(
        repr(
            (
                decision.taken_at,
                decision.host_free,
                decision.reserve,
                decision.budget,
                decision.notes,
                [a.uuid for a in decision.actions],
            )
        ).encode()
    )
    saved = state.to_dict()
    digest.update(
        repr(
            sorted(
                (key, sorted(value.items()) if isinstance(value, dict) else value)
                for key, value in saved.items()
            )
        ).encode()
    )


def scenario_digest(path: Path, limit: int | None = None) -> str:
    """The shipped scenario run as `balloond bench` runs it (every 2 s, shrinks first)."""
    scenario = load_scenario(str(path))
    host = SimulatedHost.from_scenario(scenario, clock="manual", epoch=EPOCH)
    digest = hashlib.sha256()
    try:
        contender = make("balloond", scenario, host.sim)
        assert isinstance(contender, Balloond)
        steps = round(scenario.duration / scenario.step)
        if limit is not None:
            steps = min(steps, limit)
        next_decision = 0.0
        for _ in range(steps):
            if host.sim.t >= next_decision - 1e-9:
                act(host, contender, observe(host, contender))
                assert contender.last is not None
                digest_tick(digest, contender.last, contender.state)
                next_decision += contender.interval
            host.advance(scenario.step)
    finally:
        host.close()
    return digest.hexdigest()[:16]


def fleet_digest(domains: int, ticks: int) -> str:
    """bench/scale.py's generated fleet, `ticks` daemon ticks from boot."""
    fleet = ScaleFleet(domains, epoch=EPOCH)
    digest = hashlib.sha256()
    try:
        for _ in range(ticks):
            decision = fleet.decide(fleet.collect())
            digest_tick(digest, decision, fleet.state)
            fleet.apply(decision)
            fleet.advance()
    finally:
        fleet.close()
    return digest.hexdigest()[:16]


def fingerprints(quick: bool = False) -> dict[str, str]:
    paths = sorted(SCENARIOS.glob("*.yaml"))
    if quick:
        paths = [p for p in paths if p.stem in ("lying-guest", "host-contention")]
    out = {f"scenario {p.stem}": scenario_digest(p, 200 if quick else None) for p in paths}
    sizes = ((100, 10),) if quick else ((100, 60), (1000, 60))
    for domains, ticks in sizes:
        out[f"fleet {domains} x {ticks}"] = fleet_digest(domains, ticks)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a small subset (for tests)")
    args = parser.parse_args(argv)
    for name, value in fingerprints(args.quick).items():
        print(f"{value}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
