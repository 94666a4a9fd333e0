"""Domain XML parsing and the hold element, without a hypervisor."""

from __future__ import annotations

import struct

import pytest

from balloond.backend.libvirt_xml import (
    HOLD_NS,
    LIBXL_SAVE_MAGIC,
    hold_element,
    libxl_saved_xml,
    parse_domain_xml,
    parse_hold,
    saved_image_facts,
    tags_element,
)
from balloond.model import Hold
from balloond.units import GiB, KiB, MiB

DOMAIN = """
<domain type='kvm'>
  <name>web1</name>
  <uuid>0b1e8f0c-0000-4000-8000-000000000001</uuid>
  <metadata>
    <other:thing xmlns:other="https://example.org/x">tier=db</other:thing>
    <balloond:tags xmlns:balloond="https://balloond.dev/xmlns/1">
      tier=web   frontend
    </balloond:tags>
  </metadata>
  <memory unit='GiB'>4</memory>
  <currentMemory>1048576</currentMemory>
  <devices>
    <channel type='unix'>
      <source mode='bind' path='/var/lib/libvirt/qemu/channel/target/org.qemu.guest_agent.0'/>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
    </channel>
    <channel type='pty'><target type='virtio' name='org.balloond.agent.0'/></channel>
    <channel type='unix'>
      <source mode='bind' path='/run/balloond/web1.sock'/>
      <target type='virtio' name='org.balloond.agent.0'/>
    </channel>
  </devices>
</domain>
"""


def test_domain_facts() -> None:
    facts = parse_domain_xml(DOMAIN)
    assert facts.name == "web1"
    assert facts.uuid.endswith("0001")
    assert facts.tags == frozenset({"tier=web", "frontend"})  # not the other namespace's
    assert facts.channel == "/run/balloond/web1.sock"  # the unix one with our name
    assert facts.maxmem == 4 * GiB
    assert facts.current == 1048576 * KiB  # libvirt's default unit is KiB


def test_domain_without_extras() -> None:
    facts = parse_domain_xml("<domain><name>a</name><memory unit='MiB'>512</memory></domain>")
    assert (facts.tags, facts.channel, facts.maxmem, facts.current) == (
        frozenset(),
        None,
        512 * MiB,
        None,
    )


@pytest.mark.parametrize(
    "bad", ["<memory unit='parsecs'>4</memory>", "<memory>-4</memory>", "<memory>four</memory>"]
)
def test_unreadable_memory_is_none(bad: str) -> None:
    assert parse_domain_xml(f"<domain><name>a</name>{bad}</domain>").maxmem is None


def test_hold_round_trip() -> None:
    hold = Hold(
        domain="u1",
        owner="balloonctl balloon",
        reason='ops <&> "quoted"',
        until=1_700_000_000.25,
        target=768 * MiB,
        pid=4242,
    )
    stored = parse_hold(hold_element(hold, "node1"), "u1")
    assert stored is not None
    assert stored.hold == hold
    assert stored.host == "node1"


def test_hold_in_namespace_as_libvirt_returns_it() -> None:
    xml = f'<balloondhold:hold xmlns:balloondhold="{HOLD_NS}" owner="x" reason="y"/>'
    stored = parse_hold(xml, "u1")
    assert stored is not None and stored.hold.owner == "x" and stored.hold.until is None


@pytest.mark.parametrize(
    "hostile",
    [
        "not xml at all <",
        "<other owner='x'/>",
        "<hold until='soon'/>",
        "<hold until='nan'/>",
        "<hold until='inf'/>",
        "<!DOCTYPE x [<!ENTITY a 'aaaa'>]><hold owner='&a;&a;' until='1e400'/>",
    ],
)
def test_garbage_hold_is_no_hold(hostile: str) -> None:
    assert parse_hold(hostile, "u1") is None


def test_hold_with_silly_values_is_tamed() -> None:
    stored = parse_hold("<hold owner='" + "o" * 5000 + "' target='-5' pid='zero'/>", "u1")
    assert stored is not None
    assert len(stored.hold.owner) == 200
    assert stored.hold.target is None and stored.hold.pid is None


def test_tags_element() -> None:
    assert tags_element({"b", "a=1"}) == "<tags>a=1 b</tags>"


def test_saved_image_facts_prefers_the_balloon_size() -> None:
    assert saved_image_facts(DOMAIN) == ("web1", GiB)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "<network><name>n</name></network>",
        "<domain/>",
        "<domain><name>x</name></domain>",
        "<<<",
    ],
)
def test_saved_image_facts_rejects_non_domains(bad: str) -> None:
    with pytest.raises(ValueError):
        saved_image_facts(bad)


def _libxl_image(xml: bytes, version: int = 2) -> bytes:
    header = LIBXL_SAVE_MAGIC + struct.pack("=II", version, len(xml) + 1) + bytes(40)
    return header + xml + b"\0" + b"libxl stream follows"


def test_libxl_save_header_gives_the_domain_xml() -> None:
    """libvirt's libxl driver has no saveImageGetXMLDesc (the Xen lab: 'this function is
    not supported by the connection driver'), so restore reads its header itself."""
    xml = b"<domain type='xen'><name>a</name><memory unit='KiB'>524288</memory>" + (
        b"<currentMemory unit='KiB'>196608</currentMemory></domain>"
    )
    assert saved_image_facts(libxl_saved_xml(_libxl_image(xml))) == ("a", 192 * 1024 * 1024)
    wrong = _libxl_image(xml, version=9)
    for bad in (b"", b"LibvirtQemudSave" + bytes(64), wrong, _libxl_image(xml)[:80]):
        with pytest.raises(ValueError):
            libxl_saved_xml(bad)
