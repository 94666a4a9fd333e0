"""Domain XML in and out: tags, agent channel, memory sizes, and balloond's hold element.

Pure functions over strings (no libvirt import) so they are tested with plain XML. libvirt
is trusted, so xml.etree is enough; the hold element is still parsed defensively because
anyone with write access to a domain's metadata can put anything there.

Two metadata elements, each in its own namespace because libvirt keeps exactly one element
per namespace:

    <balloond:tags xmlns:balloond="https://balloond.dev/xmlns/1">tier=web batch</balloond:tags>
    <hold:hold xmlns:hold="https://balloond.dev/xmlns/1/hold" owner="balloonctl balloon"
        reason="..." until="1700000000.0" target="1073741824" pid="4242" host="node1"/>
"""

from __future__ import annotations

import math
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from balloond.model import Hold
from balloond.units import GiB, KiB, MiB, TiB

TAGS_NS = "https://balloond.dev/xmlns/1"
TAGS_PREFIX = "balloond"
HOLD_NS = "https://balloond.dev/xmlns/1/hold"
HOLD_KEY = "hold"  # libvirt's `key`: the namespace prefix it writes the element with
AGENT_CHANNEL = "org.balloond.agent.0"

_UNITS = {
    "b": 1,
    "bytes": 1,
    "kb": 1000,
    "k": KiB,
    "kib": KiB,
    "mb": 1000**2,
    "m": MiB,
    "mib": MiB,
    "gb": 1000**3,
    "g": GiB,
    "gib": GiB,
    "tb": 1000**4,
    "t": TiB,
    "tib": TiB,
}


@dataclass(frozen=True, slots=True)
class DomainXmlFacts:
    """What the backend caches per domain from its XML (changes only on redefine)."""

    name: str
    uuid: str
    tags: frozenset[str]
    channel: str | None
    maxmem: int | None  # <memory>, bytes
    current: int | None  # <currentMemory>, bytes
    hold: StoredHold | None = None  # our hold element in <metadata>, as `parse_hold` reads it


def _memory(element: ET.Element | None) -> int | None:
    """A libvirt memory element in bytes (libvirt's default unit is KiB)."""
    if element is None or element.text is None:
        return None
    factor = _UNITS.get(element.get("unit", "KiB").lower())
    try:
        value = int(element.text.strip())
    except ValueError:
        return None
    return None if factor is None or value < 0 else value * factor


def parse_domain_xml(xml: str) -> DomainXmlFacts:
    root = ET.fromstring(xml)
    uuid = (root.findtext("uuid") or "").strip()
    return DomainXmlFacts(
        name=(root.findtext("name") or "").strip(),
        uuid=uuid,
        tags=_tags(root),
        channel=_channel(root),
        maxmem=_memory(root.find("memory")),
        current=_memory(root.find("currentMemory")),
        hold=_hold(root, uuid),
    )


def _hold(root: ET.Element, uuid: str) -> StoredHold | None:
    element = root.find(f"metadata/{{{HOLD_NS}}}hold")
    if element is None:
        return None
    return parse_hold(ET.tostring(element, encoding="unicode"), uuid)


def _tags(root: ET.Element) -> frozenset[str]:
    element = root.find(f"metadata/{{{TAGS_NS}}}tags")
    if element is None or not element.text:
        return frozenset()
    return frozenset(element.text.split())


def _channel(root: ET.Element) -> str | None:
    for channel in root.iterfind("devices/channel"):
        target = channel.find("target")
        source = channel.find("source")
        if (
            channel.get("type") == "unix"
            and target is not None
            and target.get("name") == AGENT_CHANNEL
            and source is not None
            and source.get("path")
        ):
            return source.get("path")
    return None


def tags_element(tags: frozenset[str] | set[str]) -> str:
    """The metadata element body for `setMetadata(..., TAGS_NS)` (used by tests/tools)."""
    element = ET.Element("tags")
    element.text = " ".join(sorted(tags))
    return ET.tostring(element, encoding="unicode")


