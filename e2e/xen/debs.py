"""Debian packages for the Xen lab's images, resolved from the packages' own metadata.

`closure(roots)` follows `Depends` and `Pre-Depends` from Debian's package lists (`apt-cache
show`), never this machine's installed files. A few packages are left out on purpose: they
exist for maintainer scripts, init systems or services an initramfs never runs (SKIP says
why for each). `unpack_into(root, ...)` lays the unpacked packages into one merged-/usr tree,
and `missing_libraries(root)` checks every ELF file's NEEDED entries against that tree, so a
dependency the metadata does not name is an error naming the file, not a crash in dom0.

Unpacked packages are shared with the KVM lab's cache (`e2e.image.fetch`).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from e2e import CACHE
from e2e.image import fetch

# Left out of every closure: nothing in the lab's images runs them. The value says why.
SKIP = {
    "debconf": "maintainer scripts only",
    "debconf-2.0": "maintainer scripts only",
    "dpkg": "maintainer scripts only",
    "perl-base": "maintainer scripts only",
    "adduser": "maintainer scripts only",
    "ucf": "maintainer scripts only",
    "init-system-helpers": "maintainer scripts only",
    "lsb-base": "init scripts only",
    "sysvinit-utils": "init scripts only",
    "sensible-utils": "editor/pager helpers virsh never calls in the lab",
    "udev": "the lab's inits use devtmpfs, no udev daemon",
    "systemd": "no systemd in the lab's images",
    "systemd-sysv": "no systemd in the lab's images",
    "logrotate": "no cron in the lab's images",
    "iptables": "libvirt's networks are not used",
    "dmidecode": "libvirtd works without it (xen-lab.md)",
    "libvirt-daemon-driver-qemu": "dom0 runs only the libxl driver",
    "libvirt-daemon-config-network": "no libvirt networks",
    "libvirt-daemon-config-nwfilter": "no libvirt networks",
    "mdevctl": "no mediated devices",
    "python3-pkg-resources-doc": "docs",
    "media-types": "mime types nobody reads in the lab",
    "readline-common": "terminfo files for interactive shells",
    "python3-distutils": "build helpers",
    "python3-lib2to3": "build helpers",
}

_FIELD = re.compile(r"^(Package|Version|Depends|Pre-Depends|Provides): (.*)$", re.M)


def _run(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode not in (0, 100):  # 100: apt-cache show of an unknown name
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def _records(names: Iterable[str]) -> dict[str, dict[str, str]]:
    """{package: {Version, Depends, Pre-Depends}} of each name with a candidate version."""
    names = sorted(set(names))
    if not names:
        return {}
    out: dict[str, dict[str, str]] = {}
    for record in _run(["apt-cache", "show", "--no-all-versions", *names]).split("\n\n"):
        fields = dict(m.groups() for m in _FIELD.finditer(record))
        if "Package" in fields:
            out.setdefault(fields["Package"], fields)
    return out


def alternatives(field: str) -> list[list[str]]:
    """'a (>= 1), b:any | c' -> [['a'], ['b', 'c']] (versions and arch qualifiers dropped)."""
    groups = []
    for part in field.split(","):
        alts = [
            re.sub(r"\s*\(.*?\)|\s*\[.*?\]|:any|:amd64", "", a).strip() for a in part.split("|")
        ]
        if alts and alts[0]:
            groups.append(alts)
    return groups


def closure(roots: Iterable[str]) -> dict[str, str]:
    """Every package `roots` need, by Depends and Pre-Depends: {name: candidate version}.
    Of alternatives the first one with a candidate is taken (or one already taken).
    Remembered until Debian's package lists change (an `apt-get update` that brings news)."""
    roots = sorted(roots)
    lists = sorted(Path("/var/lib/apt/lists").glob("*_Packages*"))
    stamp = [(p.name, p.stat().st_mtime_ns) for p in lists]
    key = hashlib.sha256(json.dumps([roots, stamp, sorted(SKIP)]).encode()).hexdigest()[:16]
    memo = CACHE / "xen" / f"closure-{key}.json"
    if memo.exists():
        return dict(json.loads(memo.read_text()))
    chosen = _resolve(roots)
    memo.parent.mkdir(parents=True, exist_ok=True)
    memo.write_text(json.dumps(chosen, indent=1, sort_keys=True) + "\n")
    return chosen


