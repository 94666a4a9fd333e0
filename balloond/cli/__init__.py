"""Thin command-line front ends. Each command module exposes
`register(subparsers) -> None`, adding its subcommand(s) with `set_defaults(func=...)`,
where `func(args: argparse.Namespace) -> int` returns the exit code. `balloond.cli.common`
maps balloond errors to one clear line on stderr and an exit code:
0 ok, 1 operation failed, 2 bad input/config, 3 refused, 4 daemon/backend unreachable.
"""
