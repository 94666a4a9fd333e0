"""Shared CLI plumbing: error-to-exit-code mapping and subcommand dispatch."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from balloond import __version__
from balloond.cli.printable import printable
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

# What each exit status means, for --help's epilog and the man pages (one source).
EXIT_STATUS = (
    (EXIT_OK, "success"),
    (EXIT_FAILED, "the operation failed (the hypervisor refused or lost a change)"),
    (EXIT_BAD_INPUT, "bad input: a wrong option, policy or config (every error is printed)"),
    (EXIT_REFUSED, "refused: the change would break a rule (a floor, a hold, the reserve)"),
    (EXIT_UNREACHABLE, "the daemon or the hypervisor could not be reached"),
)

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


# Where the URI comes from when --connect is not given (balloond.config.effective_uri).
URI_DEFAULT = "default: $LIBVIRT_DEFAULT_URI, else the config's `uri`, qemu:///system"

# Options a virsh or xl user writes before the command (`virsh -c URI list`): `balloonctl`
# takes them there too, for every command that has them; written after the command as well,
# that one wins. (flags, the command's dest, metavar, help)
LEADING_OPTIONS = (
    (("-c", "--connect"), "connect", "URI", "hypervisor URI, as `virsh -c URI COMMAND` takes it"),
    (("--config",), "config", "FILE", "the daemon config to read defaults from"),
    (("--socket",), "socket", "PATH", "the daemon's control socket"),
)


def exit_status_text() -> str:
    lines = [f"  {code}  {meaning}" for code, meaning in EXIT_STATUS]
    return "exit status:\n" + "\n".join(lines)


def build_parser(
    prog: str,
    description: str,
    modules: Sequence[ModuleType],
    *,
    leading_options: bool = False,
) -> argparse.ArgumentParser:
    """The whole command line of `prog`: --help, the man pages and the shell completion
    are all read from this one parser (balloond.cli.docgen)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=exit_status_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"{prog} {__version__}", help="print the version"
    )
    if leading_options:
        for flags, dest, metavar, text in LEADING_OPTIONS:
            parser.add_argument(
                *flags,
                dest="leading_" + dest,
                metavar=metavar,
                help=text + " (the same option after COMMAND wins)",
            )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in modules:
        module.register(subparsers)
    return parser


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parser of each command, by name, in the order they were registered."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def run_cli(
    prog: str,
    description: str,
    modules: Sequence[ModuleType],
    argv: Sequence[str] | None,
    *,
    leading_options: bool = False,
) -> int:
    parser = build_parser(prog, description, modules, leading_options=leading_options)
    args = parser.parse_args(argv)
    if leading_options:
        _apply_leading(parser, subcommands(parser)[args.command], args)
    func: Handler = args.func
    try:
        return func(args)
    except BalloondError as error:
        print(f"{prog}: {printable(str(error), lines=True)}", file=sys.stderr)
        return exit_code_for(error)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def _apply_leading(
    parser: argparse.ArgumentParser, command: argparse.ArgumentParser, args: argparse.Namespace
) -> None:
    """Hand the options given before the command to the command, unless it was given the
    same option itself; one it does not take is an error, not silently dropped."""
    for flags, dest, _, _ in LEADING_OPTIONS:
        value = getattr(args, "leading_" + dest)
        if value is None:
            continue
        if not hasattr(args, dest):
            parser.error(f"{'/'.join(flags)} does not apply to '{args.command}'")
        if getattr(args, dest) == command.get_default(dest):
            setattr(args, dest, value)
