"""`balloonctl -c URI COMMAND`: the options a virsh or xl user writes before the command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from balloond.cli.ctl import main

pytestmark = pytest.mark.libvirt

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _no_host_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "balloond.yaml"
    config.write_text(
        f"policy_dir: {REPO / 'policies'}\ncontrol_socket: {tmp_path / 'none.sock'}\n"
    )
    monkeypatch.setenv("BALLOOND_CONFIG", str(config))


def _list(argv: list[str], capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    assert main(argv) == 0
    rows: list[dict[str, object]] = json.loads(capsys.readouterr().out)
    return rows


def test_connect_before_the_command_is_the_commands_connect(
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = _list(["-c", "test:///default", "list", "--json"], capsys)
    after = _list(["list", "--json", "--connect", "test:///default"], capsys)
    assert [r["name"] for r in before] == ["test"]
    for row in before + after:
        row.pop("time")  # the test driver's CPU time is the wall clock
    assert before == after


def test_the_option_after_the_command_wins(capsys: pytest.CaptureFixture[str]) -> None:
    rows = _list(
        ["--connect", "test:///nowhere.xml", "list", "--json", "-c", "test:///default"], capsys
    )
    assert [r["name"] for r in rows] == ["test"]


def test_a_socket_before_the_command_reaches_the_daemon_socket(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "elsewhere.sock"
    assert main(["--socket", str(missing), "status"]) != 0
    assert str(missing) in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-c", "test:///default", "top"], "-c/--connect does not apply to 'top'"),
        (
            ["--socket", "/tmp/x.sock", "agent-snippet", "web"],
            "--socket does not apply to 'agent-snippet'",
        ),  # its --socket is the guest channel's
    ],
)
def test_a_leading_option_a_command_does_not_take_is_an_error(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
