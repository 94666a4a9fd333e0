"""Write the man pages and shell completions: `python3 -m balloond.cli.docgen --out DIR`.

Everything comes from what the programs themselves use: the argparse parsers behind
--help, the daemon config's knob table, and docs/policies.md (whose knob table a test holds
to the policy knob table). The Debian build runs this (debian/rules), so a package's man
pages are those of the code in it; `make man` writes them to build/man to read.

    DIR/man/balloond.8 balloonctl.8 balloond-guest.8 balloond.yaml.5 balloond-policy.5
    DIR/bash/balloond balloonctl balloond-guest
    DIR/zsh/_balloond _balloonctl _balloond-guest
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from balloond import __version__
from balloond.cli import completion, ctl, daemon, manpage
from balloond.cli.common import EXIT_STATUS
from balloond.cli.manpage import Page, Table
from balloond.config import CONFIG_FIELDS, DEFAULT_CONFIG_PATH, DaemonConfig, default_of

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CONFIG = ROOT / "balloond" / "data" / "balloond.yaml"
POLICIES_DOC = ROOT / "docs" / "policies.md"
_DEFAULTS = DaemonConfig()

ENVIRONMENT = (
    (
        "LIBVIRT_DEFAULT_URI",
        "The hypervisor URI when --connect is not given, as virsh reads it "
        "(it wins over the config's `uri`).",
    ),
    (
        "BALLOOND_CONFIG",
        f"The daemon config to read when --config is not given (else "
        f"{DEFAULT_CONFIG_PATH} if it exists).",
    ),
)
HOST_FILES = (
    (DEFAULT_CONFIG_PATH, "The daemon config, every setting commented: balloond.yaml(5)."),
    (_DEFAULTS.policy_dir, "The policy folder (*.yaml), read in name order: balloond-policy(5)."),
    (_DEFAULTS.state_dir, "What survives a restart: operator holds, stuck marks."),
    (_DEFAULTS.control_socket, "The control socket balloonctl talks to (mode 0600)."),
    (
        "/usr/share/doc/balloond/",
        "The documentation (daemon.md, policies.md, metrics.md, "
        "runbook.md) and example policies, dashboards and alert rules.",
    ),
)
SEE_HOST = (
    "balloonctl(8)",
    "balloond(8)",
    "balloond.yaml(5)",
    "balloond-policy(5)",
    "balloond-guest(8)",
    "virsh(1)",
    "systemd.service(5)",
    "journalctl(1)",
)


def _see(name: str) -> tuple[str, ...]:
    return tuple(ref for ref in SEE_HOST if not ref.startswith(name + "("))


def balloond_page() -> str:
    page = Page(
        "balloond",
        8,
        "policy-driven memory balancer for Xen and KVM guests",
        __version__,
        environment=(
            *ENVIRONMENT,
            (
                "JOURNAL_STREAM",
                "Set by systemd when the output goes to the journal: each line "
                "then starts with its syslog priority (<3> error, <4> warning, <6> info, <7> "
                "debug), so `journalctl -p warning -u balloond` finds the warnings.",
            ),
        ),
        files=HOST_FILES,
        exit_status=EXIT_STATUS,
        see_also=_see("balloond"),
        notes=(
            (
                "Signals",
                "SIGHUP reloads the policy folder (all or nothing: a broken file "
                "keeps the last good set). SIGTERM and SIGINT stop after the running tick.",
            ),
        ),
    )
    return manpage.program_page(page, daemon.parser())


def balloonctl_page() -> str:
    page = Page(
        "balloonctl",
        8,
        "operate balloond and the domains it balances",
        __version__,
        environment=ENVIRONMENT,
        files=HOST_FILES,
        exit_status=EXIT_STATUS,
        see_also=_see("balloonctl"),
    )
    return manpage.program_page(page, ctl.parser())


def guest_parser() -> argparse.ArgumentParser:
    try:
        from balloond_guest.cli import build_parser  # type: ignore[import-untyped]
    except ImportError as error:  # the agent is its own package (guest-agent/)
        raise SystemExit(
            f"docgen: the guest agent is not importable ({error}); put guest-agent/ on PYTHONPATH"
        ) from None
    parser: argparse.ArgumentParser = build_parser()
    return parser


def guest_page() -> str:
    page = Page(
        "balloond-guest",
        8,
        "report a VM's memory demand and pressure to balloond",
        __version__,
        environment=(
            (
                "BALLOOND_GUEST_ARGS",
                "The init script's arguments (default `run "
                "--interval 5`); also read from /etc/default/balloond-guest.",
            ),
        ),
        files=(
            ("/run/balloond-guest.sock", "The agent's control socket (`target SIZE` on KVM)."),
            (
                "/dev/virtio-ports/org.balloond.agent.0",
                "The channel to the host on KVM "
                "(`balloonctl agent-snippet DOMAIN` on the host adds it).",
            ),
            ("/etc/default/balloond-guest", "Settings for the init script."),
        ),
        exit_status=((0, "success"), (1, "an error (no channel to the host, a bad value)")),
        see_also=("balloond(8)", "balloonctl(8)"),
    )
    return manpage.program_page(page, guest_parser())


def config_page() -> str:
    page = Page(
        "balloond.yaml",
        5,
        "the balloond daemon's settings",
        __version__,
        files=((DEFAULT_CONFIG_PATH, "The config balloond reads by default."),),
        see_also=_see("balloond.yaml"),
    )
    defaults = {knob.name: knob.kind.render(default_of(knob.name)) for knob in CONFIG_FIELDS}
    defaults["stale_after"] = "3 intervals, at least 15s"
    table = Table(
        "Settings",
        "Every setting is optional; the default is given with each.",
        CONFIG_FIELDS,
        defaults,
    )
    return manpage.knob_page(page, DEFAULT_CONFIG_PATH, _config_intro(), [table])


def _config_intro() -> str:
    """The shipped file's own opening comment (what an operator reads first in /etc)."""
    block = SHIPPED_CONFIG.read_text(encoding="utf-8").split("\n\n", 1)[0]
    lines = [line.removeprefix("#").strip() for line in block.splitlines()[1:]]
    return "\n".join(lines)


