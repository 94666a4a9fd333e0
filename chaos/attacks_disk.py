"""Faults on disk: the state file and the policy folder.

- a FIFO at state.json when the daemon starts (it must start, and set the FIFO aside);
- state writes that fail while it runs (counted in `status` and the metrics, not only logged);
- `kill -9` during ticks, five times, with temp files of a killed write left behind (the state
  must parse after each, and the leftovers must be cleaned);
- a state file with a hold at 2^60 bytes and one damaged hold among good ones;
- a policy file turned into a dangling symlink, a symlink loop; the policy folder vanishing
  and emptying for a tick: the last good policies stay, each failure is counted.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from chaos.attacks_control import budget_figures
from chaos.lab import Daemon, metric_values
from chaos.session import Session
from chaos.verdict import Row, judge
from chaos.watch import Figures, Watch

WEB_UUID = "f2017932-0099-5ae3-b12e-83d7ce0e89ab"  # sim://default's `web` (policy web-tier)
IDLE_UUID = "ab87a463-9988-51ba-ab27-d636c72c21c3"  # its `idle` (policy default)
KILLS = 5


def _state(daemon: Daemon) -> Path:
    return daemon.state_dir / "state.json"


def _parses(path: Path) -> bool:
    try:
        return isinstance(json.loads(path.read_text()), dict)
    except FileNotFoundError:
        return True  # no state yet is a valid state
    except (OSError, ValueError):
        return False


def fifo_state(session: Session) -> Row:
    figures = Figures()
    daemon = session.fresh("fifo")
    daemon.state_dir.mkdir(mode=0o700)
    os.mkfifo(_state(daemon), 0o600)
    daemon.start(wait=False)
    deadline = time.monotonic() + 10
    answered = False
    while time.monotonic() < deadline and daemon.running() and not answered:
        answered = daemon.answers(timeout=1.0)
        time.sleep(0.2)
    figures.status_answered = answered
    daemon.stop()
    leftover = _state(daemon)
    fifo_left = leftover.exists() and not leftover.is_file()
    aside = sorted(p.name for p in daemon.state_dir.iterdir() if p.name != "state.json")
    figures.state_intact = not fifo_left
    figures.notes.append(f"state folder: {aside or 'nothing set aside'}")
    return judge(Row("state: a FIFO at state.json at start", figures))


def failed_writes(session: Session) -> Row:
    figures = Figures()
    daemon = session.fresh("writes").start()
    away = daemon.state_dir.with_name("state.away")
    with Watch(daemon, figures, scrape=False):
        daemon.state_dir.rename(away)
        daemon.state_dir.write_text("not a folder\n")  # every write now fails
        time.sleep(6 * daemon.interval)
        status = daemon.call("status").get("result", {})
        exposition = daemon.scrape()
        daemon.state_dir.unlink()
        away.rename(daemon.state_dir)
        time.sleep(3 * daemon.interval)
    counted = status.get("state_write_failures")
    series = metric_values(exposition, "balloond_state_write_failures_total")
    figures.notes.append(f"status state_write_failures={counted}, metric={series or 'absent'}")
    figures.status_answered = daemon.answers()
    figures.state_intact = _parses(_state(daemon))
    row = Row("state: writes fail while running", figures)
    row.check(isinstance(counted, int) and counted > 0, "failed writes not in status")
    row.check(bool(series) and series[0] > 0, "failed writes not in the metrics")
    daemon.stop()
    return judge(row)


def kill_during_ticks(session: Session) -> Row:
    figures = Figures()
    daemon = session.fresh("kill9")
    daemon.state_dir.mkdir(mode=0o700)
    leftovers = [daemon.state_dir / f".state.json.{tag}" for tag in ("a1b2c3", "zz9_x")]
    for path in leftovers:
        path.write_text('{"half": ')
    intact = True
    rng = random.Random(16)
    for _ in range(KILLS):
        daemon.start()
        time.sleep(rng.uniform(0.3, 1.2))
        daemon.kill9()
        intact &= _parses(_state(daemon))
    daemon.start()
    figures.status_answered = daemon.answers()
    time.sleep(2 * daemon.interval)
    daemon.stop()
    intact &= _parses(_state(daemon))
    left = [p.name for p in daemon.state_dir.iterdir() if p.name.startswith(".state.json.")]
    figures.state_intact = intact and not left
    figures.notes.append(f"{KILLS} kills; temp files left: {left or 'none'}")
    return judge(Row(f"state: kill -9 during ticks x{KILLS}, temp files left", figures))


def _write_state(daemon: Daemon, holds: dict[str, object]) -> None:
    daemon.state_dir.mkdir(mode=0o700, exist_ok=True)
    document = {"version": 1, "controller": {}, "holds": holds}
    _state(daemon).write_text(json.dumps(document))


def _hold(uuid: str, target: object) -> dict[str, object]:
    return {"domain": uuid, "owner": "chaos", "reason": "planted", "until": None, "target": target}


def state_hold_beyond_maxmem(session: Session) -> Row:
    figures = Figures()
    daemon = session.fresh("bighold")
    _write_state(daemon, {WEB_UUID: _hold(WEB_UUID, 1 << 60)})
    daemon.start()
    with Watch(daemon, figures, scrape=False):
        budget_figures(daemon, figures)
    figures.status_answered = daemon.answers()
    daemon.stop()
    return judge(Row("state: a hold at 2^60 bytes in state.json", figures))


def state_one_bad_hold(session: Session) -> Row:
    figures = Figures()
    daemon = session.fresh("badhold")
    _write_state(daemon, {IDLE_UUID: _hold(IDLE_UUID, 1 << 30), WEB_UUID: _hold(WEB_UUID, "lots")})
    daemon.start()
    holds = daemon.call("holds").get("result", {}).get("holds", [])
    kept = any(h.get("domain") in (IDLE_UUID, "idle") for h in holds)
    figures.status_answered = daemon.answers()
    daemon.stop()
    aside = sorted(p.name for p in daemon.state_dir.iterdir() if p.name.endswith(".bad"))
    figures.state_intact = kept
    figures.notes.append(f"holds kept: {len(holds)}; set aside: {aside or 'nothing'}")
    return judge(Row("state: one damaged hold among good ones", figures))


def _policy_of(daemon: Daemon, name: str) -> str | None:
    row = next((r for r in daemon.rows() if r.get("name") == name), {})
    policy = row.get("policy")
    return policy if isinstance(policy, str) else None


def _errors(daemon: Daemon) -> int:
    value = daemon.call("status").get("result", {}).get("policy_errors")
    return value if isinstance(value, int) else 0


def policy_fault(
    session: Session, what: str, break_it: Callable[[Path], Callable[[], None]], seconds: float
) -> Row:
    """Break the policy folder with `break_it` (which returns how to mend it) for `seconds`,
    watching `web`'s policy all along: it must stay on its own, and the failure be counted."""
    daemon = session.daemon("policies")
    figures = Figures()
    before = _errors(daemon)
    seen: set[str | None] = set()
    with Watch(daemon, figures, scrape=False):
        mend = break_it(daemon.policy_dir)
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            seen.add(_policy_of(daemon, "web"))
            time.sleep(0.05)
        mend()
        time.sleep(3 * daemon.interval)
        seen.add(_policy_of(daemon, "web"))
    errors = _errors(daemon) - before
    figures.state_intact = seen == {"web-tier"}
    figures.status_answered = daemon.answers()
    figures.notes.append(
        f"web's policies seen: {sorted(map(str, seen))}; failures counted: {errors}"
    )
    row = Row(f"policy: {what}", figures)
    row.check(errors > 0, "the failure was not counted")
    return judge(row)


