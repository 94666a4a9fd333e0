"""`balloond`: the daemon (`run`, `demo`), `check-policy`, and `bench`."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

from balloond.cli.common import build_parser, run_cli

PROG = "balloond"
DESCRIPTION = "Policy-driven memory balancer for Xen and KVM guests."
# Each module registers its own subcommands; see balloond/cli/__init__.py.
_MODULES = ("balloond.cli.daemon_cmds", "balloond.cli.policy_cmds", "balloond.cli.bench_cmds")


def parser() -> argparse.ArgumentParser:
    """The whole `balloond` command line (the man page and completion read it too)."""
    return build_parser(PROG, DESCRIPTION, [importlib.import_module(n) for n in _MODULES])


def main(argv: Sequence[str] | None = None) -> int:
    modules = [importlib.import_module(name) for name in _MODULES]
    return run_cli(PROG, DESCRIPTION, modules, argv)
