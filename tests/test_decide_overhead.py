"""The balloon the guest never sees: a guest's MemTotal is smaller than its balloon (kernel
image, struct pages, firmware; ~50 MiB measured in the real-VM lab). Demand is measured in the
guest's terms, a target is a balloon size: the target adds the difference, or a demand-sized
target leaves the guest nothing available (the lab's scenarios 3 and 4 were OOM-killed)."""

from __future__ import annotations

from balloond.model import Reason
from balloond.policy.model import Amount, Policy
from balloond.units import GiB, MiB
from balloond.units import format_size as sz
from tests.support.decide import dom, one, stats

SMALL = Policy(name="small", floor=Amount(ratio=0.5), max_grow_step=None)


def test_a_growing_small_guest_gets_its_buffer_inside_memtotal() -> None:
    # The lab's guest: 512 MiB maxmem, balloon 295 MiB, MemTotal 50 MiB less, 235 MiB used.
    current, overhead, used = 295 * MiB, 50 * MiB, 235 * MiB
    d = one(dom("lab", current, maxmem=512 * MiB, st=stats(used, current - overhead)), policy=SMALL)
    assert d.reason is Reason.GROW_DEMAND and d.act
    assert d.target == int(used * 1.2) + overhead
    available_after = d.target - overhead - used
    assert available_after >= int(used * 0.2)  # the 20% buffer, as MemAvailable in the guest
    assert f"+ {50} MiB not in MemTotal" in d.explanation, d.explanation


def test_no_overhead_when_memtotal_is_the_balloon() -> None:
    d = one(dom("flat", 2 * GiB, used=700 * MiB), policy=Policy(name="p", floor=Amount(size=0)))
    assert "not in MemTotal" not in d.explanation
    assert d.reason is Reason.SHRINK_IDLE


def test_an_implausible_gap_is_not_taken_as_overhead() -> None:
    # MemTotal far below the balloon (a stale reading after a grow): not added to the target.
    current = 2 * GiB
    fast = Policy(name="p", floor=Amount(size=0), max_shrink_step=Amount(ratio=1.0))
    d = one(dom("odd", current, st=stats(600 * MiB, 1 * GiB)), free=0, reserve=0, policy=fast)
    assert d.target == int(600 * MiB * 1.2), d.explanation
    assert "not in MemTotal" not in d.explanation


def test_statistics_from_before_a_grow_do_not_grow_the_guest_on_its_own_growth() -> None:
    # 8 GiB maxmem guest grown from 4 to 4.8 GiB; the statistics still show the old
    # MemTotal (4 GiB - 100 MiB). The 900 MiB gap is within 25 % of the balloon, but no
    # kernel reserves that much: only the plausible cap (64 MiB + maxmem/32) is added.
    current, used = 4915 * MiB, 3 * GiB
    fast = Policy(name="p", floor=Amount(size=0), max_shrink_step=Amount(ratio=1.0))
    d = one(dom("grown", current, maxmem=8 * GiB, st=stats(used, 4 * GiB - 100 * MiB)), policy=fast)
    cap = 64 * MiB + 8 * GiB // 32
    assert d.target == int(used * 1.2) + cap, d.explanation
    assert f"+ {sz(cap)} not in MemTotal" in d.explanation, d.explanation
