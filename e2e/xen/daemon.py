"""The balloond that runs in the Xen lab's dom0 (started by dom0's init from /etc/balloond,
see e2e/xen/dom0/balloond), and balloonctl next to it: what the test sees of them.

Metrics come over the forwarded port, as a Prometheus on another machine would scrape them;
balloonctl runs in dom0 through the lab's control server.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from e2e.daemon import Samples, parse_metrics, sample
from e2e.wait import wait_for
from e2e.xen.host import XenHost

LOG = "/var/log/balloond.log"
CONFIG = "/etc/balloond/balloond.yaml"  # the shipped one
ARGS_FILE = "/etc/lab/balloond.args"


class Dom0Balloond:
    def __init__(self, host: XenHost) -> None:
        self.host = host

    # -- observing -------------------------------------------------------------------------
    def scrape(self) -> str:
        with urllib.request.urlopen(self.host.metrics_url, timeout=10) as resp:
            return str(resp.read().decode())

    def metrics(self) -> Samples:
        return parse_metrics(self.scrape())

    def metric(self, name: str, **labels: str) -> float | None:
        return sample(self.metrics(), name, **labels)

    def log(self, tail: int = 20000) -> str:
        return self.host.read(LOG, tail=tail)

    # -- balloonctl ------------------------------------------------------------------------
    def ctl(self, *args: str, timeout: float = 120.0) -> dict[str, Any]:
        """`balloonctl ARGS` in dom0 with the shipped config: {"rc", "stdout", "stderr"}."""
        argv = ["balloonctl", *args, "--config", CONFIG, "--connect", "xen:///system"]
        return self.host.run(*argv, timeout=timeout, check=False)

    def ctl_json(self, *args: str) -> Any:
        done = self.ctl(*args, "--json")
        if done["rc"] != 0:
            raise AssertionError(f"balloonctl {' '.join(args)} exited {done['rc']}: {done}")
        return json.loads(done["stdout"])

    def row(self, name: str) -> dict[str, Any]:
        listed = self.ctl_json("list")
        rows = listed["rows"] if isinstance(listed, dict) else listed
        return next(r for r in rows if r["name"] == name)

    def explain(self, name: str) -> dict[str, Any]:
        explained: dict[str, Any] = self.ctl_json("explain", name)
        return explained

    def wait_ticks(self, seconds: float = 4.0, timeout: float = 30.0) -> None:
        """Wait until the daemon has ticked on for `seconds` (2 ticks at the shipped 2 s)."""
        first = self.metric("balloond_last_tick_timestamp_seconds") or 0.0
        wait_for(
            lambda: (self.metric("balloond_last_tick_timestamp_seconds") or 0.0) >= first + seconds,
            timeout,
            f"balloond ticking on for {seconds:g} s",
        )

    # -- lifecycle -------------------------------------------------------------------------
    def wait_ready(self, timeout: float = 90.0) -> None:
        wait_for(
            lambda: self.metric("balloond_last_tick_timestamp_seconds"),
            timeout,
            "balloond in dom0 ticking",
        )

    def restart(self, args: str = "", timeout: float = 90.0) -> None:
        """Restart the daemon (dom0's init respawns it) with extra command-line `args`."""
        self.host.write(ARGS_FILE, args)
        before = self.metric("balloond_start_time_seconds")
        self.host.sh("pkill -f '^/usr/bin/python3 /usr/bin/balloond run'", check=False)

        def fresh() -> bool:
            started = self.metric("balloond_start_time_seconds")
            ticked = self.metric("balloond_last_tick_timestamp_seconds")
            return started is not None and started != before and ticked is not None

        wait_for(fresh, timeout, "balloond restarted in dom0 and ticking")
