"""`balloonctl` memory commands, as `xm`/`xl` users know them: balloon (mem-set), maxmem
(mem-max), save, restore, migrate, console. The work is in `balloond.ops`; this module parses,
prints and maps Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from balloond.cli.common import URI_DEFAULT
from balloond.cli.printable import printable
from balloond.errors import BalloondError, ConfigError, DomainNotFound, OperationFailed
from balloond.ops import (
    OpsContext,
    balloon,
    migrate_domain,
    restore_domain,
    save_domain,
    set_maxmem,
)
from balloond.ops.context import find_domain
from balloond.ops.inprocess import daemon_host
from balloond.ops.progress import ProgressLine
from balloond.ops.reporting import Outcome, daemon_socket, reported
from balloond.ops.squeeze import SqueezeResult
from balloond.units import format_size, parse_duration, parse_size

SIZE_HELP = "a bare number is MiB, as in xm/xl; units accepted: 512M, 1.5GiB, 2G"
DOMAIN_HELP = "the domain's name, as virsh list shows it"


def _size(text: str) -> int:
    try:
        return parse_size(text, default_unit="MiB")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_duration(text: str) -> float:
    seconds = _duration(text)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"duration must be positive, got: {text!r}")
    return seconds


def _milliseconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected milliseconds, got: {text!r}") from None
    if not 0 < value <= 3_600_000:
        raise argparse.ArgumentTypeError(f"max downtime must be 1..3600000 ms, got: {text!r}")
    return value / 1000.0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--connect",
        metavar="URI",
        help=f"libvirt URI, as virsh --connect takes it ({URI_DEFAULT})",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="daemon config to read the URI, reserve and policy folder from (default: "
        "$BALLOOND_CONFIG, else /etc/balloond/balloond.yaml if it exists)",
    )


def _say(text: str, file: TextIO | None = None) -> None:
    """Print a line that may carry names from elsewhere (a domain restored from an image, a
    warning naming a domain): control characters are shown, not sent to the terminal."""
    print(printable(text), file=file)


def _outside_only(ctx: OpsContext, operation: str) -> None:
    """Refuse an operation on a host that lives inside the daemon's process: done on
    balloonctl's own copy of it, it would change nothing anyone sees."""
    host = daemon_host(ctx)
    if host is not None:
        raise host.refuse(operation)


def _context(args: argparse.Namespace) -> OpsContext:
    return OpsContext.load(config=args.config, connect=args.connect)


@contextmanager
def _operation(ctx: OpsContext, operation: str) -> Iterator[Outcome]:
    """Run one operation: report how it ended to a running daemon (its metrics count
    balloonctl's operations), and turn a stray OS error into one clear line."""
    socket = daemon_socket(ctx.config.uri, ctx.config.control_socket, ctx.uri)
    with _warnings_after_success(), reported(socket, operation) as outcome:
        try:
            yield outcome
        except OSError as exc:
            raise OperationFailed(f"{operation}: {exc}") from exc


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextmanager
def _warnings_after_success() -> Iterator[None]:
    """balloond's own warnings (an abort under way, a hold that could not be removed) would
    otherwise reach stderr through logging's last resort, one line each: after a success
    they follow the result; a failure stays one line."""
    logger = logging.getLogger("balloond")
    collect = _Collect()
    logger.addHandler(collect)
    try:
        yield
    finally:
        logger.removeHandler(collect)
    for line in collect.lines:
        _say(f"balloonctl: warning: {line}", file=sys.stderr)


