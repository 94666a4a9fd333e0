"""The daemon config: defaults, every setting, errors named by file:line: key."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pytest

from balloond.config import (
    CONFIG_FIELDS,
    DEFAULT_INTERVAL,
    ConfigLoadErrors,
    DaemonConfig,
    MetricsAuth,
    load_config,
    parse_config_text,
)
from balloond.errors import ConfigError
from balloond.policy.model import Amount
from balloond.units import GiB, MiB

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "balloond" / "data" / "balloond.yaml"


def test_defaults() -> None:
    config = load_config(None)
    assert config == DaemonConfig()
    assert (config.uri, config.interval, config.reserve) == ("qemu:///system", 2.0, Amount(GiB))
    assert config.interval == DEFAULT_INTERVAL
    assert (config.metrics_address, config.metrics_port) == ("127.0.0.1", 9877)
    assert config.policy_dir == "/etc/balloond/policies"
    assert config.state_dir == "/var/lib/balloond"
    assert config.control_socket == "/run/balloond/control.sock"
    assert (config.stats_period, config.stuck_after, config.dry_run) == (2.0, 30.0, False)
    assert config.stale_after is None and config.stale_after_seconds == 15.0
    assert config.metrics_tls_cert is None and config.metrics_basic_auth is None
    assert config.textfile is None


def test_stale_after_defaults_to_three_intervals_but_never_under_15_s() -> None:
    # The agent reports every 5 s (later under pressure): a 2 s tick must not make its
    # latest report "no data" after 6 s.
    assert DaemonConfig(interval=2.0).stale_after_seconds == 15.0
    assert DaemonConfig(interval=10.0).stale_after_seconds == 30.0
    assert DaemonConfig(interval=10.0, stale_after=12.0).stale_after_seconds == 12.0


def test_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        DaemonConfig().interval = 1.0  # type: ignore[misc]


def test_shipped_example_states_the_defaults() -> None:
    config = load_config(SHIPPED)
    assert dataclasses.replace(config, source="<defaults>") == DaemonConfig()


def test_shipped_example_documents_every_setting() -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    fields = {field.name for field in dataclasses.fields(DaemonConfig)} - {"source"}
    assert fields == {knob.name for knob in CONFIG_FIELDS}
    for name in fields:
        assert re.search(rf"^#? ?{name}:", text, re.MULTILINE), name


def test_every_setting_parses(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s3cret\n", encoding="utf-8")
    text = (
        "uri: test:///default\n"
        "interval: 500ms\n"
        "reserve: 10%\n"
        "metrics_address: '::'\n"
        "metrics_port: 9100\n"
        "metrics_tls_cert: tls/cert.pem\n"
        "metrics_tls_key: /etc/tls/key.pem\n"
        "metrics_basic_auth: {user: prom, password_file: pw}\n"
        "textfile: /var/lib/node/balloond.prom\n"
        "policy_dir: policies\n"
        "state_dir: /tmp/state\n"
        "control_socket: /tmp/ctl.sock\n"
        "stats_period: 1s\n"
        "stale_after: 2s\n"
        "stuck_after: 1m\n"
        "dry_run: true\n"
    )
    path = tmp_path / "balloond.yaml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path)
    assert config == DaemonConfig(
        uri="test:///default",
        interval=0.5,
        reserve=Amount(ratio=0.1),
        metrics_address="::",
        metrics_port=9100,
        metrics_tls_cert=str(tmp_path / "tls" / "cert.pem"),  # relative to the file
        metrics_tls_key="/etc/tls/key.pem",
        metrics_basic_auth=MetricsAuth("prom", str(tmp_path / "pw")),
        textfile="/var/lib/node/balloond.prom",
        policy_dir=str(tmp_path / "policies"),
        state_dir="/tmp/state",
        control_socket="/tmp/ctl.sock",
        stats_period=1.0,
        stale_after=2.0,
        stuck_after=60.0,
        dry_run=True,
        source=str(path),
    )
    assert config.reserve_for(64 * GiB) == int(6.4 * GiB)
    assert config.metrics_basic_auth is not None
    assert config.metrics_basic_auth.credentials() == ("prom", "s3cret")


def test_empty_or_comment_only_file_gives_defaults() -> None:
    assert parse_config_text("# nothing\n", "c.yaml") == DaemonConfig(source="c.yaml")


def test_reserve_is_capped_by_host_memory() -> None:
    config = parse_config_text("reserve: 8GiB\n")
    assert config.reserve_for(4 * GiB) == 4 * GiB


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("intervall: 5s", "c.yaml:1: intervall: unknown key (did you mean 'interval'?)"),
        ("zzz: 1", "c.yaml:1: zzz: unknown key; known keys: uri, interval"),
        ("interval: 0s", "c.yaml:1: interval: '0s' is out of range 0.1s..3600s"),
        ("interval: -5", "c.yaml:1: interval: duration must be non-negative"),
        ("interval: soon", "c.yaml:1: interval: expected a duration"),
        ("reserve: -1G", "c.yaml:1: reserve: '-1G' is negative"),
        ("reserve: 1024", "c.yaml:1: reserve: 1024 has no unit"),
        ("reserve: 120%", "c.yaml:1: reserve: percentage must be between 0% and 100%"),
        ("metrics_port: 99999", "c.yaml:1: metrics_port: 99999 is out of range 1..65535"),
        ("metrics_port: '9877'", "c.yaml:1: metrics_port: expected a whole number"),
        ("dry_run: maybe", "c.yaml:1: dry_run: expected true or false, got 'maybe'"),
        ("uri: 42", "c.yaml:1: uri: expected libvirt URI"),
        ("uri: [a]", "c.yaml:1: uri: expected a single value, got a list"),
        ("policy_dir: null", "c.yaml:1: policy_dir: expected path"),
        ("metrics_tls_cert: c.pem", "c.yaml:1: metrics_tls_key: missing: TLS needs both"),
        ("metrics_basic_auth: {user: u}", "c.yaml:1: metrics_basic_auth.password_file: missing"),
        (
            "metrics_basic_auth: {user: u, password: p, password_file: f}",
            "c.yaml:1: password: unknown key in metrics_basic_auth",
        ),
        ("metrics_basic_auth: secret", "c.yaml:1: metrics_basic_auth: expected a mapping"),
        ("stale_after: 1s", "c.yaml:1: stale_after: 1s is shorter than the interval 2s"),
        ("uri: a\nuri: b", "c.yaml:2: uri: duplicate key (first set on line 1)"),
        ("uri: &u a\nstate_dir: *u", "c.yaml:1: YAML anchors (&u) are not allowed"),
        ("- uri: a", "c.yaml:1: expected a mapping (key: value lines), got a list"),
        ("uri: a\n---\nuri: b", "c.yaml:2: a second YAML document starts here"),
        ("uri: [", "c.yaml:2: invalid YAML"),
    ],
)
def test_bad_config(text: str, expected: str) -> None:
    with pytest.raises(ConfigLoadErrors) as info:
        parse_config_text(text + "\n", "c.yaml")
    assert str(info.value.errors[0]).startswith(expected), str(info.value)


def test_all_errors_at_once_in_line_order() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config_text("interval: 0\nmetrics_port: 0\nstuck_after: 0s\n", "c.yaml")
    assert isinstance(info.value, ConfigLoadErrors)
    assert [error.line for error in info.value.errors] == [1, 2, 3]
    assert (info.value.file, info.value.line, info.value.key) == ("c.yaml", 1, "interval")


def test_files_over_the_limit_and_non_utf8_are_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (2 * MiB))
    with pytest.raises(ConfigError, match="over the 1048576 byte"):
        load_config(big)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"uri: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"latin\.yaml:1: not valid UTF-8"):
        load_config(latin)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "none.yaml")


def test_password_file_problems_are_config_errors(tmp_path: Path) -> None:
    auth = MetricsAuth("prom", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="cannot read the password"):
        auth.credentials()
    empty = tmp_path / "empty"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match="password file is empty"):
        MetricsAuth("prom", str(empty)).credentials()


def test_relative_paths_follow_the_config_file(tmp_path: Path) -> None:
    sub = tmp_path / "etc"
    sub.mkdir()
    (sub / "b.yaml").write_text("policy_dir: ../policies\nstate_dir: state\n", encoding="utf-8")
    config = load_config(sub / "b.yaml")
    assert config.policy_dir == str(tmp_path / "policies")
    assert config.state_dir == os.path.join(sub, "state")
