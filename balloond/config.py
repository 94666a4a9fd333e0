"""The daemon config (``/etc/balloond/balloond.yaml``): validated once into a `DaemonConfig`.

Every setting, its default and its meaning are in `CONFIG_FIELDS` (the example file
``balloond/data/balloond.yaml`` documents them for operators). Errors read like policy
errors: "balloond.yaml:4: interval: '0s' is out of range 0.1s..3600s", all of them at once.
Relative paths in the file are taken relative to the file's folder.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from yaml.nodes import MappingNode, Node

from balloond.errors import ConfigError
from balloond.logs import DEFAULT_LEVEL, LEVELS
from balloond.policy.knobs import (
    AmountKind,
    BoolKind,
    DurationKind,
    IntKind,
    Knob,
    TextKind,
)
from balloond.policy.model import Amount
from balloond.policy.yamldoc import Errors, compose, line_of, read_text, scalar_value
from balloond.units import GiB

DEFAULT_CONFIG_PATH = "/etc/balloond/balloond.yaml"
DEFAULT_RESERVE = Amount(size=GiB)
# Seconds between ticks. 2 s, not 5 s: in the benchmark's fast-spike scenarios a 5 s tick let
# guests run out of memory (2 OOM kills) between two ticks; at 2 s none did (bench/results).
DEFAULT_INTERVAL = 2.0
DEFAULT_STATS_PERIOD = 2  # seconds: virtio-balloon statistics period set where it is off
STALE_INTERVALS = 3  # stats older than this many intervals are ignored unless set
# ... but never fewer seconds than this: the guest agent reports every 5 s, and a guest under
# pressure reports late; a short interval must not turn its latest report into "no data".
MIN_STALE_AFTER = 15.0


def default_stale_after(interval: float) -> float:
    """How old statistics and reports may be when `stale_after` is not set."""
    return max(STALE_INTERVALS * interval, MIN_STALE_AFTER)


@dataclass(frozen=True, slots=True)
class MetricsAuth:
    """Basic auth for the metrics endpoint. The password lives in its own file (mode 0600),
    never in balloond.yaml, which is often world-readable."""

    user: str
    password_file: str

    def credentials(self) -> tuple[str, str]:
        """(user, password) as the metrics server takes them; reads the password file now
        (one trailing newline stripped)."""
        try:
            with open(self.password_file, encoding="utf-8") as handle:
                password = handle.read().removesuffix("\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"cannot read the password: {exc}",
                file=self.password_file,
                key="metrics_basic_auth",
            ) from exc
        if not password:
            raise ConfigError(
                "password file is empty", file=self.password_file, key="metrics_basic_auth"
            )
        return self.user, password


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    """Every daemon setting. Sizes are bytes (or an `Amount`), durations float seconds."""

    uri: str = "qemu:///system"
    interval: float = DEFAULT_INTERVAL
    reserve: Amount = DEFAULT_RESERVE  # relative: of host total memory
    metrics_address: str = "127.0.0.1"
    metrics_port: int = 9877
    metrics_tls_cert: str | None = None
    metrics_tls_key: str | None = None
    metrics_basic_auth: MetricsAuth | None = None
    textfile: str | None = None
    policy_dir: str = "/etc/balloond/policies"
    state_dir: str = "/var/lib/balloond"
    control_socket: str = "/run/balloond/control.sock"
    stats_period: float = float(DEFAULT_STATS_PERIOD)
    stale_after: float | None = None  # None: default_stale_after(interval)
    stuck_after: float = 30.0
    dry_run: bool = False
    log_level: str = DEFAULT_LEVEL
    source: str = "<defaults>"  # the file it came from

    @property
    def stale_after_seconds(self) -> float:
        """Stats older than this are ignored (the explicit setting, else 3 intervals, at
        least 15 s)."""
        if self.stale_after is not None:
            return self.stale_after
        return default_stale_after(self.interval)

    def reserve_for(self, host_total: int) -> int:
        """The host reserve in bytes on a host with `host_total` bytes of memory."""
        return min(self.reserve.resolve(host_total), host_total)


_PATH = TextKind(what="path")
_OPTIONAL_PATH = TextKind(what="path", optional=True)

CONFIG_FIELDS: tuple[Knob, ...] = (
    Knob(
        "uri",
        TextKind(what="libvirt URI"),
        "Hypervisor connection, as virsh --connect takes it ('qemu:///system', "
        "'xen:///system', 'test:///default').",
    ),
    Knob(
        "interval",
        DurationKind(0.1, 3600.0),
        "Time between ticks ('2s', '500ms', '1m'). A guest agent report showing pressure "
        "above its policy's pressure_target also ticks at once (at most every 0.5s).",
    ),
    Knob(
        "reserve",
        AmountKind("host memory"),
        "Memory the host keeps for itself; never handed to guests. Size or % of host memory.",
    ),
    Knob(
        "metrics_address",
        TextKind(what="address"),
        "Address the Prometheus endpoint listens on; '0.0.0.0' or '::' for every interface "
        "(then set TLS and basic auth).",
    ),
    Knob("metrics_port", IntKind(1, 65535), "Port of the Prometheus endpoint."),
    Knob("metrics_tls_cert", _OPTIONAL_PATH, "PEM certificate: serve metrics over HTTPS."),
    Knob("metrics_tls_key", _OPTIONAL_PATH, "PEM private key for metrics_tls_cert."),
    Knob(
        "metrics_basic_auth",
        TextKind(what="mapping", optional=True),
        "Require basic auth on the metrics endpoint: {user: NAME, password_file: PATH}.",
    ),
    Knob(
        "textfile",
        _OPTIONAL_PATH,
        "Also write metrics to this node_exporter textfile (*.prom), atomically each tick.",
    ),
    Knob("policy_dir", _PATH, "Folder of policy files (*.yaml, *.yml), loaded in name order."),
    Knob("state_dir", _PATH, "Where holds and stuck marks survive restarts."),
    Knob("control_socket", _PATH, "Unix socket (mode 0600) balloonctl talks to."),
    Knob(
        "stats_period",
        DurationKind(1.0, 3600.0),
        "virtio-balloon statistics period balloond sets on domains where it is off.",
    ),
    Knob(
        "stale_after",
        DurationKind(0.1, 86400.0),
        "Ignore memory statistics and guest reports older than this (default: 3 intervals, "
        "at least 15s).",
    ),
    Knob(
        "stuck_after",
        DurationKind(1.0, 86400.0),
        "A domain that has not moved toward its target for this long is marked stuck, "
        "left alone for a while, then retried.",
    ),
    Knob("dry_run", BoolKind(), "Decide and report, but change nothing."),
    Knob(
        "log_level",
        TextKind(f"^({'|'.join(LEVELS)})$", what=f"log level ({', '.join(LEVELS)})"),
        "How much the daemon logs: debug (also every routine shrink), info (decisions; "
        "routine shrinks summed up once a minute), warning, error.",
    ),
)

_FIELDS = {knob.name: knob for knob in CONFIG_FIELDS}
_PATH_FIELDS = (
    "metrics_tls_cert",
    "metrics_tls_key",
    "textfile",
    "policy_dir",
    "state_dir",
    "control_socket",
)
_AUTH_KEYS = ("user", "password_file")


class ConfigLoadErrors(ConfigError):
    """Every error found in a daemon config file; `errors` lists them in line order."""

    def __init__(self, errors: Iterable[ConfigError]) -> None:
        self.errors = list(errors)
        first = self.errors[0]
        super().__init__(first.detail, file=first.file, line=first.line, key=first.key)

    def _render(self) -> str:
        return "\n".join(str(error) for error in self.errors)


def default_of(name: str) -> Any:
    """A setting's default: the `DaemonConfig` field default (the single source)."""
    return {field.name: field.default for field in dataclasses.fields(DaemonConfig)}[name]


