"""The first hour of a new operator: `make demo` shows the demo and nothing else, and the
README walks the install as it should be done (packages, dry run first, the guest side)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_demo_prints_the_demo_and_nothing_else() -> None:
    done = subprocess.run(
        ["make", "--no-print-directory", "demo", "ARGS=--duration 3s --port 0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""  # no build banners, no pip notices
    lines = done.stdout.splitlines()
    assert re.match(r"^\d\d:\d\d:\d\d policies loaded from ", lines[0]), lines[:3]
    assert lines[1].startswith("balloond demo: "), lines[:3]
    assert lines[-1].startswith("balloond: stopped after "), lines[-3:]
    assert not [line for line in lines if re.search(r"pip|setuptools|WARNING|\.venv/", line)]


def _section(text: str, title: str) -> str:
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_the_readme_installs_from_the_packages_and_tries_before_enabling() -> None:
    install = _section(
        (ROOT / "README.md").read_text(encoding="utf-8"), "Install on a hypervisor host"
    )
    assert "apt-get install ./dist/deb/balloond_" in install
    assert "--system-site-packages" in install and "python3-libvirt" in install
    assert "gcc" not in install  # nothing to compile
    assert install.index("balloond run --dry-run --once") < install.index(
        "systemctl enable --now balloond"
    )
    assert "cp policies/*.yaml" not in install  # only the default policy goes live
    assert "balloonctl agent-snippet" in install and "balloond-guest" in install


def test_the_readme_names_the_package_version_it_builds() -> None:
    from balloond import __version__

    install = _section(
        (ROOT / "README.md").read_text(encoding="utf-8"), "Install on a hypervisor host"
    )
    assert f"balloond_{__version__}_all.deb" in install
    assert f"balloond-guest_{__version__}_all.deb" in install
