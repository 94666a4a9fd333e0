"""`balloond run`'s settings: the daemon config file, with the command line on top."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from balloond.config import DaemonConfig, load_config
from balloond.daemon.loop import Daemon, LoopSettings
from balloond.errors import ConfigError
from balloond.metrics import MetricsServer, serve, write_textfile
from balloond.units import parse_duration

log = logging.getLogger("balloond.daemon")


@dataclass(frozen=True)
class RunConfig:
    config: DaemonConfig
    uri: str
    settings: LoopSettings
    policy_dir: Path | None
    state_dir: Path | None
    control_socket: Path

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RunConfig:
        config = load_config(args.config)
        interval = config.interval
        if args.interval is not None:
            try:
                interval = parse_duration(args.interval)
            except ValueError as error:
                raise ConfigError(f"--interval: {error}") from None
            if interval <= 0:
                raise ConfigError(f"--interval must be positive, got: {args.interval!r}")
        settings = LoopSettings(
            interval=interval,
            reserve=_reserve_bytes(config),
            stale_after=config.stale_after,
            stuck_after=config.stuck_after,
            stats_period=int(config.stats_period),
            dry_run=bool(args.dry_run or config.dry_run),
        )
        policy_dir = args.policy_dir or config.policy_dir
        return cls(
            config=config,
            uri=args.connect or config.uri,
            settings=settings,
            policy_dir=Path(policy_dir) if policy_dir else None,
            state_dir=Path(config.state_dir) if config.state_dir else None,
            control_socket=Path(config.control_socket),
        )

    def serve_metrics(self, daemon: Daemon) -> MetricsServer | None:
        config = self.config
        if config.metrics_port is None:
            return None
        return serve(
            daemon, config.metrics_address, config.metrics_port,
            tls_cert=config.tls_cert, tls_key=config.tls_key, basic_auth=config.basic_auth,
        )  # fmt: skip

    def after_tick_hooks(self, daemon: Daemon) -> list[Callable[[], None]]:
        textfile = self.config.textfile
        if not textfile:
            return []

        def write() -> None:
            write_textfile(daemon, textfile)

        write.__name__ = f"textfile {textfile}"
        return [write]


def _reserve_bytes(config: Any) -> int:
    reserve = config.reserve
    if isinstance(reserve, int):
        return reserve
    raise ConfigError(f"reserve must be a size, got: {reserve!r}")
