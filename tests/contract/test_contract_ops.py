"""The operator commands (balloond.ops) on every backend: the same code drives libvirt and the
simulated host, so what balloonctl promises holds on both."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from balloond.config import DaemonConfig
from balloond.errors import Refused
from balloond.model import DomainState
from balloond.ops import OpsContext, balloon, release, restore_domain, save_domain
from balloond.units import MiB
from tests.support.contract import running


@pytest.fixture
def ctx(backend: Any, tmp_path: Path) -> OpsContext:
    """No policy folder: the built-in default policy (floor 25% of maxmem)."""
    config = DaemonConfig(uri=backend.uri, policy_dir=str(tmp_path / "no-policies"))
    return OpsContext(config=config).use(backend)


def _pin_size(ctx: OpsContext, dom: Any) -> int:
    """A size between the floor and the current size, in whole MiB."""
    floor = ctx.floor_for(dom)
    return max(floor, (dom.current // 2) // MiB * MiB)


def test_balloon_pins_and_release_clears(ctx: OpsContext, harness: Any) -> None:
    dom = running(ctx.backend)
    size = _pin_size(ctx, dom)
    result = balloon(ctx, dom.name, size)
    harness.settle()
    after = {d.name: d for d in ctx.backend.domains()}[dom.name]
    assert after.current == size == result.target
    hold = ctx.backend.holds()[dom.uuid]
    assert (hold.owner, hold.target, hold.pid, hold.until) == (
        "balloonctl balloon",
        size,
        None,
        None,
    )
    assert release(ctx, dom.name) is not None
    assert dom.uuid not in ctx.backend.holds()


def test_balloon_refusals_change_nothing(ctx: OpsContext) -> None:
    dom = running(ctx.backend)
    floor = ctx.floor_for(dom)
    for size in (dom.maxmem + MiB, floor - MiB):
        with pytest.raises(Refused, match=dom.name):
            balloon(ctx, dom.name, size)
    assert {d.name: d for d in ctx.backend.domains()}[dom.name].current == dom.current
    assert dom.uuid not in ctx.backend.holds()


def test_save_and_restore_keep_the_ballooned_size_and_the_pin(
    ctx: OpsContext, harness: Any, tmp_path: Path
) -> None:
    dom = running(ctx.backend)
    size = _pin_size(ctx, dom)
    balloon(ctx, dom.name, size)
    harness.settle()
    image = tmp_path / "saved.img"
    saved = save_domain(ctx, dom.name, str(image))
    assert saved.memory == size
    assert os.stat(image).st_mode & 0o777 == 0o600
    active = {d.name for d in ctx.backend.domains() if d.state != DomainState.SHUTOFF}
    assert dom.name not in active
    with pytest.raises(Refused, match="already exists"):
        save_domain(ctx, dom.name, str(image))
    restored = restore_domain(ctx, str(image), force=True)
    assert (restored.name, restored.memory) == (dom.name, size)
    back = {d.name: d for d in ctx.backend.domains()}[dom.name]
    assert back.current == size and back.state == DomainState.RUNNING
    (hold,) = ctx.backend.holds().values()  # the pin came back; the save's own hold did not
    assert (hold.owner, hold.target, hold.pid) == ("balloonctl balloon", size, None)
