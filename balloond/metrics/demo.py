"""A daemon view over a simulated host, for tests, the scrape benchmark and trying the
Grafana dashboard without a hypervisor:

    python -m balloond.metrics.demo --port 9877          # serve a simulated host's metrics

It runs a few of the daemon's own ticks (balloond.daemon.assemble.simulated_daemon) on
`balloond.backend.simulated`, with the built-in default policy, and freezes what the daemon
then shows in a `StaticView`. Not `balloond demo` (the daemon running on, with its
scheduler, policy files and control socket): this serves one moment of it.
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Sequence

from balloond.backend.simulated import SimulatedHost, open_simulated
from balloond.daemon.assemble import simulated_daemon
from balloond.daemon.loop import LoopSettings
from balloond.metrics.server import serve
from balloond.metrics.static import StaticView
from balloond.policy.model import Amount
from balloond.units import MiB


def simulated_view(
    uri: str = "sim://default?clock=manual",
    *,
    ticks: int = 3,
    interval: float = 10.0,
    reserve: int = 512 * MiB,
) -> tuple[StaticView, SimulatedHost]:
    """Run `ticks` daemon ticks `interval` simulated seconds apart; return the frozen view
    and the host (whose `now()` is the clock the view's timestamps are on)."""
    host = open_simulated(uri)
    daemon = simulated_daemon(host, LoopSettings(interval=interval, reserve=Amount(size=reserve)))
    for _ in range(ticks):
        host.advance(interval)
        daemon.tick()
    return StaticView.of(daemon), host


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m balloond.metrics.demo",
        description="Serve the metrics of a simulated host (for trying the dashboard).",
    )
    parser.add_argument(
        "--uri",
        default="sim://default?clock=manual",
        help="simulated host URI (default: %(default)s)",
    )
    parser.add_argument("--address", default="127.0.0.1", help="listen address (%(default)s)")
    parser.add_argument("--port", type=int, default=9877, help="listen port (%(default)s)")
    args = parser.parse_args(argv)
    view, host = simulated_view(args.uri)
    server = serve(view, args.address, args.port, clock=host.now)
    print(f"serving a simulated host's metrics on {server.url}; Ctrl-C stops")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
