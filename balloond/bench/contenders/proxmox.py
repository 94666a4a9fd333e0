"""Proxmox VE auto-ballooning (proxmox/pve-manager PVE/AutoBalloon.pm, PVE/Service/pvestatd.pm;
figures in shared/notes/anchors.md "Proxmox").

libvirt/QEMU statistics only (it reads the balloon's actual size). Every 10 s
`goal = host_total * 0.80 - host_used`; nothing when |goal| <= 10 MiB. The memory above the
VMs' minimums plus the goal is shared by shares: `desired = min + extra * shares / Σ shares`,
clamped to [min, maxmem], each VM moving at most 100 MiB per cycle. `min` is the operator's
floor (Proxmox's `balloon` setting), shares the scenario's weight (default 1000).
"""

from __future__ import annotations

from collections.abc import Mapping

from balloond.bench.contenders.base import Observation, guest_configs, running
from balloond.sim.scenario import Scenario
from balloond.units import MiB

HOST_TARGET = 0.80  # pvestatd: memtotal * 0.80 - memused
IGNORE_BELOW = 10 * MiB  # pvestatd: nothing when |goal| <= 10 MiB
MAX_CHANGE = 100 * MiB  # AutoBalloon: at most 100 MiB per VM per cycle
CYCLE = 10.0  # pvestatd's update loop


class Proxmox:
    name = "proxmox"
    interval = CYCLE
    uses_reports = False

    def __init__(self, scenario: Scenario) -> None:
        self.configs = guest_configs(scenario)

    def decide(self, obs: Observation) -> Mapping[str, int]:
        host = obs.snapshot.host
        goal = int(host.total * HOST_TARGET - (host.total - host.free))
        if abs(goal) <= IGNORE_BELOW:
            return {}
        domains = running(obs)
        if not domains:
            return {}
        mins = {d.name: min(self.configs[d.name].floor, d.maxmem) for d in domains}
        shares = {d.name: self.configs[d.name].weight for d in domains}
        extra = max(0, sum(d.current - mins[d.name] for d in domains) + goal)
        total_shares = sum(shares.values())
        targets = {}
        for dom in domains:
            desired = mins[dom.name] + extra * shares[dom.name] // total_shares
            desired = max(mins[dom.name], min(dom.maxmem, desired))
            step = max(-MAX_CHANGE, min(MAX_CHANGE, desired - dom.current))
            if step != 0:
                targets[dom.name] = dom.current + step
        return targets
