"""`--help` of every balloond and balloonctl command explains every option it takes."""

from __future__ import annotations

import argparse
import importlib

import pytest

from balloond.cli import ctl, daemon


def _commands() -> list[tuple[str, str, argparse.ArgumentParser]]:
    found = []
    for prog, modules in (("balloond", daemon._MODULES), ("balloonctl", ctl._MODULES)):
        parser = argparse.ArgumentParser(prog=prog)
        subparsers = parser.add_subparsers()
        for name in modules:
            importlib.import_module(name).register(subparsers)
        found += [(prog, command, sub) for command, sub in subparsers.choices.items()]
    return found


COMMANDS = _commands()
IDS = [f"{p} {c}" for p, c, _ in COMMANDS]


def test_both_programs_have_their_commands() -> None:
    names = {(prog, command) for prog, command, _ in COMMANDS}
    assert {
        ("balloond", "run"),
        ("balloond", "demo"),
        ("balloond", "check-policy"),
        ("balloond", "policy-schema"),
        ("balloonctl", "list"),
        ("balloonctl", "explain"),
    } <= names


@pytest.mark.parametrize(("prog", "command", "parser"), COMMANDS, ids=IDS)
def test_every_option_has_a_help_text(
    prog: str, command: str, parser: argparse.ArgumentParser
) -> None:
    _explained(prog, command, parser, [a for a in parser._actions if a.option_strings])


@pytest.mark.parametrize(("prog", "command", "parser"), COMMANDS, ids=IDS)
def test_every_argument_has_a_help_text(
    prog: str, command: str, parser: argparse.ArgumentParser
) -> None:
    _explained(prog, command, parser, [a for a in parser._actions if not a.option_strings])


def _explained(
    prog: str, command: str, parser: argparse.ArgumentParser, actions: list[argparse.Action]
) -> None:
    for action in actions:
        what = f"{prog} {command} {'/'.join(action.option_strings) or action.dest}"
        assert action.help and action.help is not argparse.SUPPRESS, f"{what}: no help"
        assert len(action.help.strip()) >= 8, f"{what}: help too short: {action.help!r}"
    text = parser.format_help()
    for action in actions:
        for option in action.option_strings:
            assert option in text, f"{prog} {command}: {option} missing from --help"
