"""`balloonctl list`, `explain`, `status`, `holds`, `release`.

Each asks the running daemon over its control socket. When no daemon runs (or it manages
another URI than `--connect`), list/explain/holds open the backend themselves, load the
policies, decide once without changing anything, and say "daemon not running; computed now".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from balloond.backend import open_backend
from balloond.backend.base import HoldStore
from balloond.cli import ctl_view_text as text
from balloond.cli.common import EXIT_OK, EXIT_UNREACHABLE, URI_DEFAULT
from balloond.cli.printable import printable, printable_data
from balloond.config import effective_uri
from balloond.daemon import present
from balloond.daemon.assemble import compute_once
from balloond.daemon.control import ControlClient, DaemonNotRunning
from balloond.daemon.loop import Daemon, LoopSettings
from balloond.daemon.runconfig import load_daemon_config
from balloond.errors import DomainNotFound, Refused

COMPUTED_NOW = "daemon not running; computed now"


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "list",
        help="list domains: xm list columns plus target, policy and pressure",
        description="List every active domain with xm list's columns (Name, ID, Mem in MiB, "
        "VCPUs, State, Time(s)) plus maxmem, target, floor, ceiling, policy, pressure, hold "
        "and the age of the last guest report.",
    )
    _common(parser, json_help="print the rows as JSON (sizes in bytes)")
    parser.add_argument(
        "--name",
        action="store_true",
        help="print only the domain names, one per line, as `virsh list --name` does (the "
        "shell completion reads them so)",
    )
    parser.set_defaults(func=cmd_list)

    parser = subparsers.add_parser(
        "explain",
        help="why a domain's target is what it is",
        description="Show a domain's inputs (balloon statistics, guest report), the policy "
        "that governs it and the selector that chose it, and why its target is what it is.",
    )
    parser.add_argument("domain", metavar="DOMAIN", help="domain name, UUID or id")
    _common(parser, json_help="print the explanation as JSON (sizes in bytes)")
    parser.set_defaults(func=cmd_explain)

    parser = subparsers.add_parser(
        "status",
        help="is the daemon running, and how is it doing",
        description="The running daemon's health: connection, "
        "ticks, policies, holds, failures. Exits 4 if it is not "
        "running.",
    )
    _common(parser, json_help="print the status as JSON")
    parser.set_defaults(func=cmd_status)

    parser = subparsers.add_parser(
        "holds",
        help="list domains the daemon leaves alone",
        description="Active holds: domains the daemon must not "
        "move (an explicit balloon, a save or migration in "
        "progress, an operator's hold).",
    )
    _common(parser, json_help="print the holds as JSON")
    parser.set_defaults(func=cmd_holds)

    parser = subparsers.add_parser(
        "release",
        help="clear a domain's hold",
        description="Clear a domain's hold, so the daemon manages "
        "it again at its next tick (which runs at once).",
    )
    parser.add_argument("domain", metavar="DOMAIN", help="domain name, UUID or id")
    _common(parser, json_help=None)
    parser.set_defaults(func=cmd_release)


def _common(parser: argparse.ArgumentParser, *, json_help: str | None) -> None:
    parser.add_argument(
        "--connect",
        "-c",
        metavar="URI",
        help=f"hypervisor URI as virsh takes it ({URI_DEFAULT}); used when the daemon is "
        "not running or manages another URI",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="daemon config to read defaults from (default: $BALLOOND_CONFIG, "
        "else /etc/balloond/balloond.yaml if it exists)",
    )
    parser.add_argument(
        "--socket",
        metavar="PATH",
        help="the daemon's control socket (default: the config's "
        "`control_socket`, /run/balloond/control.sock)",
    )
    parser.add_argument(
        "--policy-dir",
        metavar="DIR",
        help="policies to use when computing without the daemon (default: "
        "the config's `policy_dir`)",
    )
    if json_help is not None:
        parser.add_argument("--json", action="store_true", help=json_help)


# -- where the answer comes from --------------------------------------------------------------


class Source:
    """Settings for reaching the daemon, or for computing without it."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.config = load_daemon_config(args.config)
        self.policy_dir_given = args.policy_dir is not None
        # An explicit URI (--connect or $LIBVIRT_DEFAULT_URI, as virsh reads them): the
        # daemon's answer counts only if it manages that one.
        self.requested_uri: str | None = args.connect or os.environ.get("LIBVIRT_DEFAULT_URI")
        self.uri: str = effective_uri(args.connect, self.config)
        self.socket = args.socket or str(self.config.control_socket)
        self.policy_dir = args.policy_dir or self.config.policy_dir
        self.note = COMPUTED_NOW

    def ask(self, cmd: str, **kwargs: Any) -> dict[str, Any] | None:
        """The daemon's answer, or None when it is not running or manages another URI
        (`self.note` then says which)."""
        client = ControlClient(self.socket)
        try:
            if self.requested_uri:
                # Ask first whose host it is: its answer about another host would mislead.
                theirs = client.call("status").get("uri")
                if theirs != self.requested_uri:
                    self.note = f"balloond manages {theirs}, not {self.requested_uri}; computed now"
                    return None
            result = client.call(cmd, **kwargs)
        except DaemonNotRunning:
            return None
        return result if isinstance(result, dict) else None

    def compute(self) -> Daemon:
        return compute_once(
            self.uri,
            self.policy_dir,
            LoopSettings.from_config(self.config),
            policy_dir_required=self.policy_dir_given,
        )


