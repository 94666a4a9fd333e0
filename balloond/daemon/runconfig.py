"""`balloond run`'s settings: the daemon config file, with the command line on top."""

from __future__ import annotations

import argparse
import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from balloond.config import DaemonConfig, config_path, effective_uri, load_config
from balloond.daemon.loop import Daemon, LoopSettings
from balloond.errors import ConfigError
from balloond.metrics import MetricsServer, serve, write_textfile
from balloond.units import parse_duration

log = logging.getLogger("balloond.daemon")


def load_daemon_config(path: str | None) -> DaemonConfig:
    """The config `balloond.config.config_path` names (the rule of every balloonctl command)."""
    return load_config(config_path(path))


def option_duration(text: str, option: str) -> float:
    """A command-line duration ('10s'); a bad one is a ConfigError naming the option."""
    try:
        return parse_duration(text)
    except ValueError as error:
        raise ConfigError(f"{option}: {error}") from None


@dataclass(frozen=True)
class RunConfig:
    config: DaemonConfig
    log_level: str
    uri: str
    settings: LoopSettings
    policy_dir: Path
    state_dir: Path
    control_socket: Path

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RunConfig:
        config = load_daemon_config(args.config)
        interval = None
        if args.interval is not None:
            interval = option_duration(args.interval, "--interval")
            if not 0.1 <= interval <= 3600:
                raise ConfigError(f"--interval must be 0.1s..3600s, got: {args.interval!r}")
        settings = LoopSettings.from_config(config, interval=interval, dry_run=args.dry_run)
        if args.once:  # one tick: every change it decides on its own line
            settings = replace(settings, routine_summary=0.0)
        return cls(
            config=config,
            log_level=args.log_level or config.log_level,
            uri=effective_uri(args.connect, config),
            settings=settings,
            policy_dir=Path(args.policy_dir or config.policy_dir),
            state_dir=Path(config.state_dir),
            control_socket=Path(config.control_socket),
        )

    def serve_metrics(self, daemon: Daemon) -> MetricsServer:
        config = self.config
        auth = config.metrics_basic_auth
        for secret, what in (
            (config.metrics_tls_key, "metrics_tls_key"),
            (auth.password_file if auth is not None else None, "metrics_basic_auth password"),
        ):
            if secret is not None:
                warn_if_others_can_read(secret, what)
        return serve(
            daemon,
            config.metrics_address,
            config.metrics_port,
            tls_cert=config.metrics_tls_cert,
            tls_key=config.metrics_tls_key,
            basic_auth=auth.credentials() if auth is not None else None,
        )

    def after_tick_hooks(self, daemon: Daemon) -> list[Callable[[], None]]:
        textfile = self.config.textfile
        if not textfile:
            return []

        def write_metrics_textfile() -> None:
            write_textfile(daemon, textfile)

        return [write_metrics_textfile]


def warn_if_others_can_read(path: str, what: str) -> None:
    """A TLS key or password file others on the host can read hands them the endpoint (to
    impersonate it, or to scrape every domain's name): accepted, but said at start. Group
    access is left alone (Debian keeps keys 0640 root:ssl-cert)."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return  # not readable at all: loading it says so
    if mode & 0o006:
        log.warning(
            "%s %s is readable by every user on this host (mode %o): chmod o-rwx it",
            what,
            path,
            mode,
        )
