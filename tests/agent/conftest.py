"""Fixtures for the guest agent tests: copies of the /proc trees, and a fake host socket."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.agent import FIXTURES


@pytest.fixture
def tree(tmp_path: Path) -> Callable[[str], str]:
    """tree('linux-6.1-kvm-psi') -> a private copy's path, safe to write into."""

    def copy(name: str) -> str:
        target = tmp_path / name
        shutil.copytree(FIXTURES / name, target)
        return str(target)

    return copy
