"""A clean Debian 12 root to install the project's packages into, never this machine.

mmdebstrap builds it from Debian's registry once (a tarball under `.cache/debroot/`, keyed
by everything that goes into it) and each run unpacks a fresh copy: what one run installed
is never there for the next, so a dependency missing from debian/control fails the install
instead of being found already present. The cached root holds only Debian's minimal base
and the tools the checks use (systemd-analyze, man); the packages' dependencies come from
apt at install time, resolved from the packages' own control files. Downloaded .debs are
kept in `.cache/debroot/archives` (apt's own cache: it saves the download, not the
resolution).

Every chroot command runs in a private mount namespace (`unshare --mount`), so the /proc
and bind mounts go away with it, also when the test is killed.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "debroot"
SUITE = "bookworm"
MIRRORS = (
    f"deb http://deb.debian.org/debian {SUITE} main",
    f"deb http://deb.debian.org/debian {SUITE}-updates main",
    f"deb http://deb.debian.org/debian-security {SUITE}-security main",
)
# The checks' tools, nothing the packages need: python3 and the libraries must come from
# the packages' Depends (the test checks they are absent before the install).
TOOLS = ("systemd", "man-db", "bash-completion", "ca-certificates")
MMDEBSTRAP = ("--variant=minbase", "--skip=cleanup/apt/lists", "--format=tar")
# No daemon starts in the chroot: invoke-rc.d and deb-systemd-invoke ask this first.
POLICY_RC_D = "#!/bin/sh\nexit 101\n"


def cache_key() -> str:
    recipe = "\n".join((SUITE, *MIRRORS, *TOOLS, *MMDEBSTRAP))
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def base_tarball(log: Path) -> Path:
    """The cached base root, built now if missing (a minute or two, from Debian's registry)."""
    tarball = CACHE / f"{SUITE}-{cache_key()}.tar"
    if tarball.exists():
        return tarball
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_suffix(".partial")
    argv = [
        "mmdebstrap",
        *MMDEBSTRAP,
        f"--include={','.join(TOOLS)}",
        SUITE,
        str(partial),
        *MIRRORS,
    ]
    with log.open("a") as out:
        subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=True, timeout=1200)
    for old in CACHE.glob(f"{SUITE}-*.tar"):  # a recipe that changed leaves its old root
        old.unlink()
    partial.rename(tarball)
    return tarball


@dataclass
class Result:
    argv: Sequence[str]
    returncode: int
    output: str


class Chroot:
    """A fresh root unpacked from the cached tarball; `run` executes in it."""

    def __init__(self, path: Path, log: Path) -> None:
        self.path = path
        self.log = log
        self.archives = CACHE / "archives"

    def run(self, command: str, *, timeout: float = 600) -> Result:
        """`command` (a shell line) in the root, as root, in its own mount namespace."""
        self.archives.mkdir(parents=True, exist_ok=True)
        (self.archives / "partial").mkdir(exist_ok=True)
        root = str(self.path)
        script = (
            "set -e\n"
            f"mount -t proc proc {root}/proc\n"
            f"mount --bind /dev {root}/dev\n"
            f"mount --bind {self.archives} {root}/var/cache/apt/archives\n"
            f'exec chroot {root} /bin/sh -c "$1"\n'
        )
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "DEBIAN_FRONTEND": "noninteractive",
            "TERM": "dumb",
        }
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", command]
        done = subprocess.run(
            argv, capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
        output = done.stdout + done.stderr
        with self.log.open("a") as out:
            out.write(f"\n$ {command}\n{output}[exit {done.returncode}]\n")
        return Result([command], done.returncode, output)

    def put(self, source: Path, inside: str) -> str:
        target = self.path / inside.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        return inside


@contextmanager
def fresh_root(log: Path) -> Iterator[Chroot]:
    """A new root from the cached base, removed afterwards."""
    tarball = base_tarball(log)
    with tempfile.TemporaryDirectory(prefix="balloond-debroot-", dir=CACHE) as tmp:
        path = Path(tmp) / "root"
        path.mkdir()
        subprocess.run(["tar", "-xf", str(tarball), "-C", str(path)], check=True)
        policy = path / "usr/sbin/policy-rc.d"
        policy.write_text(POLICY_RC_D)
        policy.chmod(0o755)
        yield Chroot(path, log)
