"""A daemon view over a simulated host, for tests, the scrape benchmark and trying the
Grafana dashboard without a hypervisor:

    python -m balloond.metrics.demo --port 9877          # serve a simulated host's metrics

It runs a few ticks of the real decision core against `balloond.backend.simulated` (applying
the actions to the simulated host) and freezes the result in a `StaticView`. It is not the
daemon: no scheduler, no policy files, no control socket.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace

from balloond.backend.simulated import SimulatedHost, open_simulated
from balloond.core.decide import decide
from balloond.core.state import ControllerState
from balloond.errors import BackendError
from balloond.metrics.server import serve
from balloond.metrics.static import StaticView
from balloond.model import Decision, GuestReport, Snapshot
from balloond.policy.model import DEFAULT_POLICY
from balloond.telemetry import Telemetry
from balloond.units import MiB


def simulated_view(
    uri: str = "sim://default?clock=manual",
    *,
    ticks: int = 3,
    interval: float = 10.0,
    reserve: int = 512 * MiB,
) -> tuple[StaticView, SimulatedHost]:
    """Run `ticks` ticks `interval` simulated seconds apart; return the frozen view and the
    host (whose `now()` is the clock the view's timestamps are on)."""
    host = open_simulated(uri)
    telemetry = Telemetry(started_at=host.now())
    telemetry.record_connection(True, host.now())
    telemetry.record_policy_load(None)
    state = ControllerState.empty()
    snapshot: Snapshot | None = None
    decision: Decision | None = None
    for _ in range(ticks):
        host.advance(interval)
        started = time.perf_counter()
        snapshot = Snapshot(host.now(), host.host(), tuple(host.domains()))
        reports = host.reports()
        for uuid in reports:
            telemetry.record_report(uuid)
        snapshot = _with_reports(snapshot, reports)
        decision, state = decide(
            snapshot,
            lambda _dom: DEFAULT_POLICY,
            state,
            reserve=reserve,
            holds=host.holds(),
            now=host.now(),
        )
        _apply(host, decision, telemetry)
        telemetry.record_tick(time.perf_counter() - started, True, host.now())
    stuck = {
        uuid: until
        for uuid, memo in state.domains.items()
        if (until := memo.stuck_until) is not None and until > host.now()
    }
    view = StaticView(
        uri=host.uri,
        reserve=reserve,
        snapshot=snapshot,
        decision=decision,
        counters=telemetry,
        held=dict(host.holds()),
        stuck_until=stuck,
        last_reports=dict(host.reports()),
    )
    return view, host


def _with_reports(snapshot: Snapshot, reports: Mapping[str, GuestReport]) -> Snapshot:
    """The daemon attaches each domain's last report to its snapshot; so do we."""
    domains = tuple(replace(d, report=reports.get(d.uuid, d.report)) for d in snapshot.domains)
    return replace(snapshot, domains=domains)


def _apply(host: SimulatedHost, decision: Decision, telemetry: Telemetry) -> None:
    applied: set[str] = set()
    for action in decision.actions:
        try:
            host.set_target(action.name, action.target)
        except BackendError as error:
            telemetry.record_failure(type(error).__name__)
        else:
            applied.add(action.uuid)
    telemetry.record_applied(decision, applied)


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