def _add(
    subparsers: argparse._SubParsersAction[Any],
    name: str,
    func: Callable[[argparse.Namespace], int],
    help_text: str,
    aliases: tuple[str, ...] = (),
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, aliases=list(aliases), help=help_text, description=help_text
    )
    parser.set_defaults(func=func)
    _common(parser)
    return parser


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = _add(
        subparsers,
        "balloon",
        cmd_balloon,
        "Set a domain's balloon target and hold it "
        "there (the daemon leaves it alone until the hold ends).",
        ("mem-set",),
    )
    p.add_argument("domain", metavar="DOMAIN", help=DOMAIN_HELP)
    p.add_argument("size", metavar="SIZE", type=_size, help="the new balloon target; " + SIZE_HELP)
    p.add_argument("--force", action="store_true", help="allow a target below the policy floor")
    p.add_argument(
        "--for",
        dest="hold_for",
        type=_positive_duration,
        metavar="DURATION",
        help="hold the target this long ('1h', '30m'); default: until 'balloonctl release DOMAIN'",
    )

    p = _add(
        subparsers,
        "maxmem",
        cmd_maxmem,
        "Set a domain's maximum memory: live where the "
        "hypervisor allows it (Xen), otherwise from its next boot.",
        ("mem-max",),
    )
    p.add_argument("domain", metavar="DOMAIN", help=DOMAIN_HELP)
    p.add_argument("size", metavar="SIZE", type=_size, help="the new maximum; " + SIZE_HELP)

    p = _add(
        subparsers,
        "save",
        cmd_save,
        "Stop a domain and write its state to FILE (mode 0600; never overwrites without --force).",
    )
    p.add_argument("domain", metavar="DOMAIN", help=DOMAIN_HELP)
    p.add_argument("file", metavar="FILE", help="the image to write (it holds guest memory)")
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")
    p.add_argument(
        "--squeeze",
        action="store_true",
        help="first balloon the guest down to its policy floor (smaller image)",
    )
    p.add_argument(
        "--squeeze-timeout",
        type=_duration,
        default=60.0,
        metavar="DURATION",
        help="how long to wait for the guest to reach its floor (default 60s)",
    )

    p = _add(
        subparsers,
        "restore",
        cmd_restore,
        "Restore a saved domain, after checking the "
        "host has room for it (its memory plus the host reserve).",
    )
    p.add_argument("file", metavar="FILE", help="an image written by 'balloonctl save'")
    p.add_argument("--force", action="store_true", help="skip the free-memory check")

    p = _add(
        subparsers,
        "migrate",
        cmd_migrate,
        "Move a domain to another host. DEST is a "
        "host name (qemu+ssh://DEST/system) or a libvirt URI.",
    )
    p.add_argument("domain", metavar="DOMAIN", help=DOMAIN_HELP)
    p.add_argument("dest", metavar="DEST", help="host name (qemu+ssh://DEST/system) or libvirt URI")
    p.add_argument(
        "--live", action="store_true", help="keep the guest running while its memory is copied"
    )
    p.add_argument(
        "--squeeze",
        action="store_true",
        help="first balloon the guest toward its policy floor (fewer pages to send)",
    )
    p.add_argument(
        "--squeeze-timeout",
        type=_duration,
        default=60.0,
        metavar="DURATION",
        help="how long to wait for the guest to reach its floor (default 60s)",
    )
    p.add_argument(
        "--max-downtime",
        type=_milliseconds,
        metavar="MS",
        help="longest pause of the guest at the switch-over, in milliseconds",
    )
    p.add_argument(
        "--migrate-uri",
        metavar="URI",
        help="where the memory stream goes (e.g. tcp://10.0.0.2), if not DEST",
    )
    p.add_argument("--force", action="store_true", help="skip the destination free-memory check")

    p = _add(
        subparsers,
        "console",
        cmd_console,
        "Attach to a domain's console (hands over to 'virsh console' with the right URI).",
    )
    p.add_argument("domain", metavar="DOMAIN", help=DOMAIN_HELP)


def cmd_balloon(args: argparse.Namespace) -> int:
    with _context(args) as ctx, _operation(ctx, "balloon"):
        host = daemon_host(ctx)
        if host is not None:  # the host lives inside the daemon: it does the balloon
            result = host.balloon(args.domain, args.size, force=args.force, hold_for=args.hold_for)
        else:
            result = balloon(ctx, args.domain, args.size, force=args.force, hold_for=args.hold_for)
    until = (
        "until 'balloonctl release " + args.domain + "'"
        if result.hold.until is None or args.hold_for is None
        else f"for {duration_text(args.hold_for)} (until "
        f"{time.strftime('%H:%M:%S', time.localtime(result.hold.until))})"
    )
    _say(
        f"{args.domain}: balloon {format_size(result.previous)} -> "
        f"{format_size(result.target)} (floor {format_size(result.floor)}), held {until}"
    )
    return 0


def duration_text(seconds: float) -> str:
    """'1h', '1h30m', '90s': as an operator would have typed it."""
    whole = int(seconds)
    if whole != seconds or whole < 60:
        return f"{seconds:g}s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{secs}s" if secs else "",
    ]
    return "".join(parts)


def cmd_maxmem(args: argparse.Namespace) -> int:
    with _context(args) as ctx, _operation(ctx, "maxmem"):
        _outside_only(ctx, "maxmem")
        live = set_maxmem(ctx, args.domain, args.size)
    if live:
        _say(f"{args.domain}: maxmem {format_size(args.size)} (live)")
    else:
        _say(
            f"{args.domain}: maxmem {format_size(args.size)} written to the persistent "
            "config; it applies at the next boot (this hypervisor cannot change it live)"
        )
    return 0


