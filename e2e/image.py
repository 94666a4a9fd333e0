"""Build the lab guest: Debian's kernel + an initramfs with busybox, Python and the guest agent.

Everything comes from Debian's registry through `apt-get download` (never installed) and is
cached in e2e/.cache: unpacked packages under `debs/<pkg>_<version>/`, finished images under
`images/<key>/`, where the key hashes every input (package versions, the guest files in
e2e/guest/, the guest agent's sources, this builder). A second call with the same inputs
returns at once.

    python -m e2e.image        build (or find) the image and print its paths
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from e2e import CACHE, ROOT

GUEST_FILES = Path(__file__).resolve().parent / "guest"
AGENT_SRC = ROOT / "guest-agent"
MODULES = (
    "virtio_ring",
    "virtio",
    "virtio_pci_modern_dev",
    "virtio_pci_legacy_dev",
    "virtio_pci",
    "virtio_balloon",
    "virtio_console",
)
PYTHON_PKGS = ("python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib")
# Big stdlib parts that nothing in the guest imports: a smaller initramfs boots faster in TCG.
STDLIB_DROP = (
    "test",
    "idlelib",
    "tkinter",
    "turtledemo",
    "ensurepip",
    "lib2to3",
    "pydoc_data",
    "distutils",
    "sqlite3",
    "curses",
    "dbm",
    "turtle.py",
    "pydoc.py",
)
DYNLOAD_DROP = re.compile(
    r"^(_test|xx|_ctypes_test|_curses|_dbm|nis|_sqlite3|_tkinter|readline|"
    r"ossaudiodev|audioop|_ssl|_hashlib)"
)
# How the packed agent is started in the guest; {dev} is the port's /dev node.
AGENT_ARGS = ("run", "--transport", "virtio:{dev}", "--interval", "2")


@dataclass(frozen=True)
class GuestImage:
    kernel: Path
    initrd: Path
    key: str
    kernel_version: str
    has_agent: bool


def _run(argv: list[str], **kw: object) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload]
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return str(done.stdout)


def candidate_version(pkg: str) -> str:
    """The version `apt-get download pkg` would fetch (runs `apt-get update` once if the
    package lists are missing)."""
    for attempt in range(2):
        out = _run(["apt-cache", "policy", pkg])
        m = re.search(r"Candidate:\s*(\S+)", out)
        if m and m.group(1) != "(none)":
            return m.group(1)
        if attempt == 0:
            _run(["apt-get", "update", "-qq"])
    raise RuntimeError(f"package {pkg!r}: no candidate version in Debian's package lists")


def kernel_package() -> str:
    out = _run(["apt-cache", "depends", "linux-image-amd64"])
    m = re.search(r"Depends:\s*(linux-image-[0-9][^\s]*-amd64)", out)
    if not m:
        raise RuntimeError(f"linux-image-amd64 names no kernel package: {out.strip()!r}")
    return m.group(1)


def fetch(pkg: str, version: str) -> Path:
    """Download and unpack one Debian package into the cache (once per version)."""
    dest = CACHE / "debs" / f"{pkg}_{version.replace(':', '%3a')}"
    if (dest / ".done").exists():
        return dest
    dl = CACHE / "debs" / "download"
    dl.mkdir(parents=True, exist_ok=True)
    for old in dl.glob(f"{pkg}_*.deb"):
        old.unlink()
    _run(["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", f"{pkg}={version}"], cwd=dl)
    debs = list(dl.glob(f"{pkg}_*.deb"))
    if len(debs) != 1:
        raise RuntimeError(f"apt-get download {pkg}={version}: expected one .deb, found {debs}")
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    _run(["dpkg-deb", "-x", str(debs[0]), str(dest)])
    debs[0].unlink()
    (dest / ".done").write_text(version + "\n")
    return dest


def _files_digest(h: hashlib._Hash, root: Path) -> None:
    if not root.exists():
        return
    for path in sorted(root.rglob("*")):
        parts = set(path.relative_to(root).parts)
        if (
            path.is_file()
            and not parts & {"__pycache__", ".pytest_cache", "tests"}
            and not any(p.endswith(".egg-info") for p in parts)
        ):
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())


def image_key(versions: dict[str, str]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(versions, sort_keys=True).encode())
    h.update(json.dumps(AGENT_ARGS).encode())
    h.update(Path(__file__).read_bytes())
    _files_digest(h, GUEST_FILES)
    _files_digest(h, AGENT_SRC)
    return h.hexdigest()[:16]


def build(verbose: bool = False) -> GuestImage:
    """Return the cached image for the current inputs, building it if needed. Without
    Debian's registry (offline), fall back to the newest image already built."""
    try:
        return _build(verbose)
    except RuntimeError as exc:
        cached = _newest_cached()
        if cached is None:
            raise
        print(
            f"e2e: cannot build a fresh guest image ({exc}); using {cached.initrd}", file=sys.stderr
        )
        return cached


