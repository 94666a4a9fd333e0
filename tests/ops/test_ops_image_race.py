"""`balloonctl save` against another local user who races it (issue 16, defect 1).

root saves; libvirt opens the image by name. A user who can rename entries in the folder
swapped the file for a symlink between the check and libvirt's open, and root then wrote
guest memory over a root-owned file and set it 0600 (5 of 25 tries). These tests run a real
swapper as user `nobody` (they need root), and check the folder rules without one."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from balloond.backend.libvirt import LibvirtBackend
from balloond.errors import BalloondError, OperationFailed, Refused
from balloond.ops import OpsContext, save_domain
from chaos import other_user
from chaos.attacks_save import SWAPPER
from tests.ops.conftest import HOST_URI

pytestmark = pytest.mark.libvirt

NOBODY = other_user.NOBODY
TRIES = 60  # the swapper won 5 of 25 before the fix: 60 tries all lost is luck of ~1e-6
VICTIM = "root's own file\n" * 64


@pytest.fixture
def open_place() -> Iterator[Path]:
    """A place other users can reach (pytest's tmp_path is root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="bo-race-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _victim(place: Path) -> Path:
    victim = place / "victim.conf"
    victim.write_text(VICTIM)
    victim.chmod(0o644)
    return victim


def _intact(victim: Path) -> bool:
    info = victim.stat()
    return victim.read_text() == VICTIM and stat.S_IMODE(info.st_mode) == 0o644 and not info.st_uid


def _clean(folder: Path) -> None:
    for entry in os.scandir(folder):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


def _race(folder: Path, victim: Path) -> list[str]:
    """TRIES saves into `folder` while nobody swaps; what each came to."""
    why_not = other_user.can_run_as_nobody()
    if why_not is not None:
        pytest.skip(why_not)
    swapper = other_user.start_as_nobody(SWAPPER, str(folder), str(victim))
    outcomes = []
    try:
        assert swapper.stdout is not None and swapper.stdout.readline() == b"ready\n"
        for _ in range(TRIES):
            with OpsContext().use(LibvirtBackend(HOST_URI)) as ctx:  # a fresh host each try
                try:
                    save_domain(ctx, "web1", str(folder / "web1.img"))
                    outcomes.append("saved")
                except (BalloondError, OSError) as error:
                    outcomes.append(f"{type(error).__name__}: {error}")
            assert _intact(victim), f"the swapper won at try {len(outcomes)}: {outcomes[-1]}"
            _clean(folder)
    finally:
        other_user.stop(swapper)
    return outcomes


def test_a_folder_of_another_user_is_refused_and_the_race_never_wins(open_place: Path) -> None:
    victim = _victim(open_place)
    folder = open_place / "nobodys"
    folder.mkdir()
    os.chown(folder, NOBODY, NOBODY)
    outcomes = _race(folder, victim)
    assert _intact(victim)
    assert all("belongs to user 'nobody' (uid 65534)" in o for o in outcomes), outcomes[:3]


def test_a_sticky_folder_open_to_all_is_saved_into_and_the_race_never_wins(
    open_place: Path,
) -> None:
    victim = _victim(open_place)
    folder = open_place / "tmp"
    folder.mkdir()
    folder.chmod(0o1777)
    outcomes = _race(folder, victim)
    assert _intact(victim)
    assert outcomes.count("saved") == TRIES, outcomes[:3]


def test_folder_rules(open_place: Path) -> None:
    from balloond.ops.image import check_folder_safe

    if os.geteuid() != 0:
        pytest.skip("needs root to give folders to other users")
    mine = open_place / "mine"
    mine.mkdir(mode=0o755)
    check_folder_safe("web1", str(mine))
    sticky = open_place / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)
    check_folder_safe("web1", str(sticky))
    group = open_place / "group"
    group.mkdir()
    group.chmod(0o775)
    with pytest.raises(Refused, match=r"is writable by group 'root' \(gid 0\): another user"):
        check_folder_safe("web1", str(group))
    everyone = open_place / "everyone"
    everyone.mkdir()
    everyone.chmod(0o777)
    with pytest.raises(Refused, match="is writable by every user"):
        check_folder_safe("web1", str(everyone))
    theirs = open_place / "theirs"
    (theirs / "inner").mkdir(parents=True)
    os.chown(theirs, NOBODY, NOBODY)
    with pytest.raises(Refused, match=r"'.*/theirs', above '.*/theirs/inner', belongs to"):
        check_folder_safe("web1", str(theirs / "inner"))
    (open_place / "link").symlink_to(mine)  # judged where it leads
    check_folder_safe("web1", str(open_place / "link"))
    check_folder_safe("web1", str(theirs), uid=NOBODY)  # nobody saving into their own


class _SwapsAfterWriting(LibvirtBackend):
    """A backend whose save leaves a link where the image was (as a racing user would)."""

    victim: Path

    def save(self, name: str, path: str) -> None:
        super().save(name, path)
        os.unlink(path)
        os.symlink(self.victim, path)


def test_the_image_is_made_private_without_following_a_link(tmp_path: Path) -> None:
    victim = tmp_path / "victim.conf"
    victim.write_text(VICTIM)
    victim.chmod(0o644)
    backend = _SwapsAfterWriting(HOST_URI)
    backend.victim = victim
    with OpsContext().use(backend) as ctx, pytest.raises(OperationFailed):
        save_domain(ctx, "web1", str(tmp_path / "web1.img"))
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644, "chmod followed the link"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["victim.conf"], "nothing left behind"


class _PathAppears(LibvirtBackend):
    def save(self, name: str, path: str) -> None:
        super().save(name, path)
        Path(self.final).write_text("someone else's\n")

    final = ""


def test_an_image_never_replaces_a_file_that_appeared_while_saving(tmp_path: Path) -> None:
    from balloond.ops.image import SCRATCH_PREFIX

    backend = _PathAppears(HOST_URI)
    backend.final = str(tmp_path / "web1.img")
    with (
        OpsContext().use(backend) as ctx,
        pytest.raises(OperationFailed, match="created while saving; the image is kept in") as e,
    ):
        save_domain(ctx, "web1", backend.final)
    assert Path(backend.final).read_text() == "someone else's\n"
    kept = Path(str(e.value).rsplit("'", 2)[1])
    assert kept.parent.name.startswith(SCRATCH_PREFIX) and kept.stat().st_size > 0
    assert stat.S_IMODE(kept.parent.stat().st_mode) == 0o700


def test_a_failed_save_leaves_nothing_behind(ctx: OpsContext, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    with pytest.raises(OperationFailed):
        save_domain(ctx, "off1", str(images / "off1.img"))  # shut off: nothing to save
    assert list(images.iterdir()) == []
