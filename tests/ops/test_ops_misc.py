"""Config resolution, the command hold's life, and console's hand-over to virsh."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from balloond.config import DEFAULT_CONFIG_PATH
from balloond.errors import OperationFailed
from balloond.model import DomainSnapshot
from balloond.ops import OpsContext, config_path
from balloond.ops.holding import COMMAND_HOLD_LIMIT, working_hold

pytestmark = pytest.mark.libvirt
HOST_URI = f"test://{Path(__file__).parent.parent / 'contract' / 'host.xml'}"


def test_config_path_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BALLOOND_CONFIG", str(tmp_path / "env.yaml"))
    assert config_path("/explicit.yaml") == "/explicit.yaml"
    assert config_path(None) == str(tmp_path / "env.yaml")
    monkeypatch.delenv("BALLOOND_CONFIG")
    expected = DEFAULT_CONFIG_PATH if os.path.exists(DEFAULT_CONFIG_PATH) else None
    assert config_path(None) == expected


def test_context_takes_the_uri_from_the_config(config_file: Path) -> None:
    ctx = OpsContext.load(config=str(config_file), connect=None)
    assert ctx.uri is not None and ctx.uri.endswith("contract/host.xml")
    assert OpsContext.load(config=str(config_file), connect="test:///default").uri == (
        "test:///default"
    )


def _web1(ctx: OpsContext) -> DomainSnapshot:
    return {d.name: d for d in ctx.backend.domains()}["web1"]


def test_command_hold_is_visible_while_working_and_gone_after(ctx: OpsContext) -> None:
    dom = _web1(ctx)
    with working_hold(ctx.backend, dom, "balloonctl test", "testing") as hold:
        seen = ctx.backend.holds()[dom.uuid]
        assert (seen.owner, seen.pid) == ("balloonctl test", os.getpid())
        assert seen.until is not None and seen.until <= time.time() + COMMAND_HOLD_LIMIT
        assert hold == seen
    assert ctx.backend.holds() == {}


def test_command_hold_is_removed_when_the_work_fails(ctx: OpsContext) -> None:
    dom = _web1(ctx)
    with pytest.raises(OperationFailed), working_hold(ctx.backend, dom, "balloonctl test", "t"):
        raise OperationFailed("the hypervisor said no")
    assert ctx.backend.holds() == {}


def test_console_hands_over_to_virsh(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "virsh"
    fake.write_text('#!/bin/sh\necho "virsh $*"\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "BALLOOND_CONFIG": ""}

    def console(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from balloond.cli.ctl import main; sys.exit(main(sys.argv[1:]))",
                "console",
                *argv,
            ],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=60,
        )

    done = console("-c", HOST_URI, "web1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"virsh --connect {HOST_URI} console web1"
    # A missing or stopped domain is balloonctl's one line; virsh is not started.
    for name, message in (("nope", "domain 'nope' not found on"), ("off1", "is not running")):
        done = console("-c", HOST_URI, name)
        assert done.returncode == 1 and done.stdout == "", done.stdout
        assert message in done.stderr and done.stderr.count("\n") == 1, done.stderr


def test_warnings_follow_a_success_and_never_add_to_a_failure(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from balloond.cli.ctl_ops import _warnings_after_success

    log = logging.getLogger("balloond.backend.libvirt_migrate")
    with _warnings_after_success():
        log.warning("domain '%s': could not remove the command's hold", "web1")
    assert capsys.readouterr().err == (
        "balloonctl: warning: domain 'web1': could not remove the command's hold\n"
    )
    with pytest.raises(OperationFailed), _warnings_after_success():
        log.warning("domain '%s': aborting its migration", "web1")
        raise OperationFailed("domain 'web1': migration failed")
    assert capsys.readouterr().err == ""