def config_path(explicit: str | None) -> str | None:
    """Which daemon config a command reads: --config, else $BALLOOND_CONFIG, else
    /etc/balloond/balloond.yaml if it exists, else None (the built-in defaults)."""
    if explicit:
        return explicit
    from_env = os.environ.get("BALLOOND_CONFIG")
    if from_env:
        return from_env
    return DEFAULT_CONFIG_PATH if os.path.exists(DEFAULT_CONFIG_PATH) else None


def effective_uri(option: str | None, config: DaemonConfig) -> str:
    """The hypervisor URI, in virsh's order: --connect, else $LIBVIRT_DEFAULT_URI, else the
    config's `uri` (qemu:///system unless set). The environment wins over the file as it
    wins over libvirt.conf's uri_default for virsh."""
    return option or os.environ.get("LIBVIRT_DEFAULT_URI") or config.uri


def load_config(path: str | os.PathLike[str] | None) -> DaemonConfig:
    """Read and validate a daemon config file; None gives the defaults."""
    if path is None:
        return DaemonConfig()
    display = str(path)
    text = read_text(display, display, ConfigError)
    return parse_config_text(text, display, base_dir=os.path.dirname(os.path.abspath(display)))


def parse_config_text(text: str, filename: str = "<text>", base_dir: str = ".") -> DaemonConfig:
    errors = Errors(filename, ConfigError)
    try:
        root = compose(text, filename, ConfigError)
    except ConfigError as exc:
        raise ConfigLoadErrors([exc]) from None
    if root is None:  # an empty (or all-comment) file: every default
        return DaemonConfig(source=filename)
    values = _parse_settings(root, errors, base_dir)
    _check_together(values, root, errors)
    if errors.items:
        raise ConfigLoadErrors(errors.sorted())
    return DaemonConfig(source=filename, **values)


