"""`balloonctl`: operator commands, as an `xm`/`xl` user knows them."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from balloond.cli.common import run_cli

# Each module registers its own subcommands; see balloond/cli/__init__.py.
_MODULES = (
    "balloond.cli.ctl_view",  # list, explain, status, holds, release
    "balloond.cli.ctl_ops",  # balloon/mem-set, maxmem/mem-max, save, restore, migrate, console
    "balloond.cli.ctl_agent",  # agent-snippet
    "balloond.cli.ctl_top",  # top
)


def main(argv: Sequence[str] | None = None) -> int:
    modules = [importlib.import_module(name) for name in _MODULES]
    return run_cli(
        "balloonctl",
        "Operate balloond and the domains it balances.",
        modules,
        argv,
        leading_options=True,
    )
