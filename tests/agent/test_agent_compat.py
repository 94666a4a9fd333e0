"""The agent must run on old, minimal guests: Python 3.7+, standard library only, and only
modules a minimal Debian guest has (python3.11-minimal + libpython3.11-stdlib)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.agent import FIXTURES

AGENT = Path(__file__).resolve().parents[2] / "guest-agent"
VERMIN = Path(sys.executable).parent / "vermin"
DEBIAN_PYTHON = Path("/usr/bin/python3.11")
DPKG_LISTS = [
    Path("/var/lib/dpkg/info/python3.11-minimal.list"),
    Path("/var/lib/dpkg/info/libpython3.11-minimal:amd64.list"),
    Path("/var/lib/dpkg/info/libpython3.11-stdlib:amd64.list"),
]


def test_vermin_says_python_3_7_is_enough() -> None:
    if not VERMIN.exists():
        pytest.skip("vermin is not installed in this environment")
    done = subprocess.run(
        [str(VERMIN), "-t=3.7-", "--no-tips", "--violations", str(AGENT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_agent_imports_nothing_outside_the_standard_library() -> None:
    stdlib = set(sys.stdlib_module_names)
    for path in (AGENT / "balloond_guest").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top in stdlib or top == "balloond_guest", f"{path.name} imports {name}"


def test_every_annotated_agent_module_keeps_its_annotations_unevaluated() -> None:
    """The agent is typed for mypy with 3.9+ spellings (`int | None`, `list[str]`) that Python
    3.7 cannot evaluate; `from __future__ import annotations` keeps them strings there. vermin
    does not evaluate annotations, so without this a module would pass it and fail on 3.7."""
    for path in sorted((AGENT / "balloond_guest").glob("*.py")):
        tree = ast.parse(path.read_text())
        annotated = any(
            isinstance(node, ast.AnnAssign)
            or (
                isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                and (
                    node.returns is not None
                    or any(
                        a.annotation is not None
                        for a in ast.walk(node.args)
                        if isinstance(a, ast.arg)
                    )
                )
            )
            for node in ast.walk(tree)
        )
        future = any(
            isinstance(node, ast.ImportFrom)
            and node.module == "__future__"
            and any(alias.name == "annotations" for alias in node.names)
            for node in tree.body
        )
        assert future or not annotated, f"{path.name} lacks `from __future__ import annotations`"


_PROBE = """
import sys, json
sys.path.insert(0, sys.argv[1])
from balloond_guest import cli
code = cli.main(["run", "--once", "--transport", "stdout", "--root", sys.argv[2]])
mods = {m: getattr(sys.modules[m], "__file__", None) for m in list(sys.modules)}
print(json.dumps({"code": code, "modules": mods}))
"""


def test_debians_python_runs_the_agent_with_only_minimal_and_stdlib_packages() -> None:
    if not DEBIAN_PYTHON.exists() or not all(p.exists() for p in DPKG_LISTS):
        pytest.skip("Debian's python3.11 packages are not installed here")
    done = subprocess.run(
        [
            str(DEBIAN_PYTHON),
            "-I",
            "-S",
            "-c",
            _PROBE,
            str(AGENT),
            str(FIXTURES / "linux-6.1-kvm-psi"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = done.stdout.strip().splitlines()
    report, probe = json.loads(lines[0]), json.loads(lines[-1])
    assert probe["code"] == 0 and report["type"] == "report"
    shipped = set()
    for listing in DPKG_LISTS:
        shipped |= set(listing.read_text().split())
    outside = sorted(
        f
        for f in probe["modules"].values()
        if f and not f.startswith(str(AGENT)) and f not in shipped
    )
    assert outside == []  # every module file loaded comes from those three packages
