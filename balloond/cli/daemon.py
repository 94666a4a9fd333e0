"""`balloond`: the daemon (`run`, `demo`), `check-policy`, and `bench`."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from balloond.cli.common import run_cli

# Each module registers its own subcommands; see balloond/cli/__init__.py.
_MODULES = ("balloond.cli.daemon_cmds", "balloond.cli.policy_cmds", "balloond.cli.bench_cmds")


def main(argv: Sequence[str] | None = None) -> int:
    modules = [importlib.import_module(name) for name in _MODULES]
    return run_cli(
        "balloond", "Policy-driven memory balancer for Xen and KVM guests.", modules, argv
    )
