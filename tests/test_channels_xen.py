"""The xenstore reader. No Xen runs here: the text is in the format `xenstore-ls -f` and
`xenstore-read` print, and the command runner is a plain function."""

from __future__ import annotations

from collections.abc import Sequence

from balloond.channels import XenstoreReader, parse_xenstore_ls
from balloond.model import DomainSnapshot
from balloond.telemetry import Telemetry
from balloond.units import GiB

LS_TEXT = r"""/local/domain/7/data/balloond = ""
/local/domain/7/data/balloond/report = "{\"v\":1,\"type\":\"report\",\"seq\":12}"
/local/domain/7/data/balloond/odd = "tab\there\\back\x01"
/local/domain/7/memory/target = "524288"   (n0,r7)
"""


def test_xenstore_ls_output_is_parsed_and_unescaped() -> None:
    found = parse_xenstore_ls(LS_TEXT)
    assert found["/local/domain/7/memory/target"] == "524288"
    assert found["/local/domain/7/data/balloond/report"].startswith('{"v":1,"type":"report"')
    assert found["/local/domain/7/data/balloond/odd"] == "tab\there\\back\x01"
    assert parse_xenstore_ls('garbage\n= "x"\n') == {}


def _domain(name: str, domid: int | None, hypervisor: str = "xen") -> DomainSnapshot:
    return DomainSnapshot(
        name=name,
        uuid=f"u-{name}",
        current=GiB,
        maxmem=GiB,
        id=domid,
        hypervisor=hypervisor,
    )


def test_reader_reads_each_xen_domains_own_path_and_sanitises() -> None:
    head = '{"v":1,"type":"report",'
    store = {
        "/local/domain/7/data/balloond/report": head + '"seq":12,"demand":268435456}\n',
        "/local/domain/8/data/balloond/report": head + '"seq":3,"demand":99999999999}\n',
    }
    calls: list[Sequence[str]] = []

    def runner(argv: Sequence[str]) -> str | None:
        calls.append(argv)
        return store.get(argv[1])

    telemetry = Telemetry()
    reader = XenstoreReader(telemetry, lambda: 50.0, runner)
    domains = [_domain("a", 7), _domain("b", 8), _domain("c", 9), _domain("kvm", 3, "qemu")]
    reader.sync(domains)
    assert set(reader.reports()) == {"u-a"}
    assert reader.reports()["u-a"].demand == 268435456
    assert telemetry.reports_rejected["out_of_range"] == 1  # b claims more than its maxmem
    assert [c[1] for c in calls] == [
        "/local/domain/7/data/balloond/report",
        "/local/domain/8/data/balloond/report",
        "/local/domain/9/data/balloond/report",
    ]
    reader.sync(domains)  # the same value again: not a new report, not a rejection
    assert telemetry.reports_accepted["a"] == 1
    assert sum(telemetry.reports_rejected.values()) == 1  # b's unchanged line: counted once
    reader.sync([])
    assert reader.reports() == {}
