"""`balloonctl agent-snippet`: the XML it prints, and --apply through virsh."""

from __future__ import annotations

import shutil
import stat
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from balloond.cli import ctl_agent
from balloond.cli.common import run_cli


def snippet(argv: list[str]) -> int:
    return run_cli("balloonctl", "test", [ctl_agent], ["agent-snippet", *argv])


def test_the_snippet_is_the_channel_balloond_looks_for(capsys: pytest.CaptureFixture[str]) -> None:
    assert snippet(["web1"]) == 0
    element = ET.fromstring(capsys.readouterr().out)
    assert element.tag == "channel" and element.get("type") == "unix"
    source, target = element.find("source"), element.find("target")
    assert source is not None and target is not None
    assert source.get("mode") == "bind"
    assert source.get("path") == "/var/lib/libvirt/qemu/channel/balloond/web1.sock"
    assert target.get("type") == "virtio" and target.get("name") == "org.balloond.agent.0"


def test_the_libvirt_backend_would_find_this_channel(capsys: pytest.CaptureFixture[str]) -> None:
    xml_mod = pytest.importorskip("balloond.backend.libvirt_xml")
    snippet(["web1", "--socket", "/run/x/web1.sock"])
    channel = capsys.readouterr().out
    domain = f"<domain><name>web1</name><devices>{channel}</devices></domain>"
    assert xml_mod._channel(ET.fromstring(domain)) == "/run/x/web1.sock"


@pytest.mark.parametrize("name", ["../etc/passwd", "a/b", ".hidden", "", "x" * 300, "we b"])
def test_names_unsafe_in_a_path_are_refused(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert snippet([name]) == 3
    assert "not safe in a socket path" in capsys.readouterr().err


def test_quotes_in_an_explicit_socket_path_are_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    snippet(["web1", "--socket", "/run/it's/<x>.sock"])
    element = ET.fromstring(capsys.readouterr().out)
    assert element.find("source").get("path") == "/run/it's/<x>.sock"  # type: ignore[union-attr]


@pytest.mark.skipif(shutil.which("virsh") is None, reason="virsh not installed")
def test_apply_reports_virshs_own_refusal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # libvirt's test driver parses the XML but does not implement attach-device.
    code = snippet(["test", "--apply", "-c", "test:///default", "--socket-dir", str(tmp_path)])
    assert code == 1
    assert "virsh attach-device failed" in capsys.readouterr().err


def test_apply_hands_virsh_the_snippet_with_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = tmp_path / "argv"
    fake = tmp_path / "virsh"
    fake.write_text(f'#!/bin/sh\necho "$@" > {record}\ncat "$5" >> {record}\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    code = snippet(
        [
            "web1",
            "--apply",
            "--live",
            "--virsh",
            str(fake),
            "-c",
            "qemu:///system",
            "--socket-dir",
            str(tmp_path / "chan"),
        ]
    )
    assert code == 0
    argv, _, xml = record.read_text().partition("\n")
    assert argv.startswith("-c qemu:///system attach-device web1 ")
    assert argv.endswith("--config --live")
    assert "org.balloond.agent.0" in xml and (tmp_path / "chan").is_dir()
    assert "persistent config" not in capsys.readouterr().out
