"""`balloond run` (the daemon) and `balloond demo` (the daemon on the simulated host)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from balloond import logs
from balloond.backend.simulated import SimulatedHost, open_simulated
from balloond.cli.common import URI_DEFAULT
from balloond.daemon import heap
from balloond.daemon.advice import no_data_advice
from balloond.daemon.assemble import build_daemon, source_tree_policies
from balloond.daemon.commands import handlers
from balloond.daemon.control import ControlServer
from balloond.daemon.loop import Daemon, LoopSettings
from balloond.daemon.runconfig import RunConfig, option_duration
from balloond.daemon.scheduler import Runner
from balloond.errors import ConfigError
from balloond.logs import LEVELS
from balloond.metrics import DEFAULT_PORT, serve
from balloond.policy.model import Amount
from balloond.units import format_size

DEMO_URI = "sim://default"


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    _register_run(subparsers)
    _register_demo(subparsers)


def _register_run(subparsers: argparse._SubParsersAction[Any]) -> None:
    run = subparsers.add_parser(
        "run",
        help="run the daemon (in the foreground; systemd runs it as a service)",
        description="Balance the memory of every domain on a hypervisor host, tick after "
        "tick: collect each domain's size and pressure, decide targets with the policies, "
        "set them, export metrics. SIGHUP (or any change in the policy folder) reloads the "
        "policies; SIGTERM/SIGINT stop gracefully.",
    )
    run.add_argument(
        "--config",
        metavar="FILE",
        help="daemon config (default: $BALLOOND_CONFIG, else "
        "/etc/balloond/balloond.yaml if it exists, else built-in defaults)",
    )
    run.add_argument(
        "--connect",
        metavar="URI",
        help=f"hypervisor URI, as virsh takes it ({URI_DEFAULT}); sim://default is the "
        "simulated host",
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="decide and print what would change, but change nothing",
    )
    run.add_argument(
        "--policy-dir",
        metavar="DIR",
        help="folder of YAML policy files (default: the config's `policy_dir`)",
    )
    run.add_argument(
        "--interval",
        metavar="DUR",
        help="time between ticks, e.g. 10s (default: the config's `interval`, "
        "2s unless set); pressure reported by a guest agent also ticks early",
    )
    run.add_argument(
        "--log-level",
        choices=LEVELS,
        help="how much to log (default: the config's `log_level`, info: each decision, "
        "routine shrinks summed up once a minute; debug: every one)",
    )
    run.add_argument(
        "--once",
        action="store_true",
        help="run a single tick, print its decision and exit (no socket, no metrics server)",
    )
    run.set_defaults(func=cmd_run)


def _register_demo(subparsers: argparse._SubParsersAction[Any]) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="watch the daemon balance a simulated host (no hypervisor needed)",
        description="Run the real daemon loop on the simulated host sim://default (six "
        "guests with varied workloads on a 16 GiB host), print what it decides, and serve "
        "metrics, until Ctrl-C or --duration. Uses the shipped policies/ folder when run "
        "from the source tree, else the built-in default policy.",
    )
    demo.add_argument(
        "--duration",
        metavar="DUR",
        help="stop by itself after this long, e.g. 30s (default: run until Ctrl-C)",
    )
    demo.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"metrics port on 127.0.0.1 (default: {DEFAULT_PORT}; 0 picks a free one)",
    )
    demo.add_argument(
        "--speed",
        type=float,
        default=10.0,
        help="simulated seconds per real second (default: 10, so the "
        "ten-minute workload cycle shows within a minute)",
    )
    demo.add_argument(
        "--interval",
        metavar="DUR",
        default="1s",
        help="time between ticks, in real time (default: 1s)",
    )
    demo.add_argument(
        "--policy-dir",
        metavar="DIR",
        help="folder of YAML policies (default: policies/ of the source tree, "
        "else the built-in default)",
    )
    demo.add_argument(
        "--socket",
        metavar="PATH",
        help="control socket for balloonctl (default: a fresh temporary folder, printed at start)",
    )
    demo.set_defaults(func=cmd_demo)


# -- balloond demo ------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    duration = option_duration(args.duration, "--duration") if args.duration else None
    interval = option_duration(args.interval, "--interval")
    if interval <= 0:
        raise ConfigError(f"--interval must be positive, got: {args.interval!r}")
    logs.setup(timestamps=True)
    host = open_simulated(f"{DEMO_URI}?speed={args.speed:g}")
    policy_dir = args.policy_dir or source_tree_policies()
    # The demo is there to watch decisions: every change on its own line.
    settings = LoopSettings(
        interval=interval, reserve=Amount(size=host.scenario.host.reserve), routine_summary=0.0
    )
    daemon = build_daemon(DEMO_URI, settings, policy_dir, connect=lambda: host)
    socket_dir = None if args.socket else tempfile.mkdtemp(prefix="balloond-demo-")
    socket_path = Path(args.socket) if args.socket else Path(socket_dir or ".") / "control.sock"
    extra = _extra_status(daemon, policy_dir, socket_path)
    with contextlib.ExitStack() as opened:  # closed in reverse, also when one fails to open
        if socket_dir is not None:
            opened.callback(shutil.rmtree, socket_dir, ignore_errors=True)
        opened.callback(ControlServer(socket_path, handlers(daemon, extra)).close)
        metrics = opened.enter_context(serve(daemon, "127.0.0.1", args.port))
        _print_banner(daemon, host, policy_dir, metrics.url, socket_path, args.speed)
        _run_until_stopped(Runner(daemon), duration)
    _print_summary(daemon)
    return 0


def _print_banner(
    daemon: Daemon,
    host: SimulatedHost,
    policy_dir: Path | str | None,
    url: str,
    socket_path: Path,
    speed: float,
) -> None:
    scenario = host.scenario
    print(f"balloond demo: {scenario.description or scenario.name} ({DEMO_URI}, {speed:g}x speed)")
    print(
        f"  policies: {policy_dir or 'built-in default'}; reserve "
        f"{format_size(daemon.reserve)}; a tick every {daemon.settings.interval:g} s"
    )
    print(f"  metrics:  {url}")
    print(f"  control:  balloonctl list --socket {socket_path}")
    print("  Ctrl-C stops.", flush=True)


def _print_summary(daemon: Daemon) -> None:
    telemetry = daemon.telemetry()
    print(
        f"balloond: stopped after {telemetry.ticks} ticks, "
        f"{sum(telemetry.adjustments.values())} adjustments",
        flush=True,
    )


def _run_until_stopped(runner: Runner, duration: float | None) -> None:
    """Tick until a signal (or `duration`), then stop (a running tick finishes first)."""
    heap.settle()
    runner.install_signal_handlers()
    runner.start()
    try:
        runner.wait(duration)
    finally:
        runner.shutdown()


def _extra_status(
    daemon: Daemon, policy_dir: Path | str | None, socket_path: Path
) -> Callable[[], dict[str, Any]]:
    def extra() -> dict[str, Any]:
        return {
            "dry_run": daemon.settings.dry_run,
            "interval": daemon.settings.interval,
            "policy_dir": None if policy_dir is None else str(policy_dir),
            "control_socket": str(socket_path),
        }

    return extra


# -- balloond run -------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    config = RunConfig.from_args(args)
    logs.setup(config.log_level)
    daemon = build_daemon(
        config.uri,
        config.settings,
        config.policy_dir,
        state_dir=config.state_dir,
        policy_dir_required=args.policy_dir is not None,
    )
    if args.once:
        return _run_once(daemon)
    extra = _extra_status(daemon, config.policy_dir, config.control_socket)
    log = logging.getLogger("balloond.daemon")
    with contextlib.ExitStack() as opened:  # closed in reverse, also when one fails to open
        opened.callback(ControlServer(config.control_socket, handlers(daemon, extra)).close)
        metrics = opened.enter_context(config.serve_metrics(daemon))
        log.info("metrics on %s", metrics.url)
        log.info(
            "balloond on %s: a tick every %g s%s",
            config.uri,
            config.settings.interval,
            " (dry run: nothing will change)" if config.settings.dry_run else "",
        )
        _run_until_stopped(Runner(daemon, after_tick=config.after_tick_hooks(daemon)), None)
    return 0


def _run_once(daemon: Daemon) -> int:
    from balloond.errors import ConnectionLost

    try:
        daemon.connect()  # its error, not "retrying": there is no retry in a one-shot run
        decision = daemon.tick()
        if decision is None:
            raise ConnectionLost(f"{daemon.uri}: the host's domains could not be read")
        if not decision.actions:
            print("nothing to change")  # each change was logged as it was decided
        snapshot = daemon.last_snapshot()
        if snapshot is not None:
            for line in no_data_advice(
                snapshot, decision, daemon.uri, daemon.stats_period, dry_run=daemon.settings.dry_run
            ):
                print(line)
    finally:
        daemon.close()
    return 0
