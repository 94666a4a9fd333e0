"""The pure decision core: snapshot + policies + controller state in, decision out.

Public API:

- `decide(snapshot, policy_for, state, *, reserve, holds, now, stale_after=15.0,
  stuck_after=30.0) -> (Decision, ControllerState)` (balloond.core.decide). Pure: no clock,
  no I/O, no logging. The next state assumes every action is applied; call
  `state.forget_target(uuid)` for one that was not (dry run, failed setMemory). Domains absent
  from the snapshot are dropped from the next state.
- `ControllerState` (balloond.core.state): immutable; `.empty()`, `.memo(uuid)`,
  `.stuck_until(uuid)`, `.promised(uuid, current)`, `.forget(uuid)`, `.forget_target(uuid)`,
  `.to_dict()` / `.from_dict(data)` (JSON-safe; from_dict never raises).
- `estimate()` / `Estimate` (balloond.core.estimate): the demand estimator on its own.
- `water_fill()` (balloond.core.share): weighted sharing above floors.
- `untouched(dom, known)` / `learn()` (balloond.core.backing): the part of a balloon the host
  does not back yet, with QEMU's own share of its rss learned per process.

The law in one paragraph (docs/law.md names the function of each step):
a guest's demand is what it uses that is not reclaimable cache (the agent's report when fresh
and believable, else MemTotal - MemAvailable from the balloon statistics), plus hot cache
learned from the stall its loss caused, corrected upward at once when the guest stalls (PSI
above the policy's target, heavy swap-in or fault storms). Its want is demand plus the policy
buffer (a quarter of it on learned cache) plus the balloon the guest never sees (balloon -
MemTotal, learned while the balloon is at rest), or its own request, within [floor, ceiling];
for 30 s after a grow for pressure or demand the want does not fall below what the domain has
or was promised (unless the host is below its reserve). Wants are shared by weight above the
floors when the host cannot cover them all; growth never exceeds host free - reserve - memory
promised and not yet taken (targets not reached yet, and the part of a balloon QEMU does not
back yet: balloon - rss, which host free still counts); shrinks are gentle (policy step) except
while the host is below its reserve, and stop at the first sign of the working set (a tenth of
the pressure target, any swap-in, faults right after a shrink). Busy, held, disabled and stuck
domains are left alone; stuck domains are retried with a doubling backoff (60 s to 30 min),
never given up on.
"""

from balloond.core.decide import decide
from balloond.core.state import ControllerState, DomainMemo

__all__ = ["ControllerState", "DomainMemo", "decide"]
