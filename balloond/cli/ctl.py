"""`balloonctl`: operator commands, as an `xm`/`xl` user knows them."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

from balloond.cli.common import build_parser, run_cli

PROG = "balloonctl"
DESCRIPTION = "Operate balloond and the domains it balances."
# Each module registers its own subcommands; see balloond/cli/__init__.py.
_MODULES = (
    "balloond.cli.ctl_view",  # list, explain, status, holds, release
    "balloond.cli.ctl_ops",  # balloon/mem-set, maxmem/mem-max, save, restore, migrate, console
    "balloond.cli.ctl_agent",  # agent-snippet
    "balloond.cli.ctl_top",  # top
)


def parser() -> argparse.ArgumentParser:
    """The whole `balloonctl` command line (the man page and completion read it too)."""
    modules = [importlib.import_module(n) for n in _MODULES]
    return build_parser(PROG, DESCRIPTION, modules, leading_options=True)


def main(argv: Sequence[str] | None = None) -> int:
    modules = [importlib.import_module(name) for name in _MODULES]
    return run_cli(PROG, DESCRIPTION, modules, argv, leading_options=True)
