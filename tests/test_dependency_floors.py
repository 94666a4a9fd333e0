"""The version floors are Debian 12's versions, stated alike everywhere, and proven.

pyproject.toml's floors, debian/control's versioned Depends and the versions the floor run
(scripts/floor-test, part of `make test`) imports must be one and the same: a floor raised in
one place only, or a floor run that silently picked up a newer library, fails here.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# PyPI name -> Debian 12 package
DEBIAN_NAMES = {
    "pyyaml": "python3-yaml",
    "prometheus-client": "python3-prometheus-client",
    "apscheduler": "python3-apscheduler",
    "rich": "python3-rich",
    "libvirt-python": "python3-libvirt",
}


def floors() -> dict[str, str]:
    """PyPI name -> the floor pyproject.toml sets (the libvirt extra's included)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    found: dict[str, str] = {}
    for spec in [*project["dependencies"], *project["optional-dependencies"]["libvirt"]]:
        match = re.match(r"^([A-Za-z0-9_.-]+)>=([0-9.]+)", spec)
        assert match, f"{spec!r}: every runtime dependency states its floor"
        found[match[1].lower()] = match[2]
    return found


def test_every_runtime_dependency_has_a_debian_12_package() -> None:
    assert set(floors()) == set(DEBIAN_NAMES)


def test_debian_control_depends_on_the_same_floors() -> None:
    control = (ROOT / "debian" / "control").read_text(encoding="utf-8")
    binary = control.split("\nPackage: balloond\n", 1)[1].split("\nPackage:", 1)[0]
    depends = dict(re.findall(r"(python3-[a-z-]+) \(>= ([0-9.]+)\)", binary))
    assert depends == {DEBIAN_NAMES[name]: floor for name, floor in floors().items()}


def test_the_package_version_is_the_debian_version() -> None:
    from balloond_guest import VERSION

    from balloond import __version__

    changelog = (ROOT / "debian" / "changelog").read_text(encoding="utf-8")
    debian_version = re.match(r"^balloond \(([^)]+)\)", changelog)
    assert debian_version is not None
    assert __version__ == VERSION == debian_version[1]


@pytest.mark.skipif(
    not os.environ.get("BALLOOND_FLOOR_RUN"), reason="only in the floor run (scripts/floor-test)"
)
def test_the_floor_run_imports_exactly_the_floors_from_debian() -> None:
    for name, floor in floors().items():
        dist = importlib.metadata.distribution(name)
        assert dist.version == floor, f"{name}: {dist.version} imported, the floor is {floor}"
        where = str(dist.locate_file(""))
        assert where.startswith("/usr/lib/python3/dist-packages"), f"{name} from {where}"