Local = Callable[[Daemon], dict[str, Any]]


def obtain(source: Source, cmd: str, local: Local, **kwargs: Any) -> tuple[dict[str, Any], str]:
    """(answer, note): the daemon's answer (note ""), or one computed now without it."""
    answer = source.ask(cmd, **kwargs)
    if answer is not None:
        return answer, ""
    daemon = source.compute()
    try:
        return local(daemon), source.note
    finally:
        daemon.close()


def _emit(answer: Any, as_json: bool, render: Callable[[Any], str], note: str) -> None:
    """JSON escapes control characters itself; text is rendered from a `printable` copy."""
    if note:
        print(printable(note), file=sys.stderr)
    if as_json:
        print(json.dumps(answer, indent=1, sort_keys=True))
    else:
        print(render(printable_data(answer)))


# -- commands -------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    if args.name:
        return _list_names(Source(args))

    def local(daemon: Daemon) -> dict[str, Any]:
        return {"uri": daemon.uri, "rows": present.list_rows(daemon, daemon.clock())}

    answer, note = obtain(Source(args), "list", local)
    rows = answer.get("rows", [])
    stale = text.staleness(printable_data(answer))
    if stale:
        print(stale, file=sys.stderr)
    _emit(rows, args.json, text.list_table, note)
    return EXIT_OK


def _list_names(source: Source) -> int:
    """Names only: from the daemon, else straight from the hypervisor (no decision is
    computed: a shell completing a name waits for this)."""
    answer = source.ask("list")
    if answer is not None:
        names = [str(row.get("name")) for row in answer.get("rows", []) if row.get("name")]
    else:
        backend = open_backend(source.uri)
        try:
            names = [domain.name for domain in backend.domains()]
        finally:
            backend.close()
    for name in sorted(names):
        print(printable(name))
    return EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    def local(daemon: Daemon) -> dict[str, Any]:
        found = present.explain(daemon, daemon.policies.current, args.domain, daemon.clock())
        if found is None:
            # Only running domains are seen here: a defined one that is shut off is not
            # found either, so this does not claim the domain exists.
            raise DomainNotFound(
                f"domain {args.domain!r} not found among the running domains on {daemon.uri}"
            )
        return {"uri": daemon.uri, **found}

    answer, note = obtain(Source(args), "explain", local, domain=args.domain)
    _emit(answer, args.json, text.explanation, note)
    return EXIT_OK


def cmd_holds(args: argparse.Namespace) -> int:
    def local(daemon: Daemon) -> dict[str, Any]:
        return {"uri": daemon.uri, "holds": present.holds_list(daemon, daemon.clock())}

    answer, note = obtain(Source(args), "holds", local)
    holds = answer.get("holds", [])
    _emit(holds, args.json, text.holds_table, note)
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    source = Source(args)
    try:
        answer = ControlClient(source.socket).call("status")
    except DaemonNotRunning as error:
        print(f"balloonctl: {error}", file=sys.stderr)
        return EXIT_UNREACHABLE
    _emit(answer, args.json, text.status, "")
    return EXIT_OK


def cmd_release(args: argparse.Namespace) -> int:
    source = Source(args)
    answer = source.ask("release", domain=args.domain)
    if answer is not None:
        what = "released" if answer.get("released") else "had no hold; nothing to release"
        print(printable(f"{answer.get('domain', args.domain)}: {what}"))
        return EXIT_OK
    backend = open_backend(source.uri)
    try:
        if not isinstance(backend, HoldStore):
            raise Refused(f"{source.uri}: this backend keeps no holds")
        backend.clear_hold(args.domain)
    finally:
        backend.close()
    print(printable(f"{args.domain}: hold cleared ({source.note.split(';')[0]})"))
    return EXIT_OK