def _swap_for_link(target: str) -> Callable[[Path], Callable[[], None]]:
    def break_it(folder: Path) -> Callable[[], None]:
        original = folder / "web-tier.yaml"
        kept = folder.with_name("web-tier.yaml.kept")
        original.rename(kept)
        os.symlink(target if target != "self" else str(original), original)

        def mend() -> None:
            original.unlink()
            kept.rename(original)

        return mend

    return break_it


def _vanish(folder: Path) -> Callable[[], None]:
    away = folder.with_name("policies.away")
    folder.rename(away)

    def mend() -> None:
        away.rename(folder)

    return mend


def _empty_for_a_tick(folder: Path) -> Callable[[], None]:
    away = folder.with_name("policies.files")
    away.mkdir()
    for path in folder.iterdir():
        path.rename(away / path.name)

    def mend() -> None:
        for path in away.iterdir():
            path.rename(folder / path.name)
        shutil.rmtree(away)

    return mend


def attacks(session: Session) -> list[tuple[str, Callable[[], Row]]]:
    return [
        ("state: FIFO at start", lambda: fifo_state(session)),
        ("state: writes fail", lambda: failed_writes(session)),
        ("state: kill -9", lambda: kill_during_ticks(session)),
        ("state: hold at 2^60", lambda: state_hold_beyond_maxmem(session)),
        ("state: one bad hold", lambda: state_one_bad_hold(session)),
        (
            "policy: dangling symlink",
            lambda: policy_fault(
                session, "a file becomes a dangling symlink", _swap_for_link("/nonexistent"), 1.5
            ),
        ),
        (
            "policy: symlink loop",
            lambda: policy_fault(
                session, "a file becomes a symlink loop", _swap_for_link("self"), 1.5
            ),
        ),
        (
            "policy: folder vanishes",
            lambda: policy_fault(session, "the folder vanishes for two ticks", _vanish, 1.0),
        ),
        (
            "policy: folder empties",
            lambda: policy_fault(
                session, "the folder empties for one tick", _empty_for_a_tick, 0.6
            ),
        ),
    ]
