"""`balloond check-policy`, `check-config` and `policy-schema`, run in-process."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from balloond.cli import policy_cmds
from balloond.cli.daemon import main
from balloond.policy.schema import policy_schema

ROOT = Path(__file__).resolve().parent.parent
GOOD = "policies:\n  - name: web\n    match: {names: ['web-*']}\n    floor: 1GiB\n"
BAD = (
    "policies:\n"
    "  - name: web\n"
    "    match: {names: ['web-*']}\n"
    "    floor: 5GB\n"
    "    ceiling: 4GiB\n"
    "    flor: 1G\n"
)


def write(folder: Path, name: str, text: str | bytes) -> str:
    path = folder / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


def test_valid_files_exit_0_with_one_line_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write(tmp_path, "web.yaml", GOOD)
    empty = write(tmp_path, "empty.yaml", "policies: []\n")
    assert main(["check-policy", good, empty]) == 0
    out = capsys.readouterr()
    assert out.out.splitlines() == [f"{good}: ok, 1 policy (web)", f"{empty}: ok, 0 policies"]
    assert out.err == ""


def test_shipped_folder_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-policy", str(ROOT / "policies")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(list((ROOT / "policies").glob("*.yaml")))
    assert all(": ok, " in line for line in lines)


def test_invalid_file_exits_2_printing_every_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(tmp_path, "web.yaml", BAD)
    assert main(["check-policy", bad]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.splitlines() == [
        f"{bad}:4: floor: '5GB' is larger than ceiling '4GiB'",
        f"{bad}:6: flor: unknown key in policy 'web' (did you mean 'floor'?)",
        "balloond: 2 errors; nothing loaded",
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"# " + b"x" * (10 * 1000 * 1000), "over the 1048576 byte (1 MiB) limit"),
        (b"a: &a [x]\nb: [*a, *a]\npolicies: []\n", "YAML anchors (&a) are not allowed"),
        (b"policies:\n  - name: \xff\n", "not valid UTF-8"),
        (b"policies: [", "invalid YAML"),
        (b"policies:\n  - name: w\n    match: {names: [w]}\n    floor: -1G\n", "negative"),
        (b"policies:\n  - name: w\n    match: {names: [w]}\n    weight: lots\n", "whole number"),
    ],
)
def test_hostile_input_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, expected: str
) -> None:
    path = write(tmp_path, "p.yaml", content)
    assert main(["check-policy", path]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{path}:") and expected in err


def test_one_bad_file_among_good_ones_fails_the_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, "a.yaml", GOOD)
    write(tmp_path, "b.yaml", GOOD)  # same policy name again
    assert main(["check-policy", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'b.yaml'}:2: name: policy 'web' is already defined at" in err


def test_missing_path_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-policy", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_empty_folder_is_valid_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-policy", str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"{tmp_path}: no policy files; the built-in default applies\n"


def test_quiet_prints_nothing_when_valid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-policy", "-q", write(tmp_path, "web.yaml", GOOD)]) == 0
    assert capsys.readouterr().out == ""


def test_domain_shows_the_policy_and_selector(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write(tmp_path, "web.yaml", GOOD)
    assert main(["check-policy", "-q", good, "--domain", "web-3"]) == 0
    assert capsys.readouterr().out == f"web-3: policy 'web' by name 'web-*' ({good}:2)\n"
    assert main(["check-policy", "-q", good, "--domain", "db"]) == 0
    assert capsys.readouterr().out == "db: policy 'default' by default (<built-in>)\n"


def test_no_path_checks_the_configs_policy_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "pol"
    folder.mkdir()
    write(folder, "web.yaml", BAD)
    config = write(tmp_path, "balloond.yaml", "policy_dir: pol\n")
    assert main(["check-policy", "--config", config]) == 2
    assert f"{folder / 'web.yaml'}:4: floor:" in capsys.readouterr().err


def test_check_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shipped = str(ROOT / "balloond" / "data" / "balloond.yaml")
    assert main(["check-config", shipped]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{shipped}: ok\n") and "  interval: 2s\n" in out
    bad = write(tmp_path, "b.yaml", "intervall: 5s\nmetrics_port: 99999\n")
    assert main(["check-config", bad]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"{bad}:1: intervall: unknown key (did you mean 'interval'?)",
        f"{bad}:2: metrics_port: 99999 is out of range 1..65535",
        "balloond: 2 errors; nothing loaded",
    ]


def test_policy_schema_prints_and_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["policy-schema"]) == 0
    assert json.loads(capsys.readouterr().out) == policy_schema()
    target = tmp_path / "schema.json"
    assert main(["policy-schema", "-o", str(target)]) == 0
    assert json.loads(target.read_text(encoding="utf-8")) == policy_schema()


@pytest.mark.parametrize("command", ["check-policy", "check-config", "policy-schema"])
def test_every_option_is_explained(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "usage: balloond " + command in capsys.readouterr().out
    parser = argparse.ArgumentParser()
    policy_cmds.register(parser.add_subparsers())
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for action in subparsers.choices[command]._actions:
        assert action.help, f"{command}: {action.option_strings or action.dest} has no help"


def test_both_checks_read_the_config_named_by_balloond_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As `balloond run` and balloonctl do: --config, else $BALLOOND_CONFIG, else /etc/..."""
    folder = tmp_path / "pol"
    folder.mkdir()
    write(folder, "web.yaml", BAD)
    config = write(tmp_path, "balloond.yaml", "policy_dir: pol\n")
    monkeypatch.setenv("BALLOOND_CONFIG", config)
    assert main(["check-policy"]) == 2
    assert f"{folder / 'web.yaml'}:4: floor:" in capsys.readouterr().err
    assert main(["check-config"]) == 0
    assert capsys.readouterr().out.startswith(f"{config}: ok\n")
    broken = write(tmp_path, "broken.yaml", "policy_dirr: pol\n")
    monkeypatch.setenv("BALLOOND_CONFIG", broken)
    assert main(["check-policy"]) == 2  # a broken config is reported, not a traceback
    assert f"{broken}:1: policy_dirr: unknown key" in capsys.readouterr().err
