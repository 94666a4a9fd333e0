"""The pure decision core: snapshot + policies + controller state in, decision out.

Public API:

- `decide(snapshot, policy_for, state, *, reserve, holds, now, stale_after=15.0,
  stuck_after=30.0) -> (Decision, ControllerState)` (balloond.core.decide)
- `ControllerState` (balloond.core.state): `.empty()`, `.stuck_until(uuid)`,
  `.promised(uuid, current)`, `.forget(uuid)`, `.forget_target(uuid)`, `.to_dict()`,
  `.from_dict(data)`
- `estimate()` / `Estimate` (balloond.core.estimate): the demand estimator on its own.
"""

from balloond.core.decide import decide
from balloond.core.state import ControllerState, DomainMemo

__all__ = ["ControllerState", "DomainMemo", "decide"]
