"""parse_report: the one place untrusted guest lines become GuestReports."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from balloond_guest import AGENT
from hypothesis import given, settings
from hypothesis import strategies as st

from balloond.errors import ReportRejected
from balloond.model import GuestReport
from balloond.reports import MAX_LINE, parse_report
from balloond.units import GiB, KiB

MAXMEM = 2 * GiB
FIXTURE = Path(__file__).parent / "agent/fixtures/linux-6.1-kvm-psi"


def real_agent_line(**extra: Any) -> bytes:
    """A line exactly as the guest agent writes it for the 6.1 fixture tree."""
    from balloond_guest import demand, protocol

    sample = demand.take_sample(str(FIXTURE), 10.0)
    rates = demand.rates(demand.take_sample(str(FIXTURE), 5.0), sample)
    need = demand.demand_of(sample.meminfo)
    message = protocol.report(41, sample, rates, need, None, "periodic", 5.0)
    message.update(extra)
    return protocol.encode(message)


def parse(line: bytes, previous: int | None = None, maxmem: int = MAXMEM) -> GuestReport:
    return parse_report(line, maxmem=maxmem, now=1000.0, previous_seq=previous)


def reason(line: bytes, previous: int | None = None, maxmem: int = MAXMEM) -> str:
    with pytest.raises(ReportRejected) as caught:
        parse(line, previous, maxmem)
    return caught.value.reason


def line_of(**fields: Any) -> bytes:
    base: dict[str, Any] = {"v": 1, "type": "report", "seq": 5, "agent": "balloond-guest/0.1"}
    base.update(fields)
    return json.dumps(base).encode()


def test_a_real_agent_line_round_trips() -> None:
    report = parse(real_agent_line())
    assert report.seq == 41 and report.received_at == 1000.0
    assert report.agent_version == AGENT
    assert report.mem_total == 479848 * KiB
    assert report.demand == (479848 - 330112) * KiB
    assert report.psi_some_avg10 == pytest.approx(0.025)
    assert report.psi_some == 0.0 and report.swap_in_rate == 0.0
    assert report.requested_target is None


def test_unknown_fields_are_ignored_and_the_request_is_kept() -> None:
    report = parse(line_of(request=GiB, future_field={"x": 1}, note="hi"))
    assert report.requested_target == GiB


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"x" * (MAX_LINE + 2), "too_long"),
        (b"\xff\xfe{}", "bad_encoding"),
        (b"not json", "bad_json"),
        (b"[1, 2]", "bad_json"),
        (b"[" * 500 + b"]" * 500, "bad_json"),
        (line_of(nested={"a": {"b": {"c": {"d": [[[[[[1]]]]]]}}}}), "bad_json"),
        (line_of(v=2), "version"),
        (line_of(v="1"), "version"),
        (line_of(v=True), "version"),
        (line_of(v=None), "version"),
        (line_of(type="limits"), "bad_field"),
        (line_of(seq=-1), "bad_field"),
        (line_of(seq="5"), "bad_field"),
        (line_of(seq=True), "bad_field"),
        (line_of(agent="\x1b[31mred"), "bad_field"),
        (line_of(agent="a" * 65), "bad_field"),
        (line_of(mem_total=True), "bad_field"),
        (line_of(mem_total=1.5e9), "bad_field"),
        (line_of(mem_total="1G"), "bad_field"),
        (line_of(mem_total=-1), "out_of_range"),
        (line_of(mem_total=MAXMEM + 1), "out_of_range"),
        (line_of(request=MAXMEM * 4), "out_of_range"),
        (line_of(demand=10**30), "out_of_range"),
        (line_of(swap_total=2**61), "out_of_range"),
        (line_of(psi_some=1.5), "out_of_range"),
        (line_of(psi_some=-0.1), "out_of_range"),
        (line_of(psi_full="high"), "bad_field"),
        (line_of(swap_in_rate=1e300), "out_of_range"),
        (b'{"v":1,"type":"report","seq":1,"psi_some":NaN}', "bad_field"),
        (b'{"v":1,"type":"report","seq":1,"psi_some":Infinity}', "bad_field"),
        (b'{"v":1,"type":"report","seq":1,"psi_some":1e999}', "out_of_range"),
        (b'{"v":1,"type":"report","seq":1,"demand":' + b"9" * 5000 + b"}", "too_long"),
        (b'{"v":1,"type":"report","seq":1,"demand":' + b"9" * 400 + b"}", "out_of_range"),
        (line_of(mem_total=GiB, mem_available=GiB + 1), "out_of_range"),
        (line_of(swap_total=1, swap_free=2), "out_of_range"),
    ],
)
def test_hostile_lines_are_refused_with_a_reason(line: bytes, expected: str) -> None:
    assert reason(line) == expected


def test_a_refusal_names_the_field_and_the_value() -> None:
    with pytest.raises(ReportRejected, match=r"mem_total 4294967297 is outside 0\.\.2147483648"):
        parse(line_of(mem_total=2 * MAXMEM + 1))
    with pytest.raises(ReportRejected, match="protocol version 2; this host speaks 1"):
        parse(line_of(v=2))


def test_maxmem_is_the_domains_own() -> None:
    line = line_of(request=GiB)
    assert parse(line, maxmem=GiB).requested_target == GiB
    assert reason(line, maxmem=GiB - 1) == "out_of_range"


def test_seq_must_rise_but_an_agent_restart_is_accepted() -> None:
    assert parse(line_of(seq=5000), previous=4999).seq == 5000
    assert reason(line_of(seq=5000), previous=5000) == "stale_seq"
    assert reason(line_of(seq=4000), previous=5000) == "stale_seq"
    assert parse(line_of(seq=1), previous=5000).seq == 1  # the agent started again


def test_a_trailing_newline_is_fine_and_the_limit_is_exact() -> None:
    assert parse(line_of() + b"\n").seq == 5
    padded = line_of(pad="x" * 4000)
    exact = padded[:-2] + b" " * (MAX_LINE - len(padded)) + padded[-2:]
    assert len(exact) == MAX_LINE and parse(exact + b"\n").seq == 5
    assert reason(exact[:-1] + b" }") == "too_long"


json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = [
    "v",
    "type",
    "seq",
    "agent",
    "mem_total",
    "mem_available",
    "committed_as",
    "cached",
    "shmem",
    "swap_total",
    "swap_free",
    "demand",
    "request",
    "psi_some",
    "psi_full",
    "psi_some_avg10",
    "swap_in_rate",
    "swap_out_rate",
    "major_fault_rate",
]


def _check_outcome(line: bytes, maxmem: int) -> None:
    try:
        report = parse_report(line, maxmem=maxmem, now=1.0, previous_seq=None)
    except ReportRejected as rejected:
        assert rejected.reason in {
            "too_long",
            "bad_encoding",
            "bad_json",
            "bad_field",
            "version",
            "out_of_range",
            "stale_seq",
        }
        return
    for name in ("mem_total", "mem_available", "cached", "shmem", "demand", "requested_target"):
        value = getattr(report, name)
        assert value is None or (type(value) is int and 0 <= value <= maxmem)
    for name in ("psi_some", "psi_full", "psi_some_avg10"):
        value = getattr(report, name)
        assert value is None or (math.isfinite(value) and 0.0 <= value <= 1.0)


@settings(max_examples=300)
@given(data=st.binary(max_size=6000), maxmem=st.integers(1, 2**50))
def test_any_bytes_give_a_report_or_a_refusal(data: bytes, maxmem: int) -> None:
    _check_outcome(data, maxmem)


@settings(max_examples=300)
@given(
    fields=st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), json_value, max_size=25),
    valid_header=st.booleans(),
    maxmem=st.integers(1, 2**50),
)
def test_any_json_object_gives_a_report_or_a_refusal(
    fields: dict[str, Any], valid_header: bool, maxmem: int
) -> None:
    if valid_header:
        fields.update({"v": 1, "type": "report", "seq": 1})
    line = json.dumps(fields, allow_nan=True).encode()
    _check_outcome(line, maxmem)


@given(depth=st.integers(1, 3000), bracket=st.sampled_from([b"[", b'{"a":']))
def test_deep_nesting_never_recurses(depth: int, bracket: bytes) -> None:
    _check_outcome(bracket * depth, GiB)
