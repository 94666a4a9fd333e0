"""The habits of the tools operators already use: --version everywhere, LIBVIRT_DEFAULT_URI
as virsh reads it, `list --name`, and man pages and shell completion that come from the
parsers themselves (balloond.cli.docgen)."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from balloond import __version__
from balloond.cli import completion, ctl, daemon, docgen
from balloond.config import DaemonConfig, effective_uri

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def _no_host_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "balloond.yaml"
    config.write_text(
        f"policy_dir: {REPO / 'policies'}\ncontrol_socket: {tmp_path / 'none.sock'}\n"
    )
    monkeypatch.setenv("BALLOOND_CONFIG", str(config))
    monkeypatch.delenv("LIBVIRT_DEFAULT_URI", raising=False)


@pytest.mark.parametrize("program", ["balloond", "balloonctl", "balloond-guest"])
def test_every_program_prints_its_version(program: str) -> None:
    done = subprocess.run(
        [str(BIN / program), "--version"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{program} {__version__}"


def test_the_uri_is_chosen_as_virsh_chooses_it(monkeypatch: pytest.MonkeyPatch) -> None:
    config = DaemonConfig(uri="xen:///system")
    assert effective_uri(None, config) == "xen:///system"
    monkeypatch.setenv("LIBVIRT_DEFAULT_URI", "test:///default")
    assert effective_uri(None, config) == "test:///default"  # the environment over the file
    assert effective_uri("qemu:///session", config) == "qemu:///session"  # the option over all
    monkeypatch.setenv("LIBVIRT_DEFAULT_URI", "")
    assert effective_uri(None, config) == "xen:///system"  # empty is unset, as for virsh


@pytest.mark.libvirt
def test_balloonctl_reads_libvirt_default_uri(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("libvirt")
    monkeypatch.setenv("LIBVIRT_DEFAULT_URI", "test:///default")
    assert ctl.main(["list", "--name"]) == 0
    assert capsys.readouterr().out.split() == ["test"]


@pytest.mark.libvirt
def test_balloond_run_reads_libvirt_default_uri(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("libvirt")
    monkeypatch.setenv("LIBVIRT_DEFAULT_URI", "test:///default")
    assert daemon.main(["run", "--once", "--dry-run"]) == 0
    assert "test" in capsys.readouterr().out


# -- man pages --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docgen")
    docgen.write_all(out)
    return out


def _options(parser: argparse.ArgumentParser) -> set[str]:
    found = {o for a in parser._actions for o in a.option_strings}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _options(sub)
    return found


@pytest.mark.parametrize("program", list(docgen.PROGRAMS))
def test_a_program_page_has_every_command_and_option(generated: Path, program: str) -> None:
    parser = docgen.PROGRAMS[program]()
    text = (generated / "man" / f"{program}.8").read_text(encoding="utf-8").replace("\\-", "-")
    for option in _options(parser):
        assert re.search(rf"\\fB{re.escape(option)}\\fR", text), f"{program}(8): {option}"
    for command in completion.program(parser).commands:
        assert f'.SS "{command.names[0]}' in text, f"{program}(8): {command.names[0]}"


def test_the_config_page_has_every_setting_with_its_default(generated: Path) -> None:
    from balloond.config import CONFIG_FIELDS

    text = (generated / "man" / "balloond.yaml.5").read_text(encoding="utf-8")
    for knob in CONFIG_FIELDS:
        assert f"\\fB{knob.name}\\fR" in text.replace("\\-", "-").replace("\\e", "\\"), knob.name
    assert "Default: \\fB2s\\fR" in text  # interval, from DaemonConfig


def test_the_policy_page_is_the_policy_documentation(generated: Path) -> None:
    from balloond.policy.knobs import POLICY_KNOBS

    text = (generated / "man" / "balloond-policy.5").read_text(encoding="utf-8")
    assert '.SH "MATCHING: WHICH POLICY GOVERNS A DOMAIN"' in text
    for knob in POLICY_KNOBS:
        assert f"\\fB{knob.name}\\fR" in text, knob.name


@pytest.mark.skipif(shutil.which("groff") is None, reason="no groff")
@pytest.mark.parametrize("page", list(docgen.PAGES))
def test_a_page_renders_without_a_warning(generated: Path, page: str) -> None:
    done = subprocess.run(
        ["groff", "-k", "-man", "-Tutf8", "-ww", "-z", str(generated / "man" / page)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and not done.stderr, done.stderr


# -- completion -------------------------------------------------------------------------------


def _bash(script: Path, line: str) -> list[str]:
    """What bash offers for `line` (the cursor at its end)."""
    program = (
        f"source {script}\n"
        f"COMP_LINE={line!r}; COMP_POINT=${{#COMP_LINE}}\n"
        f"_{script.name.replace('-', '_')}\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = {"PATH": f"{BIN}:/usr/bin:/bin"}
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_bash_completes_commands_options_and_choices(generated: Path) -> None:
    script = generated / "bash" / "balloonctl"
    assert "explain" in _bash(script, "balloonctl ex")
    assert _bash(script, "balloonctl top --sort pr") == ["pressure"]
    assert "--name" in _bash(script, "balloonctl list --n")
    assert "--dry-run" in _bash(generated / "bash" / "balloond", "balloond run --dr")
    assert "run" in _bash(generated / "bash" / "balloond-guest", "balloond-guest r")


@pytest.mark.libvirt
def test_bash_completes_domain_names_from_the_uri_on_the_line(generated: Path) -> None:
    pytest.importorskip("libvirt")
    script = generated / "bash" / "balloonctl"
    assert _bash(script, "balloonctl -c test:///default explain ") == ["test"]
    assert _bash(script, "balloonctl balloon --connect test:///default t") == ["test"]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="no zsh")
@pytest.mark.parametrize("name", ["_balloond", "_balloonctl", "_balloond-guest"])
def test_zsh_reads_the_completion(generated: Path, name: str) -> None:
    done = subprocess.run(["zsh", "-n", str(generated / "zsh" / name)], capture_output=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.libvirt
@pytest.mark.skipif(shutil.which("zsh") is None, reason="no zsh")
def test_zsh_offers_domain_names_from_the_uri_on_the_line(generated: Path) -> None:
    pytest.importorskip("libvirt")
    script = (generated / "zsh" / "_balloonctl").read_text(encoding="utf-8")
    functions = script.rsplit("\n_balloonctl ", 1)[0]  # defined, not run
    program = (
        f"{functions}\n"
        '_wanted() { shift 3; "$@" }\n'  # _wanted TAG EXPL DESCR compadd ...
        "compadd() { print -l -- ${(P)2} }\n"  # compadd -a ARRAY
        "BUFFER='balloonctl -c test:///default explain '\n"
        "_balloonctl_domains\n"
    )
    env = {"PATH": f"{BIN}:/usr/bin:/bin"}
    done = subprocess.run(["zsh", "-f", "-c", program], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["test"]
