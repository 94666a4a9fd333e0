"""The project's own Debian packages (`make deb`: dist/deb/balloond_*.deb and
balloond-guest_*.deb) for the Xen lab: dom0 gets balloond from its .deb and the domUs the
agent from theirs, with their Depends resolved from Debian's registry like any package, so
the lab proves the packages too.

They are rebuilt (scripts/build-deb) when missing or older than what goes into them.
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

from e2e import ROOT
from e2e.xen import debs

DIST = ROOT / "dist" / "deb"
# What the packages are built from: a newer file here means the .debs are stale.
SOURCES = ("balloond", "guest-agent", "debian", "policies", "pyproject.toml")


@dataclass(frozen=True)
class OwnDeb:
    path: Path
    depends: tuple[str, ...]  # the first alternative of each Depends/Pre-Depends entry
    digest: str  # of its control fields and md5sums: the same files, the same digest


def _newest_source() -> float:
    newest = 0.0
    for name in SOURCES:
        top = ROOT / name
        files = [top] if top.is_file() else top.rglob("*") if top.is_dir() else []
        for f in files:
            if f.is_file() and "__pycache__" not in f.parts:
                newest = max(newest, f.stat().st_mtime)
    return newest


def _found() -> dict[str, Path]:
    out = {}
    for name in ("balloond", "balloond-guest"):
        hits = sorted(DIST.glob(f"{name}_*_all.deb"))
        if hits:
            out[name] = hits[-1]
    return out


def ensure_built() -> dict[str, OwnDeb]:
    """{package name: OwnDeb} for balloond and balloond-guest, built if needed."""
    found = _found()
    stale = len(found) < 2 or min(p.stat().st_mtime for p in found.values()) < _newest_source()
    if stale:
        done = subprocess.run(
            [str(ROOT / "scripts" / "build-deb")], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"make deb failed: {done.stderr.strip()[-2000:]}")
        found = _found()
        if len(found) < 2:
            raise RuntimeError(f"make deb built no balloond/balloond-guest .deb in {DIST}")
    return {name: _read(path) for name, path in found.items()}


def _field(path: Path, name: str) -> str:
    done = subprocess.run(
        ["dpkg-deb", "-f", str(path), name], capture_output=True, text=True, check=False
    )
    return done.stdout.strip()


def _read(path: Path) -> OwnDeb:
    depends = [_field(path, "Pre-Depends"), _field(path, "Depends")]
    roots = tuple(alts[0] for field in depends for alts in debs.alternatives(field))
    h = hashlib.sha256()
    for what in ("control", "md5sums"):
        done = subprocess.run(["dpkg-deb", "-I", str(path), what], capture_output=True, check=False)
        h.update(done.stdout)
    return OwnDeb(path, roots, h.hexdigest()[:16])


def unpack(root: Path, deb: OwnDeb, scratch: Path) -> None:
    """dpkg-deb -x into `scratch`, then merged into `root` as debs.unpack_into does."""
    subprocess.run(["dpkg-deb", "-x", str(deb.path), str(scratch)], check=True)
    debs.merge_tree(scratch, root)
