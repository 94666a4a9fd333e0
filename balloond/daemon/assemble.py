"""Build a `Daemon` from settings: the one place that wires backend, policies, reports and
state together, shared by `balloond run`, `balloond demo` and `balloonctl` (which runs a
single dry tick when no daemon is there to ask), and by the benchmark, the scale figures and
the metrics demo, which drive the daemon's own tick on a simulated host."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import balloond
from balloond.backend import open_backend
from balloond.backend.base import Backend, ReportPush, ReportSource
from balloond.daemon.loop import Clock, Daemon, LoopSettings
from balloond.daemon.reload import PolicyWatcher
from balloond.daemon.statefile import StateFile
from balloond.errors import BackendError
from balloond.policy.loader import POLICY_SUFFIXES
from balloond.policy.model import PolicySet
from balloond.telemetry import Telemetry

if TYPE_CHECKING:
    from balloond.backend.simulated import SimulatedHost

log = logging.getLogger("balloond.daemon")


def source_tree_policies() -> Path | None:
    """The shipped `policies/` folder when running from a source checkout, else None."""
    root = Path(balloond.__file__).resolve().parent.parent
    folder = root / "policies"
    in_tree = (root / "pyproject.toml").is_file() and folder.is_dir()
    if in_tree and any(p.suffix in POLICY_SUFFIXES for p in folder.iterdir()):
        return folder
    return None


def agent_hub(uri: str, telemetry: Telemetry) -> ReportSource | None:
    """The guest agent channel hub for a real hypervisor, when the package has it.
    The simulated host reports by itself and needs none."""
    if uri.startswith("sim:"):
        return None
    try:
        from balloond.channels import AgentHub
    except ImportError:
        log.warning("guest agent channels unavailable: balloond.channels is not installed")
        return None
    hub: ReportSource = AgentHub(telemetry)
    return hub


def build_daemon(
    uri: str,
    settings: LoopSettings,
    policy_dir: str | os.PathLike[str] | None,
    *,
    clock: Clock = time.time,
    state_dir: str | os.PathLike[str] | None = None,
    telemetry: Telemetry | None = None,
    connect: Callable[[], Backend] | None = None,
    channels: bool = True,
    policy_dir_required: bool = True,
) -> Daemon:
    """A daemon with its policies loaded (raises the loader's error: nothing to fall back on
    at start). `connect` defaults to opening `uri`; the first connection happens at the
    first tick, so a hypervisor that comes up later is simply retried."""
    telemetry = telemetry if telemetry is not None else Telemetry()
    policies = PolicyWatcher(policy_dir, telemetry)
    policies.load_initial(required=policy_dir_required)
    hub = agent_hub(uri, telemetry) if channels else None
    daemon = Daemon(
        connect if connect is not None else (lambda: open_backend(uri)),
        settings,
        policies,
        uri=uri,
        clock=clock,
        telemetry=telemetry,
        state_file=StateFile(state_dir) if state_dir is not None else None,
        report_sources=[hub] if hub is not None else [],
    )
    if isinstance(hub, ReportPush):
        hub.on_report = daemon.on_report  # pressure in a report ticks early
    return daemon


def compute_once(
    uri: str,
    policy_dir: str | os.PathLike[str] | None,
    settings: LoopSettings,
    *,
    policy_dir_required: bool = True,
) -> Daemon:
    """One dry tick, for `balloonctl` when no daemon runs: opens the backend, loads the
    policies, decides once, moves nothing. Raises the backend's error if it is unreachable."""
    backend = open_backend(uri)
    settings = replace(settings, dry_run=True)
    daemon = build_daemon(
        uri,
        settings,
        policy_dir,
        connect=lambda: backend,
        channels=False,
        policy_dir_required=policy_dir_required,
    )
    try:
        if daemon.tick() is None:
            raise BackendError(f"{uri}: could not read the host's domains")
    except BaseException:
        daemon.close()
        raise
    return daemon


def simulated_daemon(
    host: SimulatedHost, settings: LoopSettings, policies: PolicySet | None = None
) -> Daemon:
    """The daemon on a simulated host that is already open, on the host's clock (a manual
    clock moves only with `host.advance`): `tick()` it and it collects, decides and sets
    targets exactly as `balloond run` does, so what the benchmark, the scale figures and the
    metrics demo measure is what the daemon does. `policies` (the built-in default when
    None) stand for a policy folder; there is no state file and no agent hub (the simulated
    host reports for its guests). Closing the daemon closes the host."""
    telemetry = Telemetry()
    return Daemon(
        lambda: host,
        settings,
        PolicyWatcher(None, telemetry, initial=policies),
        uri=host.uri,
        clock=host.now,
        telemetry=telemetry,
    )
