"""Build the Xen lab's boot files from Debian's registry: the hypervisor, dom0's kernel and
initramfs (Xen's toolstack, libvirtd with the libxl driver, Python 3.11 with python3-libvirt
and balloond's dependencies, balloond itself), and the domU's kernel and initramfs (busybox,
Python, the guest agent).

Packages come from `apt-get download` (never installed) with their dependencies resolved
from the packages' metadata (e2e.xen.debs); everything is cached in e2e/.cache/xen/<key>/,
where the key hashes the package versions, the lab's files, balloond's and the agent's
sources and this builder. A second call with the same inputs returns at once.

    python -m e2e.xen.image        build (or find) the images and print their paths
"""

from __future__ import annotations

import gzip
import hashlib
import json
import lzma
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from e2e import CACHE, ROOT
from e2e.image import (
    DYNLOAD_DROP,
    STDLIB_DROP,
    _cpio,
    _files_digest,
    _run,
    fetch,
    kernel_package,
)
from e2e.xen import debs, owndebs

HERE = Path(__file__).resolve().parent
GUEST_FILES = ROOT / "e2e" / "guest"
XEN_CACHE = CACHE / "xen"

XEN_PKGS = ("xen-hypervisor-4.17-amd64", "xen-utils-4.17", "xenstore-utils")
# dom0: the toolstack, libvirtd's libxl driver, and balloond's runtime as Debian ships it.
DOM0_ROOTS = (
    "xen-utils-4.17",
    "xenstore-utils",
    "libvirt-daemon-driver-xen",
    "libvirt-daemon",
    "libvirt-clients",
    "python3-libvirt",
    "python3-yaml",
    "python3-prometheus-client",
    "python3-apscheduler",
    "python3-rich",
    "libpython3.11-stdlib",
    "libgcc-s1",  # xl aborts without libgcc_s.so.1 (pthread_cancel), xen-lab.md
    "busybox-static",
)
DOMU_ROOTS = ("python3.11-minimal", "libpython3.11-stdlib", "busybox-static")
DOM0_MODULES = ("xen-evtchn", "xen-privcmd", "xen-gntdev", "xen-gntalloc", "xenfs", "e1000")
# ELF files whose libraries must all be in dom0's image (checked after unpacking).
DOM0_BINARIES = (
    "/usr/lib/xen-4.17/bin",
    "/usr/bin/xenstore-read",
    "/usr/sbin/libvirtd",
    "/usr/bin/virsh",
    "/usr/lib/x86_64-linux-gnu/libvirt/connection-driver",
    "/usr/lib/python3/dist-packages",
    "/usr/bin/python3.11",
)
# Where dom0 keeps the domU boot files (inside its own initramfs).
DOMU_DIR = "/var/lib/lab"
AGENT_ARGS = ("run", "--transport", "xenstore", "--interval", "2")


@dataclass(frozen=True)
class XenImages:
    xen: Path  # the hypervisor, gunzipped (QEMU's multiboot loader wants it plain)
    kernel: Path  # dom0's vmlinuz
    dom0: Path  # dom0's initramfs, with the domU files inside
    key: str
    versions: dict[str, str]
    domu_kernel: str  # paths inside dom0
    domu_initrd: str


def _key(versions: dict[str, str], own: dict[str, owndebs.OwnDeb]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(versions, sort_keys=True).encode())
    h.update(json.dumps({name: deb.digest for name, deb in sorted(own.items())}).encode())
    h.update(json.dumps(AGENT_ARGS).encode())
    for path in (Path(__file__), GUEST_FILES / "labctl.py", GUEST_FILES / "counter"):
        h.update(path.read_bytes())
    for folder in (HERE / "dom0", HERE / "domu"):
        _files_digest(h, folder)
    return h.hexdigest()[:16]


