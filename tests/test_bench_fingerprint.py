"""The behaviour fingerprint (balloond.bench.fingerprint): deterministic, and it sees a change."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import sys

from balloond.bench.fingerprint import digest_tick
from balloond.units import GiB
from tests.support.decide import dom, report, run


def _quick(seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    out = subprocess.run(
        [sys.executable, "-m", "balloond.bench.fingerprint", "--quick"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return out.stdout


def test_the_same_tree_prints_the_same_digests_whatever_the_hash_seed() -> None:
    first = _quick("1")
    assert first == _quick("2")
    lines = first.splitlines()
    assert [line.split("  ", 1)[1] for line in lines] == [
        "scenario host-contention",
        "scenario lying-guest",
        "fleet 100 x 10",
    ]
    assert all(len(line.split()[0]) == 16 for line in lines)


def _digest(*decided: tuple[object, object]) -> str:
    h = hashlib.sha256()
    for decision, state in decided:
        digest_tick(h, decision, state)  # type: ignore[arg-type]
    return h.hexdigest()


def test_any_change_in_a_decision_or_the_next_state_changes_the_digest() -> None:
    domains = (dom("web", 2 * GiB, rep=report(GiB)), dom("idle", 4 * GiB, used=GiB))
    decision, state = run(*domains)
    base = _digest((decision, state))
    assert base == _digest(run(*domains))
    first = decision.domains[0]
    for change in (
        {"target": first.target + 1},
        {"why": first.explanation + "!"},
        {"act": not first.act},
    ):
        changed = dataclasses.replace(
            decision, domains=(first._replace(**change), *decision.domains[1:])
        )  # type: ignore[arg-type]
        assert _digest((changed, state)) != base, change
    assert _digest((dataclasses.replace(decision, budget=decision.budget + 1), state)) != base
    assert _digest((decision, state.forget_target(first.uuid))) != base
