"""A fingerprint of everything decide() produces, for changes that must not change behaviour
(performance work, refactoring): every domain's decision with its explanation realized, the
tick's notes, budget and actions, and the next controller state, over every shipped bench
scenario and two generated fleets, each driven by the daemon's own tick on the simulated
host (as `balloond bench` and bench/scale.py drive it). Two trees that print the same
digests decided the same.

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

from balloond.bench.contenders import Contender, TicksItself
from balloond.bench.contenders.balloond import Balloond
from balloond.bench.runner import EPOCH, run
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
    """The shipped scenario run as `balloond bench` runs it: the daemon's tick every 2 s."""
    digest = hashlib.sha256()

    def record(contender: Contender | TicksItself) -> None:
        assert isinstance(contender, Balloond) and contender.last is not None
        digest_tick(digest, contender.last, contender.state)

    run(load_scenario(str(path)), "balloond", steps=limit, watch=record)
    return digest.hexdigest()[:16]


def fleet_digest(domains: int, ticks: int) -> str:
    """bench/scale.py's generated fleet, `ticks` daemon ticks from boot."""
    fleet = ScaleFleet(domains, epoch=EPOCH)
    digest = hashlib.sha256()
    try:
        for _ in range(ticks):
            decision = fleet.tick()
            digest_tick(digest, decision, fleet.daemon.controller_state())
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
