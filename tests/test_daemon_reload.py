"""Policy reload: a folder change or SIGHUP loads the whole set; a broken file keeps the last
good set running, with the error logged as file:line and counted."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import pytest

from balloond.daemon.notify import Notifier
from balloond.daemon.reload import PolicyWatcher, fingerprint
from balloond.daemon.scheduler import Runner
from balloond.telemetry import Telemetry
from balloond.units import GiB
from tests.support.daemon import Recording, make_daemon, run_ticks, sim_host

QUIET = Notifier("")  # never the NOTIFY_SOCKET of whatever runs the tests

GOOD = """policies:
  - name: web
    match: {names: ["web"]}
    floor: 1GiB
"""
BETTER = """policies:
  - name: web2
    match: {names: ["web"]}
    floor: 1536MiB
"""
BROKEN = """policies:
  - name: web
    match: {names: ["web"]}
    floor: 5GiB
    ceiling: 1GiB
    flooor: 2GiB
"""


def _write(path: Path, text: str) -> None:
    path.write_text(text)
    # Make sure the change is visible even on file systems with coarse mtimes.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def _names(watcher: PolicyWatcher) -> list[str]:
    return [p.name for p in watcher.current.policies]


def test_a_change_in_the_folder_is_picked_up_by_the_next_tick(tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(GOOD)
    host = sim_host()
    daemon = make_daemon(lambda: Recording(host), clock=host.now, policy_dir=tmp_path)
    run_ticks(daemon, host, 1)
    assert _names(daemon.policies) == ["web"]
    _write(tmp_path / "web.yaml", BETTER)
    run_ticks(daemon, host, 1)
    assert _names(daemon.policies) == ["web2"]
    decision = daemon.last_decision()
    assert decision is not None
    assert next(d for d in decision.domains if d.name == "web").policy == "web2"
    assert daemon.telemetry().policy_reloads == 2  # the initial load and this one


def test_a_broken_file_keeps_the_last_good_set(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "web.yaml").write_text(GOOD)
    host = sim_host()
    daemon = make_daemon(lambda: Recording(host), clock=host.now, policy_dir=tmp_path)
    good = daemon.policies.current
    run_ticks(daemon, host, 1)
    _write(tmp_path / "web.yaml", BROKEN)
    with caplog.at_level(logging.ERROR):
        run_ticks(daemon, host, 3)
    assert daemon.policies.current is good, "nothing half-applied: the same set object"
    telemetry = daemon.telemetry()
    assert telemetry.policy_errors == 1, "one broken version is counted once, not every tick"
    assert telemetry.last_policy_error is not None
    assert f"{tmp_path / 'web.yaml'}:" in telemetry.last_policy_error
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("web.yaml:6: flooor" in line for line in errors), errors
    assert daemon.telemetry().tick_failures == 0, "the daemon keeps balancing"

    _write(tmp_path / "web.yaml", BETTER)
    run_ticks(daemon, host, 1)
    assert _names(daemon.policies) == ["web2"]
    assert daemon.telemetry().last_policy_error is None


def test_a_new_broken_file_beside_good_ones_rejects_the_whole_set(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    watcher = PolicyWatcher(tmp_path, Telemetry())
    good = watcher.load_initial()
    (tmp_path / "b.yaml").write_text("policies: [1, 2")
    assert watcher.check() is False
    assert watcher.current is good


def test_reload_request_reloads_even_when_nothing_seems_changed(tmp_path: Path) -> None:
    path = tmp_path / "web.yaml"
    path.write_text(GOOD)
    watcher = PolicyWatcher(tmp_path, Telemetry())
    watcher.load_initial()
    stat = path.stat()
    # Same size, same mtime: invisible to the fingerprint; only SIGHUP finds it.
    path.write_text(GOOD.replace("1GiB", "2GiB"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert watcher.check() is False
    watcher.request_reload()
    assert watcher.check() is True
    assert watcher.current.policies[0].floor.size == 2 * GiB


def test_sighup_reloads_through_the_runner(tmp_path: Path) -> None:
    path = tmp_path / "web.yaml"
    path.write_text(GOOD)
    host = sim_host()
    daemon = make_daemon(lambda: Recording(host), clock=host.now, policy_dir=tmp_path)
    stat = path.stat()
    path.write_text(BETTER.replace("web2", "webx"))  # same size as BETTER, differs from GOOD
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    runner = Runner(daemon, notifier=QUIET)  # not started: only its signal handlers
    saved = {s: signal.getsignal(s) for s in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)}
    try:
        runner.install_signal_handlers()
        os.kill(os.getpid(), signal.SIGHUP)
        daemon.tick(host.now())
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    assert _names(daemon.policies) == ["webx"]


def test_sigterm_stops_the_runner_wait() -> None:
    host = sim_host()
    daemon = make_daemon(lambda: Recording(host), clock=host.now)
    runner = Runner(daemon, notifier=QUIET)
    saved = {s: signal.getsignal(s) for s in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)}
    try:
        runner.install_signal_handlers()
        os.kill(os.getpid(), signal.SIGTERM)
        runner.wait(30)  # returns at once because the handler stopped it
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    assert runner._stop.is_set()


def test_a_missing_optional_folder_runs_the_default_until_it_appears(tmp_path: Path) -> None:
    folder = tmp_path / "later"
    watcher = PolicyWatcher(folder, Telemetry())
    watcher.load_initial(required=False)
    assert watcher.current.policies == ()
    assert watcher.check() is False
    folder.mkdir()
    (folder / "web.yaml").write_text(GOOD)
    assert watcher.check() is True
    assert _names(watcher) == ["web"]


def test_a_missing_required_folder_is_an_error(tmp_path: Path) -> None:
    from balloond.errors import ConfigError

    with pytest.raises(ConfigError, match="does not exist"):
        PolicyWatcher(tmp_path / "nope", Telemetry()).load_initial()


def test_fingerprint_ignores_hidden_and_foreign_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    before = fingerprint(tmp_path)
    (tmp_path / ".a.yaml.swp").write_text("x")
    (tmp_path / "notes.txt").write_text("x")
    assert fingerprint(tmp_path) == before
    (tmp_path / "b.yml").write_text(GOOD)
    assert fingerprint(tmp_path) != before


def test_a_loader_bug_keeps_the_last_good_set(tmp_path: Path) -> None:
    from balloond.policy.model import PolicySet

    calls = {"n": 0}

    def loader(folder: Path) -> PolicySet:
        calls["n"] += 1
        if calls["n"] > 1:
            raise RecursionError("a bug in the loader")
        return PolicySet()

    (tmp_path / "a.yaml").write_text(GOOD)
    telemetry = Telemetry()
    watcher = PolicyWatcher(tmp_path, telemetry, loader=loader)
    good = watcher.load_initial()
    watcher.request_reload()
    assert watcher.check() is False
    assert watcher.current is good
    assert telemetry.policy_errors == 1
    assert "internal error: RecursionError" in (telemetry.last_policy_error or "")


def _broken_entry(path: Path, kind: str) -> None:
    path.unlink()
    if kind == "dangling symlink":
        path.symlink_to("/nonexistent/web.yaml")
    elif kind == "symlink loop":
        path.symlink_to(path.name)
    else:
        os.mkfifo(path)


@pytest.mark.parametrize("kind", ["dangling symlink", "symlink loop", "fifo"])
def test_an_unreadable_entry_is_a_broken_file_not_a_removed_one(
    tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "web.yaml").write_text(GOOD)
    host = sim_host()
    daemon = make_daemon(lambda: Recording(host), clock=host.now, policy_dir=tmp_path)
    good = daemon.policies.current
    run_ticks(daemon, host, 1)
    _broken_entry(tmp_path / "web.yaml", kind)
    with caplog.at_level(logging.ERROR):
        run_ticks(daemon, host, 2)
    assert daemon.policies.current is good, "web did not fall to the default policy"
    decision = daemon.last_decision()
    assert decision is not None
    assert next(d for d in decision.domains if d.name == "web").policy == "web"
    assert daemon.telemetry().policy_errors == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(f"{tmp_path / 'web.yaml'}: " in line for line in errors), errors
    if kind == "dangling symlink":
        assert any("a symlink to '/nonexistent/web.yaml'" in line for line in errors), errors


def test_a_folder_that_disappears_keeps_the_last_good_set_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "web.yaml").write_text(GOOD)
    watcher = PolicyWatcher(folder, Telemetry())
    good = watcher.load_initial()
    away = folder.rename(tmp_path / "away")
    with caplog.at_level(logging.ERROR):
        assert watcher.check() is False
        assert watcher.check() is False
    assert watcher.current is good
    telemetry = watcher._telemetry
    assert telemetry.policy_errors == 1, "logged and counted once, not every tick"
    assert "the policy folder is gone (it had 1 file)" in (telemetry.last_policy_error or "")
    assert [r for r in caplog.records if "folder is gone" in r.getMessage()]
    away.rename(folder)
    assert watcher.check() is True
    assert telemetry.last_policy_error is None


def test_a_folder_emptied_for_a_tick_keeps_the_last_good_set(tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(GOOD)
    host = sim_host()
    daemon = make_daemon(lambda: Recording(host), clock=host.now, policy_dir=tmp_path)
    good = daemon.policies.current
    run_ticks(daemon, host, 1)
    moved = (tmp_path / "web.yaml").rename(tmp_path / "web.yaml.deploying")
    run_ticks(daemon, host, 1)  # the deploy tool's moment between removing and writing
    assert daemon.policies.current is good
    assert daemon.telemetry().policy_errors == 1
    assert "has no policy files" in (daemon.telemetry().last_policy_error or "")
    moved.rename(tmp_path / "web.yaml")
    _write(tmp_path / "web.yaml", GOOD)
    run_ticks(daemon, host, 1)
    assert _names(daemon.policies) == ["web"] and daemon.telemetry().last_policy_error is None


def test_the_default_alone_is_one_file_of_no_policies_away(tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(GOOD)
    watcher = PolicyWatcher(tmp_path, Telemetry())
    watcher.load_initial()
    (tmp_path / "web.yaml").unlink()
    (tmp_path / "none.yaml").write_text("policies: []\n")
    assert watcher.check() is True
    assert watcher.current.policies == ()
