"""The documentation says what the code does: the knob table of docs/policies.md, the option
tables of docs/daemon.md and README.md, and the shipped balloond.yaml."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from balloond.cli import daemon_cmds
from balloond.config import CONFIG_FIELDS, DEFAULT_INTERVAL, DaemonConfig, load_config
from balloond.policy.knobs import POLICY_KNOBS
from balloond.policy.model import Policy

ROOT = Path(__file__).resolve().parent.parent


def _table_keys(text: str, section: str) -> list[str]:
    """First-column `code` entries of the table under a '## section' heading."""
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([^`]+)` \|", body, re.M)


def test_the_knob_table_lists_every_knob_with_its_default() -> None:
    text = (ROOT / "docs" / "policies.md").read_text(encoding="utf-8")
    assert _table_keys(text, "Knobs") == [knob.name for knob in POLICY_KNOBS]
    rows = dict(re.findall(r"^\| `(\w+)` \| [^|]+ \| `?([^|`]+?)`? \|", text, re.M))
    default = Policy(name="default")
    assert rows["floor"] == str(default.floor) and rows["ceiling"] == "maxmem"
    assert rows["buffer"] == f"{default.buffer:.0%}" and rows["weight"] == str(default.weight)
    assert rows["max_shrink_step"] == str(default.max_shrink_step)
    assert rows["max_grow_step"] == "unlimited" and default.max_grow_step is None
    assert rows["deadband"] == str(default.deadband).replace(" ", "")
    assert rows["pressure_target"] == f"{default.pressure_target:.1%}"
    for flag in ("swap_guard", "self_adjust", "enabled"):
        assert rows[flag] == str(getattr(default, flag)).lower(), flag


def test_the_run_options_table_lists_every_option_of_balloond_run() -> None:
    parser = argparse.ArgumentParser()
    daemon_cmds.register(parser.add_subparsers())
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    options = {
        option
        for action in subparsers.choices["run"]._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }
    text = (ROOT / "docs" / "daemon.md").read_text(encoding="utf-8")
    documented = {key.split()[0] for key in _table_keys(text, "Options")}
    assert options <= documented, options - documented
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    run_row = next(line for line in readme.splitlines() if line.startswith("| `balloond run"))
    assert all(option in run_row for option in options), run_row


def test_the_shipped_config_states_the_defaults_and_every_setting() -> None:
    shipped = ROOT / "balloond" / "data" / "balloond.yaml"
    config = load_config(str(shipped))
    assert config.interval == DEFAULT_INTERVAL == DaemonConfig().interval
    text = shipped.read_text(encoding="utf-8")
    for knob in CONFIG_FIELDS:
        assert re.search(rf"^#? ?{knob.name}:", text, re.M), knob.name
    daemon_md = (ROOT / "docs" / "daemon.md").read_text(encoding="utf-8")
    assert f"Every `interval` ({DEFAULT_INTERVAL:g} s by default)" in daemon_md
