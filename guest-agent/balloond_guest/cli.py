"""`balloond-guest`: run the agent, or show/request this guest's memory target.

balloond-guest [run] [options]      report every 5 s and at once on memory pressure
balloond-guest target               print the current footprint, demand and request
balloond-guest target 512M          Xen: write the balloon target file;
                                    KVM: ask the host (via the running agent)
balloond-guest target auto          drop a manual request
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from balloond_guest import PORT_NAME, VERSION, control, demand, psi, transport, xen
from balloond_guest.agent import Agent, Settings
from balloond_guest.procfs import path_under
from balloond_guest.psi import Trigger
from balloond_guest.sizes import format_size, parse_size


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _limits(text: str) -> tuple[int, int]:
    floor, sep, ceiling = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError("expected FLOOR:CEILING such as 256M:2G, got: %r" % text)
    return _size(floor), _size(ceiling)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", default="/", help="prefix for /proc, /sys and /dev (tests)")
    parser.add_argument(
        "--transport",
        default="auto",
        help="auto (virtio port, else xenstore, else stdout), virtio, "
        "virtio:/dev/vportNpM, xenstore, stdout or unix:PATH",
    )
    parser.add_argument(
        "--control",
        default=control.DEFAULT_PATH,
        help="the agent's local control socket (default %(default)s)",
    )
    parser.add_argument(
        "--buffer",
        type=_size,
        default=demand.DEFAULT_BUFFER,
        help="headroom added to demand (default 64M)",
    )
    parser.add_argument(
        "--buffer-ratio",
        type=float,
        default=demand.DEFAULT_BUFFER_RATIO,
        help="headroom as a share of demand, the larger wins (default 0.10)",
    )
    parser.add_argument(
        "--floor",
        type=_size,
        default=demand.DEFAULT_FLOOR,
        help="never request less than this (default 128M)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="balloond-guest",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version="balloond-guest " + VERSION)
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="report to the host (the default command)")
    _common(run)
    run.add_argument("--interval", type=float, default=5.0, help="seconds between reports (5)")
    run.add_argument(
        "--auto",
        action="store_true",
        help="self-adjust: grow at once, shrink slowly, within the host's limits",
    )
    run.add_argument(
        "--limits",
        type=_limits,
        default=None,
        metavar="FLOOR:CEILING",
        help="limits to self-adjust within until the host sends its own",
    )
    run.add_argument(
        "--psi-stall-us",
        type=int,
        default=psi.DEFAULT_STALL_US,
        help="PSI trigger: stall microseconds per window (150000)",
    )
    run.add_argument(
        "--psi-window-us",
        type=int,
        default=psi.DEFAULT_WINDOW_US,
        help="PSI trigger window in microseconds (1000000; 2 s multiples unprivileged)",
    )
    run.add_argument("--no-control", action="store_true", help="do not open the control socket")
    run.add_argument("--once", action="store_true", help="send one report and exit")
    target = sub.add_parser("target", help="show or request this guest's memory target")
    _common(target)
    target.add_argument("size", nargs="?", help="512M, 2G, ... or 'auto'")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("run", "target", "-h", "--help", "--version"):
        argv.insert(0, "run")
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="balloond-guest: %(message)s",
    )
    try:
        return cmd_target(args) if args.command == "target" else cmd_run(args)
    except (OSError, ValueError) as error:
        print("balloond-guest: %s" % error, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _settings(
    args: argparse.Namespace, auto: bool = False, limits: tuple[int, int] | None = None
) -> Settings:
    return Settings(
        root=args.root,
        interval=getattr(args, "interval", 5.0),
        buffer=args.buffer,
        buffer_ratio=args.buffer_ratio,
        floor=args.floor,
        auto=auto,
        limits=limits,
    )


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings(args, auto=args.auto, limits=args.limits)
    link = transport.choose(args.root, args.transport)
    log = logging.getLogger("balloond-guest")
    if link.name == "stdout" and args.transport == "auto":
        log.warning(
            "no virtio-serial port named %s and no xenstore access: reporting to stdout", PORT_NAME
        )
    log.debug("transport: %s", link.name)
    trigger = server = None
    try:
        if not args.once:
            trigger = _arm_trigger(args)
            server = None if args.no_control else _control_server(args.control)
        agent = Agent(
            settings,
            link,
            trigger=trigger,
            control=server,
            reopen=lambda: transport.choose(args.root, args.transport),
        )
        if args.once:
            agent.tick("once")
            return 0 if agent.sent else 1
        # systemd and init scripts stop us with SIGTERM: unwind so the control socket goes.
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
        agent.run()
        return 0
    finally:
        for thing in (trigger, server, link):
            if thing is not None:
                thing.close()


def _control_server(path: str) -> control.ControlServer | None:
    try:
        return control.ControlServer(path)
    except OSError as error:  # e.g. no /run in a tiny initramfs: reporting matters more
        logging.getLogger("balloond-guest").warning(
            "no control socket at %s (%s): 'balloond-guest target SIZE' cannot reach this agent",
            path,
            error,
        )
        return None


def _arm_trigger(args: argparse.Namespace) -> Trigger | None:
    try:
        return psi.psi_trigger(
            path_under(args.root, psi.PRESSURE_FILE), args.psi_stall_us, args.psi_window_us
        )
    except OSError as error:
        logging.getLogger("balloond-guest").info(
            "no PSI trigger (%s): pressure reaches the host with the next periodic report", error
        )
        return None


def cmd_target(args: argparse.Namespace) -> int:
    if args.size is None:
        print(footprint_text(_settings(args)))
        return 0
    size = None if args.size == "auto" else parse_size(args.size, default_unit="m")
    if size is not None and size < args.floor:
        print(
            "balloond-guest: target %s is below the safe floor %s (--floor)"
            % (format_size(size), format_size(args.floor)),
            file=sys.stderr,
        )
        return 2
    if xen.target_file(args.root) is not None:
        return _xen_target(args, size)
    return _request_from_host(args, size)


def _xen_target(args: argparse.Namespace, size: int | None) -> int:
    """Xen: the guest moves its own balloon (the target file), and the running agent reports
    the size as this guest's request, so that balloond keeps it (within the policy's floor
    and ceiling) instead of setting its own target back at the next tick."""
    if size is not None:
        path = xen.write_target(args.root, size)
        print("xen: target %s written to %s" % (format_size(size), path))
    try:
        answer = control.send_request(args.control, size)
    except OSError:
        answer = None
    if size is None:
        if answer != "ok":
            print("balloond-guest: 'auto' needs a running agent on Xen", file=sys.stderr)
            return 2
        print("the running agent no longer reports a request to the host")
    elif answer == "ok":
        print("the running agent reports it to the host as this guest's request")
    else:
        print("no running agent: the host is not told (it may set its own target back)")
    return 0


def _request_from_host(args: argparse.Namespace, size: int | None) -> int:
    what = "automatic" if size is None else format_size(size)
    try:
        answer = control.send_request(args.control, size)
        print("asked the running agent to request %s from the host: %s" % (what, answer))
        return 0 if answer == "ok" else 1
    except OSError:
        pass  # no agent running: send one report ourselves
    link = transport.choose(args.root, args.transport)
    if link.name == "stdout" and args.transport == "auto":
        # No channel to the host: printing the request would look like success.
        link.close()
        print(
            "balloond-guest: no virtio-serial port named %s and no xenstore access: the "
            "request for %s cannot reach the host (is the channel attached? "
            "--transport stdout prints it instead)" % (PORT_NAME, what),
            file=sys.stderr,
        )
        return 1
    try:
        agent = Agent(_settings(args), link)
        agent.set_request(size)
        agent.tick("request")
    finally:
        link.close()
    if not agent.sent:
        print("balloond-guest: the %s transport dropped the request" % link.name, file=sys.stderr)
        return 1
    if link.name != "stdout":
        print("requested %s from the host over %s" % (what, link.name))
    return 0


def footprint_text(settings: Settings) -> str:
    sample = demand.take_sample(settings.root, 0.0)
    need = demand.demand_of(sample.meminfo)
    wanted = demand.wanted_target(need, settings.buffer, settings.buffer_ratio, settings.floor)
    lines = ["footprint: %s (MemTotal)" % format_size(sample.meminfo.get("MemTotal"))]
    found = xen.read_target(settings.root)
    if found is not None:
        path, target, current = found
        extra = "" if current is None else ", current allocation %s" % format_size(current)
        lines.append("xen target: %s (%s%s)" % (format_size(target), path, extra))
    lines.append("demand: %s; would request %s" % (format_size(need), format_size(wanted)))
    return "\n".join(lines)
