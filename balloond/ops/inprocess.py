"""Operator commands on a host that lives inside the daemon's process.

The simulated host (sim://) and libvirt's test driver (test:///) exist once per process
that opens them: `balloonctl balloon` on its own copy would report a hold that never
happened where the daemon acts (and the daemon would count it). When the daemon listening
on the config's control socket manages the same in-process host, `balloon` is done by the
daemon itself (its `balloon` control command, the same rule), and the other operations say
they cannot be done from outside. Without such a daemon, balloonctl works on its own copy,
as before: that is what tests and demos of the commands do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from balloond.backend import in_process, same_host
from balloond.daemon.control import ControlClient, DaemonNotRunning
from balloond.errors import ControlError, Refused
from balloond.model import Hold
from balloond.ops.context import OpsContext
from balloond.ops.memory import BalloonResult


@dataclass(frozen=True)
class DaemonHost:
    """The daemon whose process holds the host balloonctl was asked to work on."""

    client: ControlClient
    uri: str
    pid: object

    def balloon(
        self, name: str, size: int, *, force: bool, hold_for: float | None
    ) -> BalloonResult:
        args: dict[str, Any] = {"domain": name, "target": size, "force": force}
        if hold_for is not None:
            args["seconds"] = hold_for
        answer = self.client.call("balloon", **args)
        if not isinstance(answer, dict) or not isinstance(answer.get("hold"), dict):
            raise ControlError("balloond: unexpected answer to 'balloon'")
        hold = answer["hold"]
        return BalloonResult(
            name=str(answer.get("domain", name)),
            previous=int(answer.get("previous", 0)),
            target=int(answer.get("target", size)),
            floor=int(answer.get("floor", 0)),
            hold=Hold(
                domain=str(hold.get("domain", "")),
                owner=str(hold.get("owner", "")),
                reason=str(hold.get("reason", "")),
                until=hold.get("until"),
                target=hold.get("target"),
            ),
        )

    def refuse(self, operation: str) -> Refused:
        return Refused(
            f"{self.uri} lives inside balloond (pid {self.pid}): balloonctl cannot {operation} "
            "its domains from another process (only 'balloon' is done by the daemon itself)"
        )


def daemon_host(ctx: OpsContext) -> DaemonHost | None:
    """The daemon that holds `ctx`'s host in its process, if one listens on the config's
    control socket; None for a host balloonctl reaches itself (libvirtd, another host)."""
    uri = ctx.uri or ctx.config.uri
    if not in_process(uri):
        return None
    client = ControlClient(ctx.config.control_socket, timeout=30.0)
    try:
        status = client.call("status")
    except DaemonNotRunning:
        return None
    theirs = status.get("uri") if isinstance(status, dict) else None
    if not isinstance(theirs, str) or not same_host(theirs, uri):
        return None
    return DaemonHost(client, theirs, status.get("pid"))
