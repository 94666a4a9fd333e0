"""balloonctl balloon/mem-set, maxmem/mem-max and release, against libvirt's test driver."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest

from balloond.cli.ctl import main
from balloond.cli.ctl_ops import duration_text
from balloond.daemon.assemble import compute_once
from balloond.daemon.loop import LoopSettings
from balloond.errors import OperationFailed, Refused
from balloond.model import DomainSnapshot, Hold, JobKind, Reason
from balloond.ops import OpsContext, balloon, release, save_domain, set_maxmem
from balloond.ops.holding import command_hold
from balloond.ops.memory import check_balloon
from balloond.policy.model import Amount
from balloond.units import GiB, MiB
from tests.support.pids import dead_pid

pytestmark = pytest.mark.libvirt


def domain(ctx: OpsContext, name: str) -> DomainSnapshot:
    return {d.name: d for d in ctx.backend.domains()}[name]


@pytest.mark.parametrize(
    ("size", "force", "error"),
    [
        (5 * GiB, False, "above its maxmem 4 GiB"),
        (5 * GiB, True, "above its maxmem 4 GiB"),  # --force never passes maxmem
        (512 * MiB, False, "below its floor 1 GiB"),
        (0, True, "not positive"),
        (512 * MiB, True, None),
        (4 * GiB, False, None),
        (GiB, False, None),
    ],
)
def test_check_balloon_table(size: int, force: bool, error: str | None) -> None:
    """A bare target check: maxmem, floor (unless forced), positive."""
    dom = DomainSnapshot(name="web1", uuid="u", current=2 * GiB, maxmem=4 * GiB)
    if error is None:
        check_balloon(dom, size, GiB, force=force)
    else:
        with pytest.raises(Refused, match=error):
            check_balloon(dom, size, GiB, force=force)


def test_balloon_sets_target_and_pins_it(ctx: OpsContext) -> None:
    result = balloon(ctx, "web1", 1536 * MiB)
    assert (result.previous, result.target, result.floor) == (2 * GiB, 1536 * MiB, GiB)
    web = domain(ctx, "web1")
    assert web.current == 1536 * MiB
    hold = ctx.backend.holds()[web.uuid]
    assert (hold.owner, hold.target, hold.until, hold.pid) == (
        "balloonctl balloon",
        1536 * MiB,
        None,
        None,
    )


def test_balloon_for_a_duration(ctx: OpsContext) -> None:
    balloon(ctx, "web1", 3 * GiB, hold_for=3600.0, now=1_000.0)
    hold = ctx.backend.holds()[domain(ctx, "web1").uuid]
    assert hold.until == 4_600.0


@pytest.mark.parametrize("size", [5 * GiB, 512 * MiB])
def test_refused_balloon_changes_nothing(ctx: OpsContext, size: int) -> None:
    with pytest.raises(Refused, match="web1"):
        balloon(ctx, "web1", size)
    assert domain(ctx, "web1").current == 2 * GiB
    assert ctx.backend.holds() == {}


def test_force_goes_below_the_floor_and_says_so(ctx: OpsContext) -> None:
    balloon(ctx, "web1", 512 * MiB, force=True)
    web = domain(ctx, "web1")
    assert web.current == 512 * MiB
    assert "below the floor" in ctx.backend.holds()[web.uuid].reason


def test_release_removes_the_pin(ctx: OpsContext) -> None:
    balloon(ctx, "web1", 3 * GiB)
    released = release(ctx, "web1")
    assert released is not None and released.target == 3 * GiB
    assert ctx.backend.holds() == {}
    assert release(ctx, "web1") is None


def test_maxmem_goes_to_the_config_and_keeps_the_pin(ctx: OpsContext) -> None:
    balloon(ctx, "web1", 3 * GiB)
    assert set_maxmem(ctx, "web1", 6 * GiB) is False  # test driver: like QEMU, not live
    web = domain(ctx, "web1")
    assert web.persistent_maxmem == 6 * GiB
    hold = ctx.backend.holds()[web.uuid]
    assert hold.owner == "balloonctl balloon" and hold.target == 3 * GiB  # put back


def test_maxmem_below_the_target_is_refused(ctx: OpsContext) -> None:
    with pytest.raises(Refused, match="below its current target 2 GiB"):
        set_maxmem(ctx, "web1", 1536 * MiB)
    assert domain(ctx, "web1").persistent_maxmem is None
    assert ctx.backend.holds() == {}


def test_the_daemon_leaves_a_pinned_domain_alone(default_ctx: OpsContext, policy_dir: Path) -> None:
    balloon(default_ctx, "test", 3 * GiB)  # the default floor is 25% of 8 GiB = 2 GiB
    daemon = compute_once("test:///default", policy_dir, LoopSettings(reserve=Amount(size=0)))
    try:
        decision = daemon.last_decision()
        assert decision is not None
        (test,) = decision.domains
        assert test.reason == Reason.HOLD
        assert test.target == 3 * GiB and not test.act
    finally:
        daemon.close()


def test_cli_balloon_bare_number_is_mib(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["mem-set", "--config", str(config_file), "web1", "1536"]) == 0
    out = capsys.readouterr().out
    assert "2 GiB -> 1.5 GiB" in out and "balloonctl release web1" in out


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["balloon", "web1", "9G"], 3, "above its maxmem 4 GiB"),
        (["balloon", "web1", "100"], 3, "below its floor 1 GiB"),
        (["balloon", "nope", "1G"], 1, "nope"),
        (["mem-max", "web1", "1G"], 3, "below its current target 2 GiB"),
        (["balloon", "web1", "1G", "--connect", "test:///nonexistent/host.xml"], 4, "connect"),
    ],
)
def test_cli_refusals(
    config_file: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    assert main([*argv, "--config", str(config_file)]) == code
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1  # one clear line


def test_balloon_refused_while_a_job_runs() -> None:
    dom = DomainSnapshot(
        name="web1", uuid="u", current=2 * GiB, maxmem=4 * GiB, job=JobKind.MIGRATION
    )
    with pytest.raises(Refused, match="migration job"):
        check_balloon(dom, 3 * GiB, GiB, force=True)


@pytest.mark.parametrize("size", ["-5", "lots", "1e9G", "12 parsecs"])
def test_cli_bad_sizes(config_file: Path, size: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["balloon", "--config", str(config_file), "web1", size])
    assert exit_info.value.code == 2


@pytest.mark.parametrize("duration", ["0", "0s", "-1h", "forever"])
def test_cli_bad_hold_durations(config_file: Path, duration: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["balloon", "--config", str(config_file), "web1", "3G", "--for", duration])
    assert exit_info.value.code == 2


def test_cli_maxmem_says_when_it_applies(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["maxmem", "--config", str(config_file), "web1", "6G"]) == 0
    assert "next boot" in capsys.readouterr().out


def test_hold_store_is_what_balloonctl_wrote(ctx: OpsContext) -> None:
    before = time.time()
    balloon(ctx, "web1", 3 * GiB, hold_for=60)
    holds = ctx.backend.holds()
    assert list(holds) == [domain(ctx, "web1").uuid]
    hold: Hold = holds[domain(ctx, "web1").uuid]
    assert hold.active(before + 30) and not hold.active(before + 120)


def _decided(uri: str, policy_dir: Path) -> dict[str, Reason]:
    daemon = compute_once(uri, policy_dir, LoopSettings(reserve=Amount(size=0)))
    try:
        decision = daemon.last_decision()
        assert decision is not None
        return {d.name: d.reason for d in decision.domains}
    finally:
        daemon.close()


def test_a_pin_whose_time_is_up_no_longer_holds(default_ctx: OpsContext, policy_dir: Path) -> None:
    balloon(default_ctx, "test", 3 * GiB, hold_for=3600, now=time.time() - 3601)
    assert _decided("test:///default", policy_dir)["test"] != Reason.HOLD
    balloon(default_ctx, "test", 3 * GiB, hold_for=3600)
    assert _decided("test:///default", policy_dir)["test"] == Reason.HOLD


def test_the_hold_of_a_command_that_died_no_longer_holds(
    default_ctx: OpsContext, policy_dir: Path
) -> None:
    dom = domain(default_ctx, "test")
    default_ctx.backend.put_hold("test", command_hold(dom, "balloonctl save", "saving"))
    assert _decided("test:///default", policy_dir)["test"] == Reason.HOLD  # we are alive
    default_ctx.backend.put_hold(
        "test", replace(command_hold(dom, "balloonctl save", "saving"), pid=dead_pid())
    )
    assert _decided("test:///default", policy_dir)["test"] != Reason.HOLD


def test_list_and_explain_show_the_pin_without_a_daemon(
    default_ctx: OpsContext, policy_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    balloon(default_ctx, "test", 3 * GiB, hold_for=3600)
    common = [
        "-c",
        "test:///default",
        "--policy-dir",
        str(policy_dir),
        "--socket",
        str(tmp_path / "nobody.sock"),
    ]
    assert main(["list", "--json", *common]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["hold"]["owner"], row["hold"]["target"], row["target"]) == (
        "balloonctl balloon",
        3 * GiB,
        3 * GiB,
    )
    assert main(["explain", "test", *common]) == 0
    assert "balloonctl balloon" in capsys.readouterr().out


def test_a_domain_another_live_command_works_on_is_refused(ctx: OpsContext, tmp_path: Path) -> None:
    """pid 1 is alive on every host: as if a `balloonctl save` were half done."""
    dom = domain(ctx, "web1")
    working = replace(command_hold(dom, "balloonctl save", "saving to /srv/web1.img"), pid=1)
    ctx.backend.put_hold("web1", working)
    for attempt in (
        lambda: balloon(ctx, "web1", 3 * GiB, force=True),
        lambda: set_maxmem(ctx, "web1", 6 * GiB),
        lambda: save_domain(ctx, "web1", str(tmp_path / "w.img")),
    ):
        with pytest.raises(Refused, match=r"balloonctl save \(pid 1\) is working on it: saving"):
            attempt()
    assert ctx.backend.holds()[dom.uuid] == working  # untouched
    assert domain(ctx, "web1").current == 2 * GiB and not (tmp_path / "w.img").exists()


def test_a_failed_balloon_puts_the_earlier_pin_back(ctx: OpsContext) -> None:
    pin = Hold(domain="x", owner="balloonctl balloon", reason="pinned", target=GiB)
    ctx.backend.put_hold("off1", pin)  # shut off: libvirt refuses a live balloon target
    with pytest.raises(OperationFailed):
        balloon(ctx, "off1", 768 * MiB, force=True)
    hold = ctx.backend.get_hold("off1")  # type: ignore[attr-defined]
    assert hold is not None and (hold.owner, hold.target) == ("balloonctl balloon", GiB)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(3600, "1h"), (5400, "1h30m"), (45, "45s"), (1.5, "1.5s"), (3661, "1h1m1s"), (60, "1m")],
)
def test_hold_durations_read_as_typed(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text


def test_cli_balloon_for_says_until_when(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["balloon", "--config", str(config_file), "web1", "3G", "--for", "90m"]) == 0
    assert "held for 1h30m (until " in capsys.readouterr().out


def test_cli_release_without_a_daemon_clears_the_pin(
    default_ctx: OpsContext, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    balloon(default_ctx, "test", 3 * GiB)
    assert default_ctx.backend.holds() != {}
    argv = ["release", "-c", "test:///default", "--socket", str(tmp_path / "nobody.sock"), "test"]
    assert main(argv) == 0, capsys.readouterr().err
    assert default_ctx.backend.holds() == {}
