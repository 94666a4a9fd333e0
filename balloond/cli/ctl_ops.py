"""`balloonctl` memory commands, as `xm`/`xl` users know them: balloon (mem-set), maxmem
(mem-max), save, restore, migrate, console. The work is in `balloond.ops`; this module parses,
prints and maps Ctrl-C."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Callable
from typing import Any

from balloond.errors import ConfigError, OperationFailed
from balloond.ops import (
    OpsContext,
    balloon,
    migrate_domain,
    restore_domain,
    save_domain,
    set_maxmem,
)
from balloond.ops.progress import ProgressLine
from balloond.ops.squeeze import SqueezeResult
from balloond.units import format_size, parse_duration, parse_size

SIZE_HELP = "a bare number is MiB, as in xm/xl; units accepted: 512M, 1.5GiB, 2G"


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
        help="libvirt URI, as virsh --connect takes it (default: the daemon config's uri, "
        "else qemu:///system)",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="daemon config to read the URI, reserve and policy folder from (default: "
        "$BALLOOND_CONFIG, else /etc/balloond/balloond.yaml if it exists)",
    )


def _context(args: argparse.Namespace) -> OpsContext:
    return OpsContext.load(config=args.config, connect=args.connect)


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
    p.add_argument("domain")
    p.add_argument("size", type=_size, help=SIZE_HELP)
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
    p.add_argument("domain")
    p.add_argument("size", type=_size, help=SIZE_HELP)

    p = _add(
        subparsers,
        "save",
        cmd_save,
        "Stop a domain and write its state to FILE (mode 0600; never overwrites without --force).",
    )
    p.add_argument("domain")
    p.add_argument("file")
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
    p.add_argument("file")
    p.add_argument("--force", action="store_true", help="skip the free-memory check")

    p = _add(
        subparsers,
        "migrate",
        cmd_migrate,
        "Move a domain to another host. DEST is a "
        "host name (qemu+ssh://DEST/system) or a libvirt URI.",
    )
    p.add_argument("domain")
    p.add_argument("dest")
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
    p.add_argument("domain")  # fmt: skip


def cmd_balloon(args: argparse.Namespace) -> int:
    with _context(args) as ctx:
        result = balloon(ctx, args.domain, args.size, force=args.force, hold_for=args.hold_for)
    until = (
        "until 'balloonctl release " + args.domain + "'"
        if args.hold_for is None
        else f"for {args.hold_for:g} s"
    )
    print(
        f"{args.domain}: balloon {format_size(result.previous)} -> "
        f"{format_size(result.target)} (floor {format_size(result.floor)}), held {until}"
    )
    return 0


def cmd_maxmem(args: argparse.Namespace) -> int:
    with _context(args) as ctx:
        live = set_maxmem(ctx, args.domain, args.size)
    if live:
        print(f"{args.domain}: maxmem {format_size(args.size)} (live)")
    else:
        print(
            f"{args.domain}: maxmem {format_size(args.size)} written to the persistent "
            "config; it applies at the next boot (this hypervisor cannot change it live)"
        )
    return 0


def cmd_save(args: argparse.Namespace) -> int:
    with _context(args) as ctx:
        result = save_domain(
            ctx,
            args.domain,
            args.file,
            force=args.force,
            squeeze_to_floor=args.squeeze,
            squeeze_timeout=args.squeeze_timeout,
        )
    if result.squeezed is not None:
        print(_squeeze_line(args.domain, result.squeezed))
    written = "on the remote host" if result.size is None else format_size(result.size)
    print(
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
    with _context(args) as ctx:
        result = restore_domain(ctx, args.file, force=args.force)
    print(
        f"{result.name}: restored ({format_size(result.memory)}) from {result.path} "
        f"in {result.seconds:.2f} s"
    )
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    line = ProgressLine(sys.stderr)
    with _context(args) as ctx:
        try:
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
        except KeyboardInterrupt:
            line.finish()
            raise OperationFailed(
                f"domain '{args.domain}': migration aborted by Ctrl-C; "
                f"it keeps running on {ctx.uri}"
            ) from None
        finally:
            line.finish()
    result = outcome.result
    downtime = "n/a" if result.downtime is None else f"{result.downtime * 1000:.0f} ms"
    if outcome.squeezed is not None:
        print(_squeeze_line(args.domain, outcome.squeezed))
    print(
        f"{args.domain}: migrated to {outcome.dest_uri} in {outcome.total_seconds:.1f} s "
        f"(migration {result.duration:.1f} s), {format_size(result.bytes_transferred)} "
        f"transferred, downtime {downtime}"
    )
    return 0


def cmd_console(args: argparse.Namespace) -> int:
    ctx = _context(args)
    virsh = shutil.which("virsh")
    if virsh is None:
        raise ConfigError("'virsh' is not installed (Debian: apt-get install libvirt-clients)")
    uri = ctx.uri or ctx.config.uri
    sys.stdout.flush()
    os.execv(virsh, [virsh, "--connect", uri, "console", args.domain])
    return 0  # pragma: no cover - execv does not return
