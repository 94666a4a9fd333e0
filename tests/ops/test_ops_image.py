"""balloonctl save and restore against libvirt's test driver."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from balloond.cli.ctl import main
from balloond.errors import OperationFailed, Refused
from balloond.model import Hold
from balloond.ops import OpsContext, restore_domain, save_domain
from balloond.ops.image import check_disk_room, check_room
from balloond.units import GiB, MiB

pytestmark = pytest.mark.libvirt


def names(ctx: OpsContext) -> list[str]:
    return sorted(d.name for d in ctx.backend.domains())


def test_save_writes_a_private_image(ctx: OpsContext, tmp_path: Path) -> None:
    image = tmp_path / "web1.img"
    old = os.umask(0)  # the image must be private whatever the caller's umask
    try:
        result = save_domain(ctx, "web1", str(image))
    finally:
        os.umask(old)
    assert image.stat().st_mode & 0o777 == 0o600
    assert result.size == image.stat().st_size > 0
    assert result.memory == 2 * GiB and result.seconds >= 0
    assert "web1" not in names(ctx)
    assert ctx.backend.holds() == {}  # the command's hold went with it


def test_save_never_overwrites(ctx: OpsContext, tmp_path: Path) -> None:
    image = tmp_path / "precious.img"
    image.write_bytes(b"an older image")
    with pytest.raises(Refused, match="already exists"):
        save_domain(ctx, "web1", str(image))
    assert image.read_bytes() == b"an older image"
    assert "web1" in names(ctx) and ctx.backend.holds() == {}


def test_save_force_replaces_only_when_complete(ctx: OpsContext, tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    image = tmp_path / "images" / "old.img"
    image.write_bytes(b"an older image")
    image.chmod(0o644)
    save_domain(ctx, "web1", str(image), force=True)
    assert image.read_bytes() != b"an older image"
    assert image.stat().st_mode & 0o777 == 0o600
    assert os.listdir(tmp_path / "images") == ["old.img"]  # no scratch file left


def test_failed_forced_save_keeps_the_old_image(ctx: OpsContext, tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    image = tmp_path / "images" / "old.img"
    image.write_bytes(b"an older image")
    with pytest.raises(OperationFailed):
        save_domain(ctx, "off1", str(image), force=True)  # shut off: nothing to save
    assert image.read_bytes() == b"an older image"
    assert os.listdir(tmp_path / "images") == ["old.img"]


def test_squeeze_saves_a_smaller_guest(ctx: OpsContext, tmp_path: Path) -> None:
    result = save_domain(ctx, "batch1", str(tmp_path / "b.img"), squeeze_to_floor=True)
    assert result.squeezed is not None
    assert (result.squeezed.before, result.squeezed.reached) == (6 * GiB, 2 * GiB)
    assert result.squeezed.complete
    assert result.memory == 2 * GiB  # batch policy floor


@pytest.mark.parametrize(
    ("memory", "reserve", "free", "refused"),
    [
        (GiB, GiB, 2 * GiB, False),
        (GiB, GiB, 2 * GiB - 1, True),
        (GiB, 0, 0, True),
        (0, 0, 0, False),
    ],
)
def test_check_room_table(memory: int, reserve: int, free: int, refused: bool) -> None:
    if refused:
        with pytest.raises(Refused, match="needs"):
            check_room("d", memory, reserve, free, "host 'h'")
    else:
        check_room("d", memory, reserve, free, "host 'h'")


def test_restore_refuses_without_room(default_ctx: OpsContext, tmp_path: Path) -> None:
    image = tmp_path / "test.img"
    save_domain(default_ctx, "test", str(image))
    # test:///default reports 3 MiB free: far less than 2 GiB + the 1 GiB reserve.
    with pytest.raises(Refused, match=r"needs 2 GiB \+ host reserve 1 GiB = 3 GiB.*3 MiB free"):
        restore_domain(default_ctx, str(image))
    assert names(default_ctx) == []
    result = restore_domain(default_ctx, str(image), force=True)
    assert (result.name, result.memory) == ("test", 2 * GiB)
    assert names(default_ctx) == ["test"]


def test_restore_drops_the_save_commands_hold_but_keeps_a_pin(
    default_ctx: OpsContext, tmp_path: Path
) -> None:
    backend = default_ctx.backend
    pin = Hold(domain="x", owner="balloonctl balloon", reason="pinned", target=2 * GiB)
    backend.put_hold("test", pin)
    save_domain(default_ctx, "test", str(tmp_path / "t.img"))
    restore_domain(default_ctx, str(tmp_path / "t.img"), force=True)
    (hold,) = backend.holds().values()
    assert hold.owner == "balloonctl balloon" and hold.pid is None


@pytest.mark.parametrize("content", [b"", b"garbage" * 100, b"LibvirtQemudSave" + b"\0" * 64])
def test_damaged_image_changes_nothing(
    default_ctx: OpsContext, tmp_path: Path, content: bytes
) -> None:
    image = tmp_path / "damaged.img"
    image.write_bytes(content)
    with pytest.raises(OperationFailed, match="not a saved domain image"):
        restore_domain(default_ctx, str(image), force=True)
    assert names(default_ctx) == ["test"]
    assert image.read_bytes() == content


def test_missing_image(default_ctx: OpsContext, tmp_path: Path) -> None:
    with pytest.raises(OperationFailed, match="does not exist"):
        restore_domain(default_ctx, str(tmp_path / "nope.img"))


def test_cli_save_and_restore(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "web1.img"
    assert main(["save", "--config", str(config_file), "web1", str(image), "--squeeze"]) == 0
    out = capsys.readouterr().out
    assert "squeezed 2 GiB -> 1 GiB" in out and f"to {image}" in out and " s" in out
    assert main(["save", "--config", str(config_file), "web1", str(image)]) == 3
    assert "already exists" in capsys.readouterr().err
    # The custom host reports no free memory at all: restore is refused with figures.
    assert main(["restore", "--config", str(config_file), str(image)]) == 3
    assert "needs 1 GiB + host reserve 1 GiB = 2 GiB" in capsys.readouterr().err


def test_cli_restore_damaged(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "x.img"
    image.write_bytes(b"\x7fELF not an image")
    assert main(["restore", "--config", str(config_file), str(image)]) == 1
    err = capsys.readouterr().err
    assert "not a saved domain image" in err and err.count("\n") == 1


def test_sizes_are_whole_kib(ctx: OpsContext, tmp_path: Path) -> None:
    from balloond.ops import balloon

    balloon(ctx, "web1", 1536 * MiB + 100)  # rounded down to KiB at libvirt's edge
    result = save_domain(ctx, "web1", str(tmp_path / "w.img"))
    assert result.memory == 1536 * MiB


@pytest.mark.parametrize(
    ("make", "force", "message"),
    [
        ("folder", False, "is a directory; name a file inside it"),
        ("folder", True, "is a directory; name a file inside it"),
        ("fifo", True, "is not a regular file; not replacing it"),
        ("missing-folder", True, "folder '.*/nowhere' does not exist"),
    ],
)
def test_save_refuses_a_file_that_cannot_be_its_image_before_squeezing(
    ctx: OpsContext, tmp_path: Path, make: str, force: bool, message: str
) -> None:
    target = tmp_path / "target"
    if make == "folder":
        target.mkdir()
    elif make == "fifo":
        os.mkfifo(target)
    else:
        target = tmp_path / "nowhere" / "b.img"
    with pytest.raises(Refused, match=message):
        save_domain(ctx, "batch1", str(target), force=force, squeeze_to_floor=True)
    batch = {d.name: d for d in ctx.backend.domains()}["batch1"]
    assert batch.current == 6 * GiB  # not squeezed for nothing
    assert ctx.backend.holds() == {}


def test_cli_save_to_a_folder_with_force_is_one_line(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["save", "--config", str(config_file), "--force", "web1", str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert "is a directory" in err and err.count("\n") == 1
    assert main(["save", "--config", str(config_file), "web1", ""]) == 2


def test_restore_from_a_folder_is_one_clear_line(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["restore", "--config", str(config_file), str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "is a directory, not a saved domain image" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("memory", "free", "refused"),
    [(2 * GiB, 2 * GiB, False), (2 * GiB, 2 * GiB - 1, True), (GiB, None, False)],
)
def test_check_disk_room_table(memory: int, free: int | None, refused: bool) -> None:
    if refused:
        with pytest.raises(Refused, match="has only"):
            check_disk_room("d", "/saves/d.img", memory, free)
    else:
        check_disk_room("d", "/saves/d.img", memory, free)


def test_save_refuses_a_full_file_system_before_touching_the_guest(
    ctx: OpsContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Xen lab's dom0 ran out of space mid-save: libxl left the domain suspended while
    libvirt said 'running'. The room is checked first, so the guest is never touched."""
    monkeypatch.setattr("balloond.ops.image._free_bytes", lambda folder: 64 * MiB)
    with pytest.raises(Refused, match="needs about 2 GiB"):
        save_domain(ctx, "web1", str(tmp_path / "web1.img"))
    assert "web1" in names(ctx)
    assert not (tmp_path / "web1.img").exists()
    assert ctx.backend.holds() == {}