def build(verbose: bool = False) -> XenImages:
    kpkg = kernel_package()
    own = owndebs.ensure_built()  # make deb: balloond for dom0, balloond-guest for domUs
    dom0 = debs.closure((*DOM0_ROOTS, *XEN_PKGS, *own["balloond"].depends))
    domu = debs.closure((*DOMU_ROOTS, *own["balloond-guest"].depends))
    versions = {**dom0, **domu, kpkg: debs.closure([kpkg])[kpkg]}
    key = _key(versions, own)
    out = XEN_CACHE / key
    images = XenImages(
        xen=out / "xen-4.17",
        kernel=out / "vmlinuz",
        dom0=out / "dom0.cpio.gz",
        key=key,
        versions=versions,
        domu_kernel=f"{DOMU_DIR}/vmlinux.gz",
        domu_initrd=f"{DOMU_DIR}/domu.cpio.gz",
    )
    if (out / "manifest.json").exists():
        return images
    tmp = XEN_CACHE / f"{key}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    kdir = fetch(kpkg, versions[kpkg])
    kver = kpkg.removeprefix("linux-image-")
    hyp = fetch("xen-hypervisor-4.17-amd64", versions["xen-hypervisor-4.17-amd64"])
    with gzip.open(hyp / "boot" / "xen-4.17-amd64.gz") as src, open(tmp / "xen-4.17", "wb") as d:
        shutil.copyfileobj(src, d)
    shutil.copy(kdir / "boot" / f"vmlinuz-{kver}", tmp / "vmlinuz")
    domu_root = tmp / "domu"
    _domu_root(domu_root, domu, own["balloond-guest"], tmp / "guest-deb")
    dom0_root = tmp / "dom0"
    _dom0_root(dom0_root, dom0, kdir / "lib" / "modules" / kver, own["balloond"], tmp / "deb")
    lab = dom0_root / DOMU_DIR.lstrip("/")
    lab.mkdir(parents=True, exist_ok=True)
    _cpio(domu_root, lab / "domu.cpio.gz")
    _vmlinux_gz(kdir / "boot" / f"vmlinuz-{kver}", lab / "vmlinux.gz")
    shutil.rmtree(domu_root)
    _cpio(dom0_root, tmp / "dom0.cpio.gz")
    shutil.rmtree(dom0_root)
    manifest = {
        "key": key,
        "versions": versions,
        "dom0_initrd_bytes": (tmp / "dom0.cpio.gz").stat().st_size,
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    _prune(keep=2)
    if verbose:
        print(json.dumps({k: v for k, v in manifest.items() if k != "versions"}, indent=2))
    return images


def _prune(keep: int) -> None:
    dirs = sorted(
        (p.parent for p in XEN_CACHE.glob("*/manifest.json")), key=lambda d: d.stat().st_mtime
    )
    for old in dirs[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def _vmlinux_gz(vmlinuz: Path, dest: Path) -> None:
    """The domU kernel as a gzip'd ELF: libxl's loader gunzips in a fraction of the time it
    takes to unpack Debian's xz bzImage under TCG (4.7 s per domain create, xen-lab.md)."""
    data = vmlinuz.read_bytes()
    start = data.find(b"\xfd7zXZ\x00")
    if start < 0:
        raise RuntimeError(f"{vmlinuz}: no xz payload found (kernel compressed otherwise?)")
    elf = lzma.LZMADecompressor().decompress(data[start:])
    if elf[:4] != b"\x7fELF":
        raise RuntimeError(f"{vmlinuz}: the xz payload is not an ELF kernel")
    with gzip.open(dest, "wb", compresslevel=1) as out:
        out.write(elf)


def _busybox(root: Path) -> None:
    """busybox's applets wherever the packages left the name free."""
    bb = root / "usr" / "bin" / "busybox"
    for applet in _run([str(bb), "--list-full"]).split():
        dest = root / "usr" / applet.removeprefix("usr/").lstrip("/")
        if applet.startswith(("bin/", "sbin/")):
            dest = root / "usr" / applet
        if not dest.exists() and not dest.is_symlink():
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.symlink_to("/usr/bin/busybox")
    (root / "init").symlink_to("usr/bin/busybox")  # busybox init, by argv[0]


def _base(root: Path, packages: dict[str, str]) -> None:
    debs.unpack_into(root, packages)
    for junk in ("usr/share/doc", "usr/share/man", "usr/share/locale", "usr/share/info"):
        shutil.rmtree(root / junk, ignore_errors=True)
    _busybox(root)
    for d in ("proc", "sys", "dev", "run", "tmp", "etc/lab", "opt/lab", "var/log"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    python3 = root / "usr" / "bin" / "python3"
    if not python3.exists():
        python3.symlink_to("python3.11")
    zone = root / "usr" / "share" / "zoneinfo" / "Etc" / "UTC"
    if zone.exists():
        (root / "etc" / "localtime").symlink_to("/usr/share/zoneinfo/Etc/UTC")
    shutil.copy(GUEST_FILES / "labctl.py", root / "opt" / "lab" / "labctl.py")
    shutil.copy(GUEST_FILES / "hog.py", root / "opt" / "lab" / "hog.py")


def _lab_files(root: Path, folder: Path, scripts: tuple[str, ...]) -> None:
    for name in scripts:
        shutil.copy(folder / name, root / "etc" / "lab" / name)
        (root / "etc" / "lab" / name).chmod(0o755)
    shutil.copy(folder / "inittab", root / "etc" / "inittab")
    for py in folder.glob("*.py"):
        shutil.copy(py, root / "opt" / "lab" / py.name)


def _compile(root: Path) -> None:
    """Byte-compile on the build machine (the same Python 3.11) so dom0 and the domUs do not,
    under TCG, at every start; unchecked hashes: valid whatever the files' times."""
    dirs = [root / "usr/lib/python3.11", root / "usr/lib/python3/dist-packages", root / "opt"]
    argv = [sys.executable, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode"]
    _run([*argv, "unchecked-hash", *[str(d) for d in dirs if d.exists()]])


def _domu_root(root: Path, packages: dict[str, str], guest: owndebs.OwnDeb, scratch: Path) -> None:
    _base(root, packages)
    _lab_files(root, HERE / "domu", ("rc.domu", "labctl", "agent"))
    shutil.copy(GUEST_FILES / "counter", root / "etc" / "lab" / "counter")
    (root / "etc" / "lab" / "counter").chmod(0o755)
    _slim_python(root)
    owndebs.unpack(root, guest, scratch)  # the project's balloond-guest package
    run = root / "opt" / "agent" / "run"
    run.parent.mkdir(parents=True, exist_ok=True)
    run.write_text(
        f"#!/bin/sh\nexec /usr/bin/balloond-guest {' '.join(AGENT_ARGS)} >/dev/hvc0 2>&1\n"
    )
    run.chmod(0o755)
    _compile(root)


def _slim_python(root: Path) -> None:
    """A domU boots from RAM under TCG: ship its standard library compiled and sourceless (as
    the KVM lab's guest does), without the parts nothing in it imports, nor glibc's iconv
    modules."""
    stdlib = root / "usr" / "lib" / "python3.11"
    for name in STDLIB_DROP:
        target = stdlib / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    for so in (stdlib / "lib-dynload").glob("*.so"):
        if DYNLOAD_DROP.match(so.name):
            so.unlink()
    shutil.rmtree(root / "usr/lib/x86_64-linux-gnu/gconv", ignore_errors=True)
    _run([sys.executable, "-m", "compileall", "-q", "-b", "-j", "0", str(stdlib)])
    for src in stdlib.rglob("*.py"):
        src.unlink()
    for cache in list(stdlib.rglob("__pycache__")):
        shutil.rmtree(cache)


def _dom0_root(
    root: Path, packages: dict[str, str], moddir: Path, balloond: owndebs.OwnDeb, scratch: Path
) -> None:
    _base(root, packages)
    _lab_files(root, HERE / "dom0", ("rc.dom0", "labctl", "balloond"))
    mods = root / "usr" / "lib" / "modules" / "lab"
    mods.mkdir(parents=True)
    found = {p.name.removesuffix(".ko"): p for p in moddir.rglob("*.ko")}
    for name in DOM0_MODULES:
        if name not in found:
            raise RuntimeError(f"kernel modules in {moddir}: {name}.ko missing (or compressed)")
        shutil.copy(found[name], mods / f"{name}.ko")
    for heavy in ("test", "idlelib", "tkinter", "ensurepip", "lib2to3"):
        shutil.rmtree(root / "usr/lib/python3.11" / heavy, ignore_errors=True)
    _libvirt_config(root)
    owndebs.unpack(root, balloond, scratch)  # the project's balloond package: /etc/balloond
    shutil.copy(HERE / "dom0" / "lab-policy.yaml", root / "etc/balloond/policies/xenlab.yaml")
    lost = debs.missing_libraries(root, DOM0_BINARIES)
    if lost:
        raise RuntimeError(f"dom0 image: libraries no package in the closure provides: {lost}")
    _compile(root)


def _libvirt_config(root: Path) -> None:
    """libvirtd serves the host over TCP without auth (loopback-forwarded by QEMU only)."""
    conf = root / "etc" / "libvirt" / "libvirtd.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(
        'listen_tcp = 1\nlisten_tls = 0\nauth_tcp = "none"\nauth_unix_rw = "none"\n'
        'log_outputs = "3:file:/var/log/libvirt/libvirtd.log"\n'
    )


if __name__ == "__main__":
    img = build(verbose=True)
    print(f"xen {img.xen}\nkernel {img.kernel}\ndom0 {img.dom0}")
    subprocess.run(["ls", "-la", str(img.xen.parent)], check=False)