def _parse_settings(root: Node, errors: Errors, base_dir: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, (_, node) in errors.entries(root, None, _FIELDS).items():
        if key == "metrics_basic_auth":
            values[key] = _parse_auth(node, errors, base_dir)
            continue
        try:
            value = _FIELDS[key].kind.parse(scalar_value(node))
        except ValueError as exc:
            errors.add(node, key, str(exc))
            continue
        if key == "reserve" and value is None:
            errors.add(node, key, "expected a size or a percentage, got nothing (null)")
        elif key in _PATH_FIELDS and isinstance(value, str):
            value = os.path.normpath(os.path.join(base_dir, value))
        values[key] = value
    return values


def _parse_auth(node: Node, errors: Errors, base_dir: str) -> MetricsAuth | None:
    if getattr(node, "tag", "").endswith(":null"):
        return None
    key = "metrics_basic_auth"
    entries = errors.entries(node, key, _AUTH_KEYS)
    if not isinstance(node, MappingNode):
        return None
    parsed: dict[str, str] = {}
    for name in _AUTH_KEYS:
        if name not in entries:
            errors.add(node, f"{key}.{name}", "missing")
            continue
        value_node = entries[name][1]
        try:
            parsed[name] = str(TextKind(what=name).parse(scalar_value(value_node)))
        except ValueError as exc:
            errors.add(value_node, f"{key}.{name}", str(exc))
    if len(parsed) < len(_AUTH_KEYS):
        return None
    password_file = os.path.normpath(os.path.join(base_dir, parsed["password_file"]))
    return MetricsAuth(user=parsed["user"], password_file=password_file)


def _check_together(values: dict[str, Any], root: Node, errors: Errors) -> None:
    """Settings that only make sense together."""
    cert, key = values.get("metrics_tls_cert"), values.get("metrics_tls_key")
    if (cert is None) != (key is None):
        missing = "metrics_tls_key" if key is None else "metrics_tls_cert"
        errors.add(
            _line(root, "metrics_tls_cert", "metrics_tls_key"),
            missing,
            "missing: TLS needs both metrics_tls_cert and metrics_tls_key",
        )
    interval = values.get("interval", default_of("interval"))
    stale = values.get("stale_after")
    if stale is not None and stale < interval:
        errors.add(
            _line(root, "stale_after"),
            "stale_after",
            f"{stale:g}s is shorter than the "
            f"interval {interval:g}s: every sample would count as stale",
        )


def _line(root: Node, *keys: str) -> int:
    for key_node, _ in getattr(root, "value", ()):
        if getattr(key_node, "value", None) in keys:
            return line_of(key_node)
    return 1
