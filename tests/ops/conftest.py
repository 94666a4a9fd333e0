"""Fixtures for the operator commands: libvirt test-driver hosts, a policy folder with floors,
and a daemon config pointing at them."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("libvirt")

from balloond.backend.libvirt import LibvirtBackend
from balloond.config import DaemonConfig
from balloond.ops import OpsContext
from balloond.policy.model import Amount
from balloond.units import GiB

HOST_XML = Path(__file__).parent.parent / "contract" / "host.xml"
HOST_URI = f"test://{HOST_XML}"

POLICIES = """\
version: 1
policies:
  - name: web
    match: {names: ["web*"]}
    floor: 1GiB
  - name: batch
    match: {tags: [batch]}
    floor: 2GiB
"""


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "10-ops.yaml").write_text(POLICIES)
    return folder


@pytest.fixture
def config(policy_dir: Path) -> DaemonConfig:
    return DaemonConfig(uri=HOST_URI, policy_dir=str(policy_dir), reserve=Amount(size=GiB))


@pytest.fixture
def config_file(tmp_path: Path, policy_dir: Path) -> Path:
    path = tmp_path / "balloond.yaml"
    path.write_text(f"uri: {HOST_URI}\npolicy_dir: {policy_dir}\nreserve: 1GiB\n")
    return path


@pytest.fixture
def ctx(config: DaemonConfig) -> Iterator[OpsContext]:
    """Operations on the custom host (its state lives in this one connection)."""
    with OpsContext(config=config).use(LibvirtBackend(HOST_URI)) as context:
        yield context


@pytest.fixture
def default_ctx(config: DaemonConfig) -> Iterator[OpsContext]:
    """Operations on test:///default (state shared by every connection in this process
    while one is open; fresh again once all are closed, so collect any domain object an
    earlier test's traceback still holds: it keeps its connection alive)."""
    gc.collect()
    with OpsContext(config=config).use(LibvirtBackend("test:///default")) as context:
        yield context