def cmd_save(args: argparse.Namespace) -> int:
    with _context(args) as ctx, _operation(ctx, "save"):
        _outside_only(ctx, "save")
        result = save_domain(
            ctx,
            args.domain,
            args.file,
            force=args.force,
            squeeze_to_floor=args.squeeze,
            squeeze_timeout=args.squeeze_timeout,
        )
    if result.squeezed is not None:
        _say(_squeeze_line(args.domain, result.squeezed))
    written = "on the remote host" if result.size is None else format_size(result.size)
    _say(
        f"{args.domain}: saved ({format_size(result.memory)} guest) to {result.path}: "
        f"{written} in {result.seconds:.2f} s"
    )
    return 0


def _squeeze_line(name: str, sq: SqueezeResult) -> str:
    if sq.seconds == 0.0 and sq.complete:
        return f"{name}: already at {format_size(sq.before)}, its floor is {format_size(sq.target)}"
    note = "" if sq.complete else f" (stopped short of its floor {format_size(sq.target)})"
    return (
        f"{name}: squeezed {format_size(sq.before)} -> {format_size(sq.reached)} "
        f"in {sq.seconds:.1f} s{note}"
    )


def cmd_restore(args: argparse.Namespace) -> int:
    with _context(args) as ctx, _operation(ctx, "restore"):
        _outside_only(ctx, "restore")
        result = restore_domain(ctx, args.file, force=args.force)
    _say(
        f"{result.name}: restored ({format_size(result.memory)}) from {result.path} "
        f"in {result.seconds:.2f} s"
    )
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    line = ProgressLine(sys.stderr)
    with _context(args) as ctx:
        try:
            with _operation(ctx, "migrate") as figures:
                _outside_only(ctx, "migrate")
                outcome = migrate_domain(
                    ctx,
                    args.domain,
                    args.dest,
                    live=args.live,
                    squeeze_to_floor=args.squeeze,
                    squeeze_timeout=args.squeeze_timeout,
                    max_downtime=args.max_downtime,
                    progress=line,
                    force=args.force,
                    data_uri=args.migrate_uri,
                )
                figures.duration = outcome.result.duration
                figures.downtime = outcome.result.downtime
        except KeyboardInterrupt:
            raise OperationFailed(_interrupted(ctx, args.domain)) from None
        finally:
            line.finish()  # also before the Ctrl-C line: run_cli prints it after this
    result = outcome.result
    downtime = "n/a" if result.downtime is None else f"{result.downtime * 1000:.0f} ms"
    if outcome.squeezed is not None:
        _say(_squeeze_line(args.domain, outcome.squeezed))
    _say(
        f"{args.domain}: migrated to {outcome.dest_uri} in {outcome.total_seconds:.1f} s "
        f"(migration {result.duration:.1f} s), {format_size(result.bytes_transferred)} "
        f"transferred, downtime {downtime}"
    )
    return 0


def _interrupted(ctx: OpsContext, name: str) -> str:
    """The one line after Ctrl-C, saying where the domain is now (the migration was
    aborted; libvirt resumes the guest on the source)."""
    where = ctx.uri or ctx.config.uri
    try:
        state = find_domain(ctx.backend, name).state.value
    except DomainNotFound:
        return f"domain '{name}': migration interrupted by Ctrl-C, but it has left {where}"
    except BalloondError as exc:
        return f"domain '{name}': migration interrupted by Ctrl-C; its state is unknown: {exc}"
    return f"domain '{name}': migration aborted by Ctrl-C; it is still on {where} ({state})"


def cmd_console(args: argparse.Namespace) -> int:
    virsh = shutil.which("virsh")
    if virsh is None:
        raise ConfigError("'virsh' is not installed (Debian: apt-get install libvirt-clients)")
    with _context(args) as ctx:  # a missing or stopped domain is one line here, not virsh's
        dom = find_domain(ctx.backend, args.domain)
        uri = ctx.uri or ctx.config.uri
    if dom.id is None:
        raise OperationFailed(f"domain '{args.domain}' is not running on {uri}: no console")
    sys.stdout.flush()
    os.execv(virsh, [virsh, "--connect", uri, "console", args.domain])
    return 0  # pragma: no cover - execv does not return