def _prune(keep: int) -> None:
    """Images of older inputs (every guest agent change makes one): keep the newest few."""
    dirs = sorted(
        (p.parent for p in (CACHE / "images").glob("*/manifest.json")),
        key=lambda d: d.stat().st_mtime,
    )
    for old in dirs[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def _newest_cached() -> GuestImage | None:
    manifests = sorted((CACHE / "images").glob("*/manifest.json"), key=lambda p: p.stat().st_mtime)
    if not manifests:
        return None
    m = json.loads(manifests[-1].read_text())
    kver = next(p for p in m["versions"] if p.startswith("linux-image-")).removeprefix(
        "linux-image-"
    )
    out = manifests[-1].parent
    return GuestImage(out / "vmlinuz", out / "initrd.gz", m["key"], kver, m["has_agent"])


def _build(verbose: bool) -> GuestImage:
    kpkg = kernel_package()
    pkgs = (kpkg, "busybox-static", *PYTHON_PKGS)
    versions = {p: candidate_version(p) for p in pkgs}
    key = image_key(versions)
    out = CACHE / "images" / key
    kver = kpkg.removeprefix("linux-image-")
    if (out / "manifest.json").exists():
        manifest = json.loads((out / "manifest.json").read_text())
        return GuestImage(out / "vmlinuz", out / "initrd.gz", key, kver, manifest["has_agent"])
    unpacked = {p: fetch(p, v) for p, v in versions.items()}
    tmp = CACHE / "images" / f"{key}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    root = tmp / "root"
    root.mkdir(parents=True)
    _install_busybox(root, unpacked["busybox-static"])
    _install_modules(root, unpacked[kpkg] / "lib" / "modules" / kver)
    _install_python(root, [unpacked[p] for p in PYTHON_PKGS])
    has_agent = _install_agent(root)
    _install_lab_files(root)
    _cpio(root, tmp / "initrd.gz")
    shutil.copy(unpacked[kpkg] / "boot" / f"vmlinuz-{kver}", tmp / "vmlinuz")
    shutil.rmtree(root)
    manifest = {
        "key": key,
        "versions": versions,
        "has_agent": has_agent,
        "initrd_bytes": (tmp / "initrd.gz").stat().st_size,
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    _prune(keep=3)
    if verbose:
        print(json.dumps(manifest, indent=2))
    return GuestImage(out / "vmlinuz", out / "initrd.gz", key, kver, has_agent)


def _install_busybox(root: Path, pkg: Path) -> None:
    (root / "bin").mkdir()
    bb = root / "bin" / "busybox"
    shutil.copy(pkg / "bin" / "busybox", bb)
    for applet in _run([str(bb), "--list"]).split():
        if applet != "busybox":
            (root / "bin" / applet).symlink_to("busybox")
    (root / "sbin").symlink_to("bin")
    (root / "init").symlink_to("bin/busybox")  # busybox picks the init applet from argv[0]
    for d in (
        "proc",
        "sys",
        "dev",
        "run",
        "tmp",
        "etc/lab",
        "opt/lab",
        "usr/bin",
        "lib64",
        "lib/modules",
        "lib/x86_64-linux-gnu",
    ):
        (root / d).mkdir(parents=True, exist_ok=True)


def _install_modules(root: Path, moddir: Path) -> None:
    found = {p.name.split(".ko")[0]: p for p in moddir.rglob("*.ko*")}
    for name in MODULES:
        src = found.get(name)
        if src is None or not src.name.endswith(".ko"):
            raise RuntimeError(f"kernel modules in {moddir}: {name}.ko missing (or compressed)")
        shutil.copy(src, root / "lib" / "modules" / f"{name}.ko")


def _install_python(root: Path, pkgs: list[Path]) -> None:
    for pkg in pkgs:
        shutil.copytree(pkg / "usr", root / "usr", dirs_exist_ok=True, symlinks=True)
    for junk in ("share", "lib/python3.11/config-3.11-x86_64-linux-gnu"):
        shutil.rmtree(root / "usr" / junk, ignore_errors=True)
    stdlib = root / "usr" / "lib" / "python3.11"
    for name in STDLIB_DROP:
        target = stdlib / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    dynload = stdlib / "lib-dynload"
    for so in dynload.glob("*.so"):
        if DYNLOAD_DROP.match(so.name):
            so.unlink()
    python = root / "usr" / "bin" / "python3.11"
    (root / "usr" / "bin" / "python3").symlink_to("python3.11")
    for binary in [python, *dynload.glob("*.so")]:
        if not _copy_libs(root, binary):
            binary.unlink()  # an extension whose libraries we do not have: leave it out
    # Compile once on the host (same 3.11 bytecode) so the TCG guest does not, and ship the
    # stdlib sourceless: half the size.
    _run([sys.executable, "-m", "compileall", "-q", "-b", "-j", "1", str(stdlib)])
    for src in stdlib.rglob("*.py"):
        src.unlink()
    for cache in list(stdlib.rglob("__pycache__")):
        shutil.rmtree(cache)


def _copy_libs(root: Path, binary: Path) -> bool:
    out = _run(["ldd", str(binary)])
    for line in out.splitlines():
        line = line.strip()
        if "not found" in line:
            return False
        m = re.match(r"(\S+) => (/\S+)", line) or re.match(r"(/\S+ld-linux\S+)", line)
        if not m:
            continue
        src = Path(m.group(m.lastindex or 1))
        name = Path(m.group(1)).name
        dest = root / ("lib64" if "ld-linux" in name else "lib/x86_64-linux-gnu") / name
        if not dest.exists():
            shutil.copy(src.resolve(), dest)
    return True


def _agent_entry() -> tuple[str, str] | None:
    """(module, function) of the agent's `balloond-guest` console script, if it is there."""
    pyproject = AGENT_SRC / "pyproject.toml"
    if not pyproject.exists():
        return None
    scripts = tomllib.loads(pyproject.read_text()).get("project", {}).get("scripts", {})
    entry = scripts.get("balloond-guest")
    if not entry or ":" not in entry:
        return None
    module, func = entry.split(":", 1)
    return module, func


def _install_agent(root: Path) -> bool:
    entry = _agent_entry()
    if entry is None:
        return False
    dest = root / "opt" / "agent"
    src_root = AGENT_SRC / "src" if (AGENT_SRC / "src").is_dir() else AGENT_SRC
    shutil.copytree(
        src_root,
        dest / "src",
        ignore=shutil.ignore_patterns(
            "tests", "__pycache__", "*.egg-info", ".pytest_cache", "*.service", "*.toml"
        ),
    )
    module, func = entry
    args = " ".join(f'"{a}"' for a in AGENT_ARGS).replace("{dev}", "$1")
    run = dest / "run"
    run.write_text(
        "#!/bin/sh\n"
        "export PYTHONPATH=/opt/agent/src PYTHONDONTWRITEBYTECODE=1\n"
        f"exec /usr/bin/python3 -c 'import sys; from {module} import {func} as m; "
        f'sys.argv[0] = "balloond-guest"; sys.exit(m())\' {args}\n'
    )
    run.chmod(0o755)
    return True


def _install_lab_files(root: Path) -> None:
    for name in ("rc.sysinit", "counter", "port", "labctl", "agent"):
        shutil.copy(GUEST_FILES / name, root / "etc" / "lab" / name)
        (root / "etc" / "lab" / name).chmod(0o755)
    shutil.copy(GUEST_FILES / "inittab", root / "etc" / "inittab")
    for name in ("labctl.py", "hog.py"):
        shutil.copy(GUEST_FILES / name, root / "opt" / "lab" / name)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")


def _cpio(root: Path, dest: Path) -> None:
    names = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    listing = "\n".join([".", *names]) + "\n"
    with open(dest, "wb") as out:
        cpio = subprocess.Popen(
            ["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0"],
            cwd=root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        gz = subprocess.Popen(["gzip", "-6", "-n"], stdin=cpio.stdout, stdout=out)
        assert cpio.stdin is not None and cpio.stdout is not None
        cpio.stdout.close()
        cpio.stdin.write(listing.encode())
        cpio.stdin.close()
        if cpio.wait() != 0 or gz.wait() != 0:
            raise RuntimeError(f"cpio/gzip of {root} failed")


if __name__ == "__main__":
    img = build(verbose=True)
    print(f"kernel {img.kernel}\ninitrd {img.initrd}\nagent {'yes' if img.has_agent else 'no'}")
