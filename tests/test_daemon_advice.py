"""A dry run on a host whose guests report nothing says what is missing and how to fix it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from balloond.daemon.advice import no_data_advice
from balloond.model import Decision, DomainDecision, DomainSnapshot, HostSnapshot, Reason, Snapshot
from balloond.units import GiB

BALLOOND = Path(sys.executable).with_name("balloond")


def _host(*names: str, reason: Reason = Reason.NO_DATA) -> tuple[Snapshot, Decision]:
    domains = tuple(
        DomainSnapshot(name=n, uuid=f"u-{n}", current=GiB, maxmem=2 * GiB) for n in names
    )
    decisions = tuple(
        DomainDecision(
            name=d.name,
            uuid=d.uuid,
            policy="default",
            reason=reason,
            current=GiB,
            target=GiB,
            floor=0,
            ceiling=2 * GiB,
            why="kept: no data",
        )
        for d in domains
    )
    snapshot = Snapshot(
        taken_at=0.0, host=HostSnapshot(total=8 * GiB, free=4 * GiB), domains=domains
    )
    return snapshot, Decision(
        taken_at=0.0, domains=decisions, host_free=4 * GiB, reserve=GiB, budget=0
    )


def test_one_blind_domain_gets_the_one_command() -> None:
    lines = no_data_advice(*_host("web1"), "qemu:///system", 2, dry_run=True)
    assert lines[0] == "1 of 1 domains have nothing to decide from:"
    assert "web1: no balloon statistics (the statistics period is off)" in lines[1]
    assert "  virsh -c qemu:///system dommemstat web1 --period 2 --live --config" in lines
    assert any("agent-snippet" in line for line in lines)


def test_many_blind_domains_get_one_loop() -> None:
    lines = no_data_advice(*_host("a", "b", "c"), "xen:///system", 5, dry_run=True)
    loop = [line for line in lines if line.startswith("  for d in")]
    assert loop == [
        "  for d in $(virsh -c xen:///system list --name); do virsh -c xen:///system dommemstat"
        ' "$d" --period 5 --live --config; done'
    ]


def test_nothing_to_say_when_every_domain_had_data() -> None:
    assert (
        no_data_advice(*_host("web1", reason=Reason.STEADY), "qemu:///system", 2, dry_run=True)
        == []
    )


@pytest.mark.libvirt
def test_dry_run_once_says_it_on_the_command_line(tmp_path: Path) -> None:
    pytest.importorskip("libvirt")
    (tmp_path / "policies").mkdir()
    config = tmp_path / "balloond.yaml"
    config.write_text(f"policy_dir: policies\nstate_dir: {tmp_path}\n")
    done = subprocess.run(
        [
            str(BALLOOND),
            "run",
            "--config",
            str(config),
            "--connect",
            "test:///default",
            "--once",
            "--dry-run",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "1 of 1 domains have nothing to decide from:" in done.stdout
    assert "virsh -c test:///default dommemstat test --period 2 --live --config" in done.stdout
