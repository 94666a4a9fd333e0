"""Hypothesis floods through a real hub socket: whatever one guest writes, the hub stays up,
counts it under a known reason, and another domain's report is untouched."""

from __future__ import annotations

import socket
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from balloond.channels import AgentHub, HubSettings
from balloond.model import DomainSnapshot
from balloond.telemetry import Telemetry
from balloond.units import GiB

REASONS = {
    "too_long",
    "bad_encoding",
    "bad_json",
    "bad_field",
    "version",
    "out_of_range",
    "stale_seq",
    "rate_limited",
}
GOOD = b'{"v":1,"type":"report","seq":5,"demand":1048576}\n'
LAST = b'{"v":1,"type":"report","seq":999999999,"request":1048576}\n'

chunks = st.lists(
    st.one_of(
        st.binary(max_size=3000),
        st.sampled_from([b"\n", b"[" * 3000, b"{}\n", b'{"v":1}\n', b"\xff" * 5000 + b"\n"]),
        st.builds(
            lambda k, v: b'{"v":1,"type":"report","seq":7,"%s":%s}\n' % (k, v),
            st.sampled_from([b"mem_total", b"request", b"psi_some", b"seq", b"agent"]),
            st.sampled_from([b"-1", b"NaN", b"1e999", b"true", b'"x"', b"9" * 30, b"[]"]),
        ),
    ),
    max_size=12,
)


def _wait(condition, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(junk=chunks)
def test_no_line_from_one_guest_reaches_another_or_stops_the_hub(junk: list[bytes]) -> None:
    telemetry = Telemetry()
    hub = AgentHub(telemetry, lambda: 1000.0, HubSettings(reconnect_interval=0.02, burst=10**6))
    with tempfile.TemporaryDirectory() as tmp:
        servers = {}
        try:
            for name in ("good", "evil"):
                servers[name] = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                servers[name].bind(str(Path(tmp, name)))
                servers[name].listen(1)
                servers[name].settimeout(10)
            hub.sync(
                DomainSnapshot(
                    name=n,
                    uuid=f"u-{n}",
                    current=GiB,
                    maxmem=GiB,
                    channel=str(Path(tmp, n)),
                )
                for n in ("good", "evil")
            )
            good, _ = servers["good"].accept()
            evil, _ = servers["evil"].accept()
            with good, evil:
                good.sendall(GOOD)
                assert _wait(lambda: "u-good" in hub.reports())
                before = hub.reports()["u-good"]
                for chunk in junk:
                    evil.sendall(chunk)
                evil.sendall(b"\n" + LAST)  # end whatever partial line the junk left
                assert _wait(lambda: getattr(hub.reports().get("u-evil"), "seq", 0) == 999999999)
                assert hub.reports()["u-good"] == before
                counts = telemetry.copy()
                assert set(counts.reports_rejected) <= REASONS
                assert counts.reports_accepted["good"] == 1
        finally:
            hub.close()
            for server in servers.values():
                server.close()