def _resolve(roots: list[str]) -> dict[str, str]:
    chosen: dict[str, str] = {}
    wanted = [r for r in roots if r not in SKIP]
    while wanted:
        records = _records(wanted)
        missing = [w for w in wanted if w not in records]
        if missing:
            raise RuntimeError(f"no candidate in Debian's package lists for {missing}")
        groups: list[list[str]] = []
        for name in wanted:
            chosen[name] = records[name]["Version"]
            for key in ("Pre-Depends", "Depends"):
                groups += alternatives(records[name].get(key, ""))
        wanted = sorted(_pick(groups, chosen))
    return chosen


def _pick(groups: list[list[str]], chosen: dict[str, str]) -> set[str]:
    picks: set[str] = set()
    unresolved = []
    for alts in groups:
        if any(a in chosen or a in picks or a in SKIP for a in alts):
            continue
        unresolved.append(alts)
    if not unresolved:
        return picks
    known = _records(a for alts in unresolved for a in alts)
    for alts in unresolved:
        if any(a in picks for a in alts):
            continue
        real = next((a for a in alts if a in known), None)
        if real is None:
            raise RuntimeError(f"no candidate in Debian's package lists for any of {alts}")
        picks.add(real)
    return picks


def unpack_into(root: Path, packages: dict[str, str]) -> None:
    """Unpack every package (cached) into `root`, merged-/usr style: /bin, /sbin, /lib and
    /lib64 are links into /usr, as on Debian 12 systems."""
    usr = root / "usr"
    for d in ("bin", "sbin", "lib", "lib64"):
        (usr / d).mkdir(parents=True, exist_ok=True)
        if not (root / d).exists():
            (root / d).symlink_to(f"usr/{d}")
    for name, version in sorted(packages.items()):
        merge_tree(fetch(name, version), root)


def merge_tree(src: Path, root: Path) -> None:
    """One unpacked package into `root`, its /bin, /sbin, /lib, /lib64 into /usr."""
    usr = root / "usr"
    for top in sorted(src.iterdir()):
        if top.name == ".done":
            continue
        dest = usr / top.name if top.name in ("bin", "sbin", "lib", "lib64") else root / top.name
        _merge(top, dest)


def _merge(src: Path, dest: Path) -> None:
    if src.is_symlink() or not src.is_dir():
        if dest.is_symlink() or dest.exists():
            if dest.is_dir() and not dest.is_symlink():
                return  # a compat link onto a folder we already have (merged /usr)
            dest.unlink()
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            dest.symlink_to(src.readlink())
        else:
            shutil.copy2(src, dest)
        return
    if dest.is_symlink():
        return  # e.g. /lib64 -> usr/lib64: already merged
    dest.mkdir(parents=True, exist_ok=True)
    for child in src.iterdir():
        _merge(child, dest / child.name)


def _needed(path: Path) -> list[str] | None:
    """The NEEDED libraries of an ELF file (None if it is not a dynamic ELF)."""
    with open(path, "rb") as f:
        if f.read(4) != b"\x7fELF":
            return None
    out = subprocess.run(
        ["readelf", "-d", str(path)], capture_output=True, text=True, check=False
    ).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", out)


def missing_libraries(root: Path, under: Iterable[str]) -> dict[str, list[str]]:
    """{file: [library...]} for ELF files under `under` (paths in the image) whose NEEDED
    libraries are not in the image's library folders."""
    libdirs = [root / "usr/lib/x86_64-linux-gnu", root / "usr/lib", root / "usr/lib64"]
    have = {p.name for d in libdirs if d.is_dir() for p in d.iterdir()}
    found: dict[str, list[str]] = {}
    for top in under:
        base = root / top.lstrip("/")
        files = [base] if base.is_file() else sorted(base.rglob("*")) if base.is_dir() else []
        for f in files:
            if f.is_symlink() or not f.is_file():
                continue
            needed = _needed(f)
            lost = [n for n in needed or [] if n not in have and not _private(root, f, n)]
            if lost:
                found[str(f.relative_to(root))] = lost
    return found


def _private(root: Path, binary: Path, lib: str) -> bool:
    """Libraries found through a RUNPATH next to the binary (libvirt's own, Xen's)."""
    return any(p.name == lib for p in binary.parent.parent.rglob(lib))
