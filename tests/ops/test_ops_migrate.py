"""balloonctl migrate: destination checks and failure handling against libvirt's test driver
(which cannot migrate at all; real migrations are in the real-VM lab's tests/e2e)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from balloond.backend.base import JobProgress
from balloond.backend.libvirt import LibvirtBackend
from balloond.backend.simulated import open_simulated
from balloond.cli.ctl import main
from balloond.config import DaemonConfig
from balloond.errors import ConfigError, NotSupported, Refused
from balloond.model import Hold
from balloond.ops import OpsContext, destination_uri, migrate_domain
from balloond.ops.progress import ProgressLine, render
from balloond.policy.model import Amount
from balloond.units import GiB, MiB

pytestmark = pytest.mark.libvirt
HOST_URI = f"test://{Path(__file__).parent.parent / 'contract' / 'host.xml'}"


@pytest.mark.parametrize(
    ("dest", "source", "expected"),
    [
        ("node2", "qemu:///system", "qemu+ssh://node2/system"),
        ("node2.example.org", "qemu+tcp://a/system", "qemu+ssh://node2.example.org/system"),
        ("dom0b", "xen:///system", "xen+ssh://dom0b/system"),
        (
            "qemu+tcp://127.0.0.1:16510/system",
            "qemu:///system",
            "qemu+tcp://127.0.0.1:16510/system",
        ),
        ("test:///default", "test:///default", "test:///default"),
    ],
)
def test_destination_uri(dest: str, source: str, expected: str) -> None:
    assert destination_uri(dest, source) == expected


@pytest.mark.parametrize("dest", ["", "-oProxyCommand=evil", "a b", "user@host/x", "h?x=1"])
def test_hostile_destination(dest: str) -> None:
    with pytest.raises(ConfigError):
        destination_uri(dest, "qemu:///system")


def test_destination_without_room_is_refused(default_ctx: OpsContext) -> None:
    dest = LibvirtBackend(HOST_URI)  # a host with no free memory at all
    try:
        with pytest.raises(Refused, match=r"needs 2 GiB \+ host reserve 1 GiB = 3 GiB.*0 B free"):
            migrate_domain(default_ctx, "test", HOST_URI, live=True, destination=dest)
    finally:
        dest.close()
    assert [d.name for d in default_ctx.backend.domains()] == ["test"]
    assert default_ctx.backend.holds() == {}


def test_squeeze_counts_in_the_destination_check(default_ctx: OpsContext) -> None:
    dest = LibvirtBackend(HOST_URI)
    try:
        with pytest.raises(Refused, match=r"needs 2 GiB \+"):  # floor: 25% of 8 GiB
            migrate_domain(default_ctx, "test", HOST_URI, squeeze_to_floor=True, destination=dest)
    finally:
        dest.close()


def test_failed_migration_leaves_the_domain_here_with_its_pin(default_ctx: OpsContext) -> None:
    backend = default_ctx.backend
    pin = Hold(domain="x", owner="balloonctl balloon", reason="pinned", target=2 * GiB)
    backend.put_hold("test", pin)
    with pytest.raises(NotSupported, match="migrat"):
        migrate_domain(default_ctx, "test", "test:///default", live=True, force=True)
    assert [d.name for d in backend.domains()] == ["test"]
    (hold,) = backend.holds().values()
    assert hold.owner == "balloonctl balloon" and hold.pid is None


def test_cli_migrate_refusal_has_figures(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["migrate", "--config", str(config_file), "--live", "web1", HOST_URI])
    assert code == 3
    err = capsys.readouterr().err
    assert "needs 2 GiB + host reserve 1 GiB = 3 GiB" in err and "0 B free" in err


def test_cli_migrate_unreachable_destination(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate", "--config", str(config_file), "web1", "test:///no/such.xml"]) == 4
    assert "cannot connect" in capsys.readouterr().err


def test_progress_rendering() -> None:
    line = render(
        JobProgress(
            processed=300 * MiB, remaining=700 * MiB, total=GiB, dirty_rate=12 * MiB, elapsed=4.2
        )
    )
    assert "32%" in line and "300 MiB sent" in line and "dirty 12 MiB/s" in line
    assert render(JobProgress(0, 0, 0, 0, 0.0)).startswith("[")


def test_progress_line_is_silent_off_a_tty(tmp_path: Path) -> None:
    with open(tmp_path / "out", "w") as stream:
        line = ProgressLine(stream)
        line(JobProgress(1, 1, 2, 0, 0.1))
        line.finish()
    assert (tmp_path / "out").read_text() == ""


SIM_SOURCE = "sim://migra?guests=2&clock=manual"  # guests migra-00000, migra-00001
SIM_DEST = "sim://migrb?guests=1&clock=manual"


@pytest.mark.parametrize(
    ("extra", "downtime"),
    [
        (["--live"], "downtime 50 ms"),
        (["--live", "--max-downtime", "20"], "downtime 20 ms"),
        ([], "downtime 1250 ms"),
    ],  # without --live the guest is paused for the whole copy
)
def test_cli_migrate_live_offline_and_max_downtime_reach_the_backend(
    config_file: Path, capsys: pytest.CaptureFixture[str], extra: list[str], downtime: str
) -> None:
    """The simulated host models downtime from these settings (its own figures)."""
    argv = ["migrate", "--config", str(config_file), "-c", SIM_SOURCE, "migra-00001", SIM_DEST]
    assert main([*argv, *extra]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert f"migrated to {SIM_DEST} in " in out and "1.2 GiB transferred" in out, out
    assert downtime in out, out


@pytest.mark.parametrize("value", ["0", "-5", "fast", "4000000", "nan"])
def test_cli_bad_max_downtime(config_file: Path, value: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["migrate", "--config", str(config_file), "web1", "node2", "--max-downtime", value])
    assert exit_info.value.code == 2


def test_a_squeeze_that_stops_short_is_checked_again(config: DaemonConfig) -> None:
    """Room for the floor but not for what the guest still holds after --squeeze: refused
    before anything moves (the simulated guest cannot shrink: its clock stands still)."""
    source, dest = open_simulated(SIM_SOURCE), open_simulated(SIM_DEST)
    try:
        reserve = dest.host().free - GiB  # room for 1 GiB: the 512 MiB floor, not 1.25 GiB
        tight = replace(config, reserve=Amount(size=reserve))
        with OpsContext(config=tight).use(source) as ctx:
            with pytest.raises(Refused, match=r"needs 1.2 GiB \+ host reserve"):
                migrate_domain(
                    ctx,
                    "migra-00001",
                    SIM_DEST,
                    live=True,
                    squeeze_to_floor=True,
                    squeeze_timeout=0,
                    destination=dest,
                )
            assert "migra-00001" in {d.name for d in source.domains()}
            assert source.holds() == {}
    finally:
        dest.close()


class _Host(LibvirtBackend):
    """test:///default standing for a Xen host: libvirt's libxl driver names its host."""

    def host_identity(self) -> str | None:
        return "host:dom0"


def test_a_migration_to_this_same_host_is_refused_before_libvirt_sees_it(
    config: DaemonConfig,
) -> None:
    """libvirt's libxl driver tries a live migration to its own host, is refused by its
    own prepare step, and leaves the domain 'paused (migrating)' while Xen runs it (the Xen
    lab, tests/xen). balloonctl compares the hosts first, even with --force."""
    with OpsContext(config=config).use(_Host("test:///default")) as ctx:
        same = _Host("test:///default")
        try:
            with pytest.raises(Refused, match=r"is this same host \(host:dom0\)"):
                migrate_domain(
                    ctx, "test", "test:///default", live=True, force=True, destination=same
                )
        finally:
            same.close()
        assert [d.name for d in ctx.backend.domains()] == ["test"]
        assert ctx.backend.holds() == {}
