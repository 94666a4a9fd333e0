"""Logging for journald: priorities when stdout is the journal stream, plain lines otherwise,
a log level in the config and on the command line, and a settled host that logs little."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from balloond import logs
from balloond.backend.simulated import open_simulated
from balloond.config import ConfigLoadErrors, parse_config_text
from balloond.daemon.decision_log import DecisionLog
from balloond.model import DomainDecision, Reason
from balloond.units import MiB
from tests.support.daemon import make_daemon, run_ticks

BALLOOND = Path(sys.executable).with_name("balloond")
REPO = Path(__file__).resolve().parent.parent


def _record(level: int, text: str, exc: bool = False) -> logging.LogRecord:
    info = None
    if exc:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            info = sys.exc_info()
    return logging.LogRecord("balloond", level, __file__, 1, text, None, info)


def test_the_journal_is_recognised_by_its_stream_not_by_the_variable(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with out.open("w") as stream, (tmp_path / "other").open("w") as other:
        info = os.fstat(stream.fileno())
        env = {"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}
        assert logs.to_journal(stream, env)
        assert not logs.to_journal(other, env)  # inherited by a redirected child
        assert not logs.to_journal(stream, {})
        assert not logs.to_journal(stream, {"JOURNAL_STREAM": "garbage"})


def test_journal_lines_carry_their_syslog_priority() -> None:
    formatter = logs.JournalFormatter()
    assert formatter.format(_record(logging.WARNING, "low")) == "<4>low"
    assert formatter.format(_record(logging.ERROR, "bad")) == "<3>bad"
    assert formatter.format(_record(logging.INFO, "grow")) == "<6>grow"
    assert formatter.format(_record(logging.DEBUG, "each")) == "<7>each"
    lines = formatter.format(_record(logging.ERROR, "tick failed", exc=True)).splitlines()
    assert len(lines) > 2 and all(line.startswith("<3>") for line in lines)  # the traceback too


def test_plain_lines_say_warning_in_words() -> None:
    formatter = logs.PlainFormatter(timestamps=False)
    assert formatter.format(_record(logging.WARNING, "low")) == "warning: low"
    assert formatter.format(_record(logging.INFO, "grow")) == "grow"


def _run(tmp_path: Path, *args: str, journal: bool) -> str:
    """`balloond run --once --dry-run` on test:///default, its stdout a file; with `journal`
    that file is what $JOURNAL_STREAM names, as systemd sets it."""
    out = tmp_path / "stdout"
    env = {"PATH": os.environ["PATH"], "BALLOOND_CONFIG": str(tmp_path / "none.yaml")}
    (tmp_path / "policies").mkdir(exist_ok=True)
    (tmp_path / "none.yaml").write_text(f"policy_dir: policies\nstate_dir: {tmp_path}\n")
    with out.open("w") as stream:
        if journal:
            info = os.fstat(stream.fileno())
            env["JOURNAL_STREAM"] = f"{info.st_dev}:{info.st_ino}"
        argv = [str(BALLOOND), "run", "--connect", "test:///default"]
        subprocess.run(
            [*argv, "--once", "--dry-run", *args], stdout=stream, env=env, check=True, timeout=60
        )
    return out.read_text()


@pytest.mark.libvirt
def test_under_systemd_every_line_has_a_priority(tmp_path: Path) -> None:
    pytest.importorskip("libvirt")
    lines = _run(tmp_path, journal=True).splitlines()
    logged = [line for line in lines if line.startswith("<")]
    assert any(line.startswith("<6>connected to test:///default") for line in logged), lines
    plain = _run(tmp_path, journal=False)
    assert "connected to test:///default" in plain and "<6>" not in plain


@pytest.mark.libvirt
def test_log_level_warning_leaves_out_the_info_lines(tmp_path: Path) -> None:
    pytest.importorskip("libvirt")
    assert "connected to" not in _run(tmp_path, "--log-level", "warning", journal=False)


def test_log_level_is_a_config_setting_checked_at_load() -> None:
    assert parse_config_text("log_level: debug\n").log_level == "debug"
    assert parse_config_text("").log_level == "info"
    with pytest.raises(ConfigLoadErrors) as caught:
        parse_config_text("log_level: loud\n", "balloond.yaml")
    assert "balloond.yaml:1: log_level: 'loud' is not a valid log level" in str(caught.value)


# -- a settled host logs little ----------------------------------------------------------------


def _change(name: str, delta: int, reason: Reason) -> DomainDecision:
    return DomainDecision(
        name=name,
        uuid=f"uuid-{name}",
        policy="default",
        reason=reason,
        current=1024 * MiB,
        target=1024 * MiB + delta,
        floor=0,
        ceiling=2048 * MiB,
        why="...",
        act=True,
    )


def test_routine_shrinks_are_summed_up_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="test.decisions")
    changes = DecisionLog(logging.getLogger("test.decisions"), summary_every=60.0)
    for second in range(0, 60, 2):  # 30 ticks: two idle guests step down each
        for name in ("idle1", "idle2"):
            changes.changed(_change(name, -8 * MiB, Reason.SHRINK_IDLE), "s", second, dry_run=False)
        changes.tick_done(second)
    changes.changed(_change("web", 64 * MiB, Reason.GROW_PRESSURE), "grow web", 58, dry_run=False)
    changes.changed(_change("db", -64 * MiB, Reason.CONTENTION), "shrink db", 58, dry_run=False)
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert info == ["grow web", "shrink db"]  # each on its own line, at once
    assert sum(r.levelno == logging.DEBUG for r in caplog.records) == 60  # every one at debug
    changes.tick_done(60.0)
    summary = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO][-1]
    assert summary == (
        "routine shrinks, last 60 s: 60 on 2 domains (idle1, idle2), 480 MiB returned"
    )
    changes.tick_done(120.0)  # nothing pending: nothing said
    assert sum(r.levelno == logging.INFO for r in caplog.records) == 3


def test_without_a_summary_every_change_has_its_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="test.decisions")
    changes = DecisionLog(logging.getLogger("test.decisions"), summary_every=0.0)
    changes.changed(_change("idle1", -8 * MiB, Reason.SHRINK_IDLE), "shrink idle1", 0, dry_run=True)
    assert [r.getMessage() for r in caplog.records] == ["[dry-run] shrink idle1"]


def test_a_settling_host_logs_about_a_line_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    """Eight idle guests giving memory back, half an hour of 2 s ticks."""
    host = open_simulated(f"sim://{REPO / 'bench/scenarios/idle-fleet.yaml'}?clock=manual")
    daemon = make_daemon(lambda: host, clock=host.now, interval=2.0)
    caplog.set_level(logging.DEBUG, logger="balloond.decisions")
    run_ticks(daemon, host, 900, step=2.0)
    daemon.close()
    records = [r for r in caplog.records if r.name == "balloond.decisions"]
    info = [r.getMessage() for r in records if r.levelno == logging.INFO]
    changes = [r for r in records if r.levelno == logging.DEBUG]
    summaries = [line for line in info if line.startswith("routine shrinks, last")]
    assert len(changes) > 100, len(changes)  # each routine shrink, at debug
    assert 1 <= len(summaries) <= 31 and len(info) - len(summaries) <= 10, info
