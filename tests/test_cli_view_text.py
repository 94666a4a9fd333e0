"""balloonctl's text rendering: answers come over a socket as JSON, so any field may be
missing or of the wrong type; rendering must still print something sensible."""

from __future__ import annotations

from pathlib import Path

import pytest

from balloond.cli import ctl_view_text as text
from balloond.cli.ctl import main as balloonctl
from balloond.units import GiB, MiB

HOSTILE: list[object] = [
    {},
    {"name": None, "id": "x", "mem": "lots", "time": "t"},
    {"hold": "yes", "state": 5, "pressure": "high", "report_age": []},
]


@pytest.mark.parametrize("row", HOSTILE)
def test_list_table_survives_odd_rows(row: dict[str, object]) -> None:
    table = text.list_table([row]).splitlines()
    assert table[0].startswith("Name") and len(table) == 2


def test_list_table_columns() -> None:
    row = {
        "name": "web1",
        "id": 3,
        "mem": GiB,
        "maxmem": 4 * GiB,
        "target": 1536 * MiB,
        "vcpus": 2,
        "state": "p",
        "time": 12.34,
        "policy": "web",
        "pressure": 0.041,
        "floor": 512 * MiB,
        "ceiling": 4 * GiB,
        "report_age": 3.2,
        "hold": {"owner": "balloonctl balloon", "target": GiB, "remaining": None},
    }
    lines = text.list_table([row, {**row, "name": "a", "id": None}]).splitlines()
    cells = lines[1].split()
    assert cells[:10] == ["web1", "3", "1024", "2", "--p---", "12.3", "4096", "1536", "web", "4.1%"]
    assert "balloonctl balloon@1024" in lines[1] and lines[1].endswith("3s")
    assert lines[2].startswith("a "), "domains without an id come last, as in xm list"


def test_explanation_status_holds_survive_empty_answers() -> None:
    assert "Decision: none yet" in text.explanation({})
    assert text.status({}).startswith("balloond None")
    assert text.holds_table([]) == "no holds"
    assert "until released" in text.holds_table([{"name": "web1", "remaining": None}])


def test_explanation_shows_inputs_policy_and_reason() -> None:
    answer = {
        "uri": "qemu:///system",
        "domain": {
            "name": "web1",
            "uuid": "u",
            "id": 1,
            "state": "running",
            "job": None,
            "current": GiB,
            "maxmem": 4 * GiB,
            "tags": ["tier=web"],
        },
        "stats": {
            "total": GiB,
            "available": 300 * MiB,
            "unused": 100 * MiB,
            "disk_caches": 200 * MiB,
            "age": 1.0,
        },
        "report": {
            "seq": 9,
            "age": 0.5,
            "demand": 900 * MiB,
            "psi_some": 0.041,
            "requested_target": 2 * GiB,
        },
        "policy": {
            "name": "web",
            "source": "web.yaml:3",
            "selector": "name 'web*'",
            "knobs": {"floor": "512 MiB", "buffer": "20%"},
        },
        "decision": {
            "reason": "grow_pressure",
            "target": 1536 * MiB,
            "act": True,
            "floor": 512 * MiB,
            "ceiling": 4 * GiB,
            "demand": 900 * MiB,
            "pressure": 0.041,
            "explanation": "grow 1 GiB → 1.5 GiB: pressure 4.1% > 0.5% target",
        },
        "hold": None,
        "stuck_until": None,
        "host": {"free": 3 * GiB, "reserve": GiB, "budget": GiB, "notes": ["tight"]},
    }
    rendered = text.explanation(answer)
    for expected in (
        "web1  (uuid u, id 1) on qemu:///system",
        "tags tier=web",
        "available 300 MiB",
        "guest report #9",
        "asks for 2 GiB",
        "Policy web (web.yaml:3), chosen by name 'web*'",
        "Decision: grow_pressure: target 1.5 GiB (set now)",
        "pressure 4.1% > 0.5% target",
        "note: tight",
    ):
        assert expected in rendered, (expected, rendered)


def test_holds_and_release_computed_without_a_daemon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sock = str(tmp_path / "none.sock")
    assert balloonctl(["holds", "--connect", "sim://default", "--socket", sock]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == "no holds" and "computed now" in captured.err
    assert balloonctl(["release", "web", "--connect", "sim://default", "--socket", sock]) == 0
    assert "hold cleared" in capsys.readouterr().out
    assert balloonctl(["release", "nosuch", "--connect", "sim://default", "--socket", sock]) == 1
    assert "nosuch" in capsys.readouterr().err


def test_a_daemon_without_its_hypervisor_says_its_list_is_old() -> None:
    assert text.staleness({"connected": True}) is None
    assert text.staleness({"rows": []}) is None
    note = text.staleness(
        {"connected": False, "uri": "qemu:///system", "taken_at": 100.0, "now": 190.0}
    )
    assert note == "note: balloond has lost qemu:///system; showing what it saw 90s ago"
    assert "nothing yet" in (text.staleness({"connected": False}) or "")
