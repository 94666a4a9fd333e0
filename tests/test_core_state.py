"""ControllerState: round trip through JSON, garbage tolerance, forget, backoff."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from balloond.core.state import (
    STUCK_BACKOFF_CAP,
    ControllerState,
    DomainMemo,
    stuck_backoff,
)
from balloond.units import GiB

FULL = DomainMemo(
    swap_in=0,
    major_faults=12,
    counters_at=1.5,
    peak=GiB,
    peak_at=2.0,
    target=1 << 31,
    target_at=3.0,
    mark_current=GiB,
    mark_at=4.0,
    stuck_until=5.0,
    strikes=3,
)


def test_round_trip_through_json_keeps_every_field() -> None:
    state = ControllerState.of({"u1": FULL, "u2": DomainMemo()})
    back = ControllerState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert dict(back.domains) == {"u1": FULL, "u2": DomainMemo()}


def test_zero_counters_survive_the_round_trip() -> None:
    state = ControllerState.of({"u": DomainMemo(swap_in=0, major_faults=0, counters_at=1.0)})
    assert ControllerState.from_dict(state.to_dict()).memo("u").swap_in == 0


def test_empty_and_accessors() -> None:
    state = ControllerState.empty()
    assert state.stuck_until("nope") is None and state.promised("nope", 5) == 0
    state = ControllerState.of({"u": FULL})
    assert state.stuck_until("u") == 5.0
    assert state.promised("u", GiB) == GiB
    assert state.promised("u", 1 << 32) == 0


def test_forget_and_forget_target() -> None:
    state = ControllerState.of({"u": FULL, "v": DomainMemo()})
    assert set(state.forget("u").domains) == {"v"}
    assert state.forget("absent") is state
    cleared = state.forget_target("u").memo("u")
    assert cleared.target is None and cleared.mark_at is None and cleared.strikes == 3
    assert state.domains["u"] == FULL  # the original is untouched


@pytest.mark.parametrize(
    "garbage",
    [None, 5, "x", [], {"domains": 5}, {"domains": []}, {"version": 1}, {"domains": None}],
)
def test_garbage_document_gives_empty_state(garbage: object) -> None:
    assert dict(ControllerState.from_dict(garbage).domains) == {}


@pytest.mark.parametrize(
    "entry",
    [
        5,
        "memo",
        {"target": "2G"},
        {"target": -1},
        {"target": True},
        {"target": 1 << 70},
        {"stuck_until": math.inf},
        {"stuck_until": math.nan},
        {"stuck_until": -3.0},
        {"unknown_field": 1},
        {"strikes": 1.5},
    ],
)
def test_bad_entries_are_dropped_good_ones_kept(entry: object) -> None:
    data = {"domains": {"bad": entry, "good": {"target": 1024}, 7: {"target": 1}}}
    state = ControllerState.from_dict(data)
    assert set(state.domains) == {"good"}
    assert state.memo("good").target == 1024


def test_strikes_are_capped() -> None:
    state = ControllerState.from_dict({"domains": {"u": {"strikes": 10**9}}})
    assert state.memo("u").strikes == 64


def test_backoff_doubles_from_a_minute_and_is_capped() -> None:
    assert [stuck_backoff(n) for n in range(1, 6)] == [60.0, 120.0, 240.0, 480.0, 960.0]
    assert stuck_backoff(6) == STUCK_BACKOFF_CAP == 1800.0
    assert stuck_backoff(10_000) == STUCK_BACKOFF_CAP


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_from_dict_never_raises_and_round_trips(data: object) -> None:
    state = ControllerState.from_dict(data)
    again = ControllerState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert dict(again.domains) == dict(state.domains)


_sizes = st.none() | st.integers(0, 1 << 50)
_times = st.none() | st.floats(0, 1e11)
memos = st.builds(
    DomainMemo,
    **{
        name: _sizes
        for name in (
            "swap_in",
            "major_faults",
            "peak",
            "target",
            "mark_current",
            "hidden",
            "overhead",
            "overhead_seen",
            "seen_current",
            "pressed",
            "swap_out",
        )
    },
    **{
        name: _times
        for name in (
            "counters_at",
            "peak_at",
            "target_at",
            "mark_at",
            "stuck_until",
            "hidden_at",
            "shrunk_at",
            "fault_base",
            "current_since",
            "grown_at",
            "pressed_at",
        )
    },
    strikes=st.integers(0, 64),
)


@given(st.dictionaries(st.text(min_size=1, max_size=40), memos, max_size=5))
def test_valid_states_round_trip_exactly(domains: dict[str, DomainMemo]) -> None:
    state = ControllerState.of(domains)
    assert dict(ControllerState.from_dict(json.loads(json.dumps(state.to_dict()))).domains) == (
        domains
    )
