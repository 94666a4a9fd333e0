"""`balloonctl save` racing a symlink swapper run by another user.

Root saves a domain of a libvirt test-driver host into a folder; meanwhile user `nobody`
spins on that folder, renaming away every entry root creates and putting a symlink to a
root-owned victim file (or, for a folder, to the victim's folder) in its place. A try where
the victim's bytes, mode or owner changed is a success of the attack. Two folders: one owned
by nobody (the user controls it), and a root-owned sticky folder everyone may write (/tmp's
kind).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from chaos import other_user
from chaos.lab import child_env
from chaos.session import Session
from chaos.verdict import Row
from chaos.watch import Figures

TRIES = 25
VICTIM_TEXT = "root's precious file\n" * 64

HOST_XML = """<node>
  <cpu><mhz>2400</mhz><model>x86_64</model><nodes>1</nodes><sockets>1</sockets>
    <cores>2</cores><threads>1</threads><active>2</active></cpu>
  <memory>8388608</memory>
  <domain type='test'>
    <name>guest</name>
    <uuid>c4a05000-0000-4000-8000-5a7e00000001</uuid>
    <memory unit='MiB'>1024</memory>
    <currentMemory unit='MiB'>1024</currentMemory>
    <vcpu>1</vcpu>
    <os><type arch='x86_64'>hvm</type></os>
  </domain>
</node>
"""

# As nobody: every entry root makes in the folder is renamed away and replaced by a symlink
# to the victim (a file) or to the victim's folder (a folder), as fast as it can.
SWAPPER = r"""
import os, sys
folder, victim = sys.argv[1], sys.argv[2]
victim_dir = os.path.dirname(victim)
swaps = 0
print("ready", flush=True)
while True:
    try:
        entries = list(os.scandir(folder))
    except OSError:
        continue
    for entry in entries:
        if entry.name.endswith(".moved") or entry.is_symlink():
            continue
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
            os.rename(entry.path, entry.path + ".moved")
            os.symlink(victim_dir if is_dir else victim, entry.path)
            swaps += 1
            print(swaps, flush=True)
        except OSError:
            pass
"""

# As root, in the tree under test: TRIES saves through balloond's own save operation.
SAVER = r"""
import json, os, sys, time
from balloond.backend.libvirt import LibvirtBackend
from balloond.errors import BalloondError, Refused
from balloond.ops.context import OpsContext
from balloond.ops.image import save_domain
uri, folder, victim, tries = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
original = open(victim).read()
def damaged():
    st = os.stat(victim)
    return open(victim, errors="replace").read() != original or (st.st_mode & 0o777) != 0o644 \
        or st.st_uid != 0
def clean():
    for entry in os.scandir(folder):
        if entry.is_symlink() or not entry.is_dir(follow_symlinks=False):
            os.unlink(entry.path)
        else:
            for inner in os.scandir(entry.path):
                os.unlink(inner.path)
            os.rmdir(entry.path)
results = []
for _ in range(tries):
    ctx = OpsContext().use(LibvirtBackend(uri))
    try:
        save_domain(ctx, "guest", os.path.join(folder, "image.img"))
        outcome = "saved"
    except Refused as error:
        outcome = "refused: " + str(error)
    except (BalloondError, OSError) as error:  # balloonctl says the same, in one line
        outcome = "failed: " + str(error)
    finally:
        ctx.close()
    if damaged():
        outcome = "VICTIM WRITTEN (" + outcome + ")"
        with open(victim, "w") as handle:
            handle.write(original)
        os.chown(victim, 0, 0)
        os.chmod(victim, 0o644)
    results.append(outcome)
    clean()
    time.sleep(0.05)  # the swapper sees each try begin afresh
print(json.dumps(results))
"""


def race(session: Session, *, sticky: bool) -> Row:
    kind = "root's sticky folder open to all" if sticky else "a folder owned by the other user"
    name = f"save race: symlink swapper as nobody, {kind}"
    figures = Figures()
    why_not = other_user.can_run_as_nobody()
    if why_not is not None:
        row = Row(name, figures, verdict="skip")
        row.why.append(why_not)
        return row
    private = session.folder("save")
    host = private / "host.xml"
    host.write_text(HOST_XML)
    victim_dir = session.open_folder("victim")
    victim = victim_dir / "victim.conf"
    victim.write_text(VICTIM_TEXT)
    victim.chmod(0o644)
    folder = session.open_folder("images")
    if sticky:
        folder.chmod(0o1777)
    else:
        os.chown(folder, other_user.NOBODY, other_user.NOBODY)
    swapper = other_user.start_as_nobody(SWAPPER, str(folder), str(victim))
    try:
        assert swapper.stdout is not None
        swapper.stdout.readline()  # "ready": scanning the folder
        done = subprocess.run(
            [sys.executable, "-c", SAVER, f"test://{host}", str(folder), str(victim), str(TRIES)],
            env=child_env(session.tree),
            cwd=private,
            capture_output=True,
            timeout=120,
            check=False,
        )
    finally:
        swaps, _ = other_user.stop(swapper)
    results: list[str] = json.loads(done.stdout or b"[]") if done.returncode == 0 else []
    hits = sum(r.startswith("VICTIM") for r in results)
    saved = sum(r == "saved" for r in results)
    refused = sum(r.startswith("refused") for r in results)
    swapped = len(swaps.split())
    figures.state_intact = hits == 0 and _intact(victim)
    figures.notes.append(
        f"victim written in {hits} of {len(results)} tries; saved {saved}, refused {refused}, "
        f"other failures {len(results) - hits - saved - refused}; {swapped} swaps"
    )
    first_refusal = next((r for r in results if r.startswith("refused")), None)
    if first_refusal:
        figures.notes.append(first_refusal[:140])
    row = Row(name, figures)
    row.check(done.returncode == 0, f"saver failed: {done.stderr.decode()[-200:]!r}")
    row.check(hits == 0, f"the swapper won {hits} of {len(results)}")
    row.check(figures.state_intact is True, "the victim file changed")
    return row


def _intact(victim: Path) -> bool:
    info = victim.stat()
    return victim.read_text() == VICTIM_TEXT and stat.S_IMODE(info.st_mode) == 0o644


def attacks(session: Session) -> list[tuple[str, Callable[[], Row]]]:
    return [
        ("save race: folder of the other user", lambda: race(session, sticky=False)),
        ("save race: sticky folder", lambda: race(session, sticky=True)),
    ]