def policy_page() -> str:
    page = Page(
        "balloond-policy",
        5,
        "balloond policy files",
        __version__,
        files=((_DEFAULTS.policy_dir, "The policy folder balloond reads by default."),),
        see_also=_see("balloond-policy"),
    )
    text = POLICIES_DOC.read_text(encoding="utf-8")
    body = text.split("\n", 1)[1]  # after the "# Policies" title
    intro, _, rest = body.partition("\n## ")
    lines = manpage.header(page)
    lines += [".SH SYNOPSIS", manpage.escape(f"{_DEFAULTS.policy_dir}/*.yaml")]
    lines += [".SH DESCRIPTION", *manpage.markdown(intro), *manpage.markdown("## " + rest)]
    return "\n".join(lines + manpage.footer(page)) + "\n"


PAGES: dict[str, Callable[[], str]] = {
    "balloond.8": balloond_page,
    "balloonctl.8": balloonctl_page,
    "balloond-guest.8": guest_page,
    "balloond.yaml.5": config_page,
    "balloond-policy.5": policy_page,
}
PROGRAMS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "balloond": daemon.parser,
    "balloonctl": ctl.parser,
    "balloond-guest": guest_parser,
}


def write_all(out: Path) -> list[Path]:
    written = []
    for name, page in PAGES.items():
        written.append(_write(out / "man" / name, page()))
    for name, parser in PROGRAMS.items():
        spec = completion.program(parser())
        written.append(_write(out / "bash" / name, completion.bash(spec)))
        written.append(_write(out / "zsh" / f"_{name}", completion.zsh(spec)))
    return written


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m balloond.cli.docgen",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", metavar="DIR", required=True, help="where to write them")
    args = parser.parse_args(argv)
    for path in write_all(Path(args.out)):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
