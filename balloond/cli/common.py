"""Shared CLI plumbing: error-to-exit-code mapping and subcommand dispatch."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from balloond.errors import (
    BackendError,
    BalloondError,
    ConfigError,
    ConnectionLost,
    ControlError,
    Refused,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_REFUSED = 3
EXIT_UNREACHABLE = 4

Handler = Callable[[argparse.Namespace], int]


def exit_code_for(error: BalloondError) -> int:
    if isinstance(error, ConfigError):
        return EXIT_BAD_INPUT
    if isinstance(error, Refused):
        return EXIT_REFUSED
    if isinstance(error, ConnectionLost | ControlError):
        return EXIT_UNREACHABLE
    if isinstance(error, BackendError):
        return EXIT_FAILED
    return EXIT_FAILED


def run_cli(
    prog: str,
    description: str,
    modules: Sequence[ModuleType],
    argv: Sequence[str] | None,
) -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in modules:
        module.register(subparsers)
    args = parser.parse_args(argv)
    func: Handler = args.func
    try:
        return func(args)
    except BalloondError as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return exit_code_for(error)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