def hold_element(hold: Hold, host: str) -> str:
    """The element to store with `setMetadata(..., key=HOLD_KEY, uri=HOLD_NS)`."""
    attrs = {"owner": hold.owner, "reason": hold.reason, "domain": hold.domain, "host": host}
    if hold.until is not None:
        attrs["until"] = repr(float(hold.until))
    if hold.target is not None:
        attrs["target"] = str(int(hold.target))
    if hold.pid is not None:
        attrs["pid"] = str(int(hold.pid))
    return ET.tostring(ET.Element("hold", attrs), encoding="unicode")


@dataclass(frozen=True, slots=True)
class StoredHold:
    hold: Hold
    host: str  # the host name of the command that placed it (pid is only meaningful there)


def parse_hold(untrusted_xml: str, uuid: str) -> StoredHold | None:
    """The hold stored on domain `uuid`, or None when the element is missing or garbage.
    Garbage is treated as no hold: a broken element must not pin a domain forever."""
    try:
        element = ET.fromstring(untrusted_xml)
    except ET.ParseError:
        return None
    if element.tag.rpartition("}")[2] != "hold":
        return None
    until = _float(element.get("until"))
    target = _int(element.get("target"))
    pid = _int(element.get("pid"))
    if element.get("until") is not None and until is None:
        return None
    hold = Hold(
        domain=uuid,
        owner=(element.get("owner") or "unknown")[:200],
        reason=(element.get("reason") or "")[:500],
        until=until,
        target=target if target is not None and target > 0 else None,
        pid=pid if pid is not None and pid > 0 else None,
    )
    return StoredHold(hold=hold, host=(element.get("host") or "")[:255])


def _float(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def saved_image_facts(xml: str) -> tuple[str, int]:
    """Name and memory (bytes, the balloon size it will come back with) of a saved image's
    domain XML. Raises ValueError when the XML is not a domain."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise ValueError(f"not domain XML: {exc}") from None
    facts = parse_domain_xml(xml) if root.tag == "domain" else None
    if facts is None or not facts.name:
        raise ValueError("not domain XML: no <domain><name>")
    memory = facts.current if facts.current is not None else facts.maxmem
    if memory is None:
        raise ValueError(f"domain '{facts.name}': no <memory> in the saved image")
    return facts.name, memory


# libvirt's libxl driver writes its own header before libxl's stream (src/libxl/
# libxl_driver.c, libxlSavefileHeader): 16 bytes of magic, version and XML length as native
# u32, 40 bytes unused, then the domain XML. Its saveImageGetXMLDesc is not implemented
# (libvirt 9.0, seen in the Xen lab), so balloonctl restore reads the header itself.
LIBXL_SAVE_MAGIC = b"libvirt-xml\n \0 \r"
_LIBXL_HEADER = 64
MAX_SAVED_XML = 1 << 20


def libxl_saved_xml(head: bytes) -> str:
    """The domain XML of a libxl save image from its first bytes (at least the header and
    the XML). Raises ValueError for anything else."""
    if len(head) < _LIBXL_HEADER or not head.startswith(LIBXL_SAVE_MAGIC):
        raise ValueError("no libvirt libxl save header")
    version, length = struct.unpack_from("=II", head, len(LIBXL_SAVE_MAGIC))
    if version not in (1, 2) or not 0 < length <= MAX_SAVED_XML:
        raise ValueError(f"libxl save header: version {version}, XML of {length} bytes")
    xml = head[_LIBXL_HEADER : _LIBXL_HEADER + length]
    if len(xml) < length:
        raise ValueError("libxl save header: truncated domain XML")
    return xml.rstrip(b"\0").decode("utf-8", "replace")


def capabilities_host_uuid(xml: str) -> str | None:
    """<capabilities><host><uuid> of libvirt's capabilities XML, or None."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    found = root.findtext("./host/uuid")
    return found.strip().lower() if found and found.strip() else None
