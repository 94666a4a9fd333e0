"""The scenario loader: the issue's example loads; bad and hostile input fail with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from balloond.errors import ConfigError
from balloond.sim.scenario import Trace, load_scenario, parse_scenario
from balloond.units import GiB, MiB

EXAMPLE = """\
name: web-spike
host: {memory: 16GiB, reserve: 1GiB}
duration: 900s
step: 1s
guests:
  - name: web1
    maxmem: 4GiB
    floor: 512MiB          # optional, policy floor
    weight: 1000           # optional
    demand:                # piecewise-linear points: [seconds, size]
      anon: [[0, 1GiB], [300, 1GiB], [310, 3GiB], [600, 3GiB], [610, 1GiB]]
      file: [[0, 256MiB]]  # page cache the guest would like to keep
"""


def test_issue_example_loads() -> None:
    scenario = parse_scenario(EXAMPLE, source="x.yaml")
    assert scenario.name == "web-spike"
    assert scenario.host.memory == 16 * GiB and scenario.host.reserve == 1 * GiB
    assert scenario.duration == 900.0 and scenario.step == 1.0
    (web,) = scenario.guests
    assert (web.maxmem, web.floor, web.weight) == (4 * GiB, 512 * MiB, 1000)
    assert web.anon.at(305) == 2 * GiB
    assert web.anon.at(10_000) == 1 * GiB
    assert web.file.at(50) == 256 * MiB


def test_trace_interpolates_and_peaks() -> None:
    trace = Trace(((0, 0), (10, 100), (20, 0)))
    assert [trace.at(t) for t in (-5, 0, 5, 10, 15, 20, 99)] == [0, 0, 50, 100, 50, 0, 0]
    assert trace.peak(2, 18) == 100
    assert trace.peak(12, 18) == 80


def test_optional_fields_and_decimals() -> None:
    text = EXAMPLE.replace(
        "    weight: 1000           # optional\n",
        "    start: 30s\n    behaviour: stuck\n    agent: false\n"
        "    swap: 1.5GiB\n    initial: 700MiB\n",
    )
    (web,) = parse_scenario(text).guests
    assert (web.start, web.behaviour, web.agent) == (30.0, "stuck", False)
    assert web.swap == int(1.5 * GiB) and web.initial == 700 * MiB


@pytest.mark.parametrize(
    ("old", "new", "line", "needle"),
    [
        ("    maxmem: 4GiB", "    maxmem: -4GiB", 7, "maxmem"),
        ("    maxmem: 4GiB", "    maxmem: 4 furlongs", 7, "unknown size unit"),
        ("    floor: 512MiB", "    floor: 5GiB", 8, "larger than maxmem"),
        ("    weight: 1000", "    wieght: 1000", 9, "did you mean 'weight'"),
        ("    weight: 1000", "    weight: yes", 9, "weight"),
        ("[310, 3GiB]", "[200, 3GiB]", 11, "must increase"),
        ("[310, 3GiB]", "[310]", 11, "[seconds, size]"),
        ("duration: 900s", "duration: forever", 3, "duration"),
        (
            "host: {memory: 16GiB, reserve: 1GiB}",
            "host: {memory: 1GiB, reserve: 1GiB}",
            2,
            "leaves nothing",
        ),
        ("  - name: web1", "  - name: [web1]", 6, "name"),
        ("      file: [[0, 256MiB]]", "      cache: [[0, 256MiB]]", 12, "unknown key"),
    ],
)
def test_errors_name_file_line_and_key(old: str, new: str, line: int, needle: str) -> None:
    assert old in EXAMPLE
    with pytest.raises(ConfigError) as info:
        parse_scenario(EXAMPLE.replace(old, new), source="s.yaml")
    assert info.value.file == "s.yaml"
    assert info.value.line == line
    assert needle in str(info.value)
    assert str(info.value).startswith(f"s.yaml:{line}: ")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "- a\n- b\n",
        "name: x\n",
        "name: x\nhost: 3\nguests: []\n",
        ": : :\n",
        "\t\x00",
        "name: x\nhost: {memory: 4GiB}\nguests: [1, 2]\n",
        "name: x\nname: y\n",
    ],
)
def test_malformed_documents_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_scenario(text, source="bad.yaml")


def test_alias_bomb_is_refused_before_expansion() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 9):
        bomb += f"{chr(97 + i)}: &{chr(97 + i)} [" + ", ".join([f"*{chr(96 + i)}"] * 9) + "]\n"
    with pytest.raises(ConfigError, match="aliases are not allowed"):
        parse_scenario(bomb, source="bomb.yaml")


def test_huge_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text("#" * (3 * MiB))
    with pytest.raises(ConfigError, match="bytes"):
        load_scenario(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read scenario"):
        load_scenario(tmp_path / "nope.yaml")


def test_shipped_scenarios_load() -> None:
    root = Path(__file__).resolve().parent.parent
    paths = sorted((root / "bench" / "scenarios").glob("*.yaml"))
    for path in [*paths, root / "balloond" / "data" / "demo.yaml"]:
        scenario = load_scenario(path)
        assert scenario.guests, path
