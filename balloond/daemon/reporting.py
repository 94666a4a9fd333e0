"""Guest reports into the tick, and the tick's decisions out to people and guests.

Report sources are the simulated host itself (it is a `ReportSource`) or the agent channel
hub, which also wants to know the current domains (`sync`) and may pass each guest its
floor and ceiling (`send_limits`). A failing source costs its reports for one tick, never
the tick.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from balloond.backend.base import Backend, LimitSink, ReportSource, SyncedSource
from balloond.errors import BalloondError
from balloond.model import Decision, DomainDecision, DomainSnapshot, GuestReport, Snapshot
from balloond.policy.match import matcher_for
from balloond.policy.model import PolicySet
from balloond.telemetry import Telemetry
from balloond.units import format_size, format_sizes_apart

log = logging.getLogger("balloond.daemon")


@runtime_checkable
class Closable(Protocol):
    def close(self) -> None: ...


class ReportCollector:
    def __init__(self, sources: Sequence[ReportSource], telemetry: Telemetry) -> None:
        self._sources = tuple(sources)
        self._telemetry = telemetry
        self._last: dict[str, GuestReport] = {}
        # uuid -> (floor, ceiling, channel path) last handed to the sinks. The path is part of
        # the key: a hub makes a fresh connection (with no limits) when a domain's channel
        # moves (libvirt names generated sockets by domain id, so a restart moves them).
        self._limits_sent: dict[str, tuple[int, int, str | None]] = {}
        self._channels: dict[str, str | None] = {}

    def collect(
        self, backend: Backend, domains: Sequence[DomainSnapshot]
    ) -> dict[str, GuestReport]:
        """Newest report per domain UUID, from the backend (if it reports) then each source."""
        sources: list[object] = [backend, *self._sources]
        merged: dict[str, GuestReport] = {}
        for source in sources:
            merged.update(self._read(source, domains))
        self._channels = {d.uuid: d.channel for d in domains}
        self._last = {uuid: r for uuid, r in merged.items() if uuid in self._channels}
        for gone in self._limits_sent.keys() - self._channels.keys():
            del self._limits_sent[gone]
        return self._last

    def _read(self, source: object, domains: Sequence[DomainSnapshot]) -> Mapping[str, GuestReport]:
        if not isinstance(source, ReportSource):
            return {}
        try:
            if isinstance(source, SyncedSource):
                source.sync(domains)
            return source.reports()
        except (BalloondError, OSError) as error:
            log.warning(
                "guest reports from %s unavailable this tick: %s", type(source).__name__, error
            )
            return {}
        except Exception:  # a bug in a report source must not stop the balancing
            log.exception("guest reports from %s failed this tick", type(source).__name__)
            return {}

    def last(self) -> dict[str, GuestReport]:
        return dict(self._last)

    def send_limits(self, decision: Decision) -> None:
        """Tell each guest agent its floor and ceiling, when they changed."""
        sinks = [s for s in self._sources if isinstance(s, LimitSink)]
        if not sinks:
            return
        for domain in decision.domains:
            limits = (domain.floor, domain.ceiling, self._channels.get(domain.uuid))
            if domain.uuid not in self._last or self._limits_sent.get(domain.uuid) == limits:
                continue
            self._limits_sent[domain.uuid] = limits
            for sink in sinks:
                try:
                    sink.send_limits(domain.uuid, domain.floor, domain.ceiling)
                except (BalloondError, OSError) as error:
                    log.debug("domain %r: limits not sent: %s", domain.name, error)

    def close(self) -> None:
        for source in self._sources:
            if isinstance(source, Closable):
                try:
                    source.close()
                except (BalloondError, OSError) as error:
                    log.debug("closing report source: %s", error)


def describe_action(action: DomainDecision, rule: str = "") -> str:
    """One line an operator reads: "grow web1 1 GiB → 1.5 GiB: pressure 4.1% > 0.5% target
    [policy 'web-tier' by name 'web*']". The core's explanation already says "grow 1 GiB →
    ...": the name goes after the verb. `rule` is the selector that chose the policy."""
    direction = "grow" if action.delta > 0 else "shrink"
    text = action.explanation
    if action.delta == 0:
        # The target set is the balloon's size: it replaces another target still in force
        # (a shrink or grow in flight is stopped where the balloon is). "shrink 273 MiB →
        # 273 MiB (-0 B)" said nothing of that.
        if text.startswith(("grow ", "shrink ")) and ": " in text:
            text = text.split(": ", 1)[1]
        line = f"stop {action.name} at {format_size(action.current)}: {text}"
        return f"{line} [policy {action.policy!r} by {rule}]" if rule else line
    if text.startswith(direction + " "):
        line = f"{direction} {action.name} {text[len(direction) + 1 :]}"
    else:
        before, after = format_sizes_apart(action.current, action.target)
        line = f"{direction} {action.name} {before} → {after}: {text}"
    if rule:
        line += f" [policy {action.policy!r} by {rule}]"
    return line


def policy_rules(snapshot: Snapshot, decision: Decision, policies: PolicySet) -> dict[str, str]:
    """UUID -> the selector that chose each acting domain's policy ("name 'web*'"), for the
    decision lines."""
    acting = {d.uuid for d in decision.domains if d.act}
    if not acting:
        return {}
    matcher = matcher_for(policies)
    return {d.uuid: matcher.select_explained(d)[1] for d in snapshot.domains if d.uuid in acting}
