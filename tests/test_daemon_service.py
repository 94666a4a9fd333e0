"""The shipped systemd unit: Type=notify with a watchdog, reload by SIGHUP, and (where
systemd-analyze exists) a unit systemd itself accepts."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest


def _unit_text() -> str:
    return resources.files("balloond").joinpath("data/balloond.service").read_text()


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(_unit_text())
    return parser


def test_unit_is_notify_with_watchdog_and_sighup_reload() -> None:
    unit = _unit()
    service = unit["Service"]
    assert service["Type"] == "notify"
    assert int(service["WatchdogSec"]) == 30
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["ExecStart"].split()[1:3] == ["run", "--config"]
    assert service["RuntimeDirectory"] == "balloond" and service["StateDirectory"] == "balloond"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_unit_paths_match_the_config_defaults() -> None:
    from balloond.config import DaemonConfig

    defaults = DaemonConfig()
    service = _unit()["Service"]
    assert defaults.control_socket.startswith(f"/run/{service['RuntimeDirectory']}/")
    assert defaults.state_dir == f"/var/lib/{service['StateDirectory']}"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    balloond = Path(sys.executable).with_name("balloond")
    text = _unit_text().replace("/usr/local/bin/balloond", str(balloond))
    unit = tmp_path / "balloond.service"
    unit.write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    complaints = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if "balloond.service" in line and "Documentation" not in line
    ]
    assert complaints == [], complaints
