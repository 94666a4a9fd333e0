"""`balloonctl agent-snippet DOMAIN`: the <channel> that connects a domain's guest agent.

Prints the XML; with --apply, adds it to the domain's persistent config through `virsh
attach-device --config` (and --live for a running domain with a virtio-serial controller).
balloond finds the channel in the domain XML by its target name and connects to the socket.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
from typing import Any
from xml.sax.saxutils import quoteattr

from balloond.cli.common import EXIT_OK, URI_DEFAULT
from balloond.config import effective_uri
from balloond.daemon.runconfig import load_daemon_config
from balloond.errors import OperationFailed, Refused

PORT_NAME = "org.balloond.agent.0"
# libvirt's AppArmor/SELinux profiles let QEMU create sockets under its channel directory.
DEFAULT_SOCKET_DIR = "/var/lib/libvirt/qemu/channel/balloond"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,199}$")

EPILOG = f"""\
The same by hand:
  balloonctl agent-snippet web1 > chan.xml
  virsh attach-device web1 chan.xml --config      # from the next boot
  virsh attach-device web1 chan.xml --live        # now, if the guest has virtio-serial
In the guest: load virtio_console, run balloond-guest; it finds the port named {PORT_NAME}
through /sys/class/virtio-ports/*/name.
"""


def channel_xml(domain: str, socket_dir: str = DEFAULT_SOCKET_DIR) -> str:
    """The <channel> element for `domain`, its socket named after the domain."""
    if not _SAFE_NAME.match(domain):
        raise Refused(
            f"domain {domain!r}: name is not safe in a socket path "
            "(letters, digits, '_', '.', '+', '-' only); pass --socket to choose a path"
        )
    return socket_xml(os.path.join(socket_dir, f"{domain}.sock"))


def socket_xml(path: str) -> str:
    if not os.path.isabs(path):
        raise Refused(f"socket path {path!r} must be absolute")
    return (
        "<channel type='unix'>\n"
        f"  <source mode='bind' path={quoteattr(path)}/>\n"
        f"  <target type='virtio' name='{PORT_NAME}'/>\n"
        "</channel>\n"
    )


def apply(virsh: str, uri: str, domain: str, xml: str, live: bool) -> None:
    """Attach the channel with virsh; raise OperationFailed with virsh's own words."""
    with tempfile.NamedTemporaryFile("w", suffix=".xml", prefix="balloond-channel-") as handle:
        handle.write(xml)
        handle.flush()
        argv = [virsh, "-c", uri, "attach-device", domain, handle.name, "--config"]
        if live:
            argv.append("--live")
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise OperationFailed(f"domain {domain!r}: cannot run {virsh}: {exc}") from exc
    if done.returncode != 0:
        reason = (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
        raise OperationFailed(f"domain {domain!r}: virsh attach-device failed: {reason}")


def _run(args: argparse.Namespace) -> int:
    xml = (
        socket_xml(args.channel_socket)
        if args.channel_socket
        else channel_xml(args.domain, args.socket_dir)
    )
    print(xml, end="")
    if args.apply:
        if args.channel_socket is None:
            os.makedirs(args.socket_dir, exist_ok=True)
        uri = effective_uri(args.connect, load_daemon_config(None))
        apply(args.virsh, uri, args.domain, xml, args.live)
        where = "config and live domain" if args.live else "persistent config (next boot)"
        print(f"added the agent channel to {args.domain!r}: {where}")
    return EXIT_OK


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "agent-snippet",
        help="print (or add) the guest agent <channel> for a domain",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("domain", help="domain name")
    parser.add_argument(
        "--socket-dir",
        default=DEFAULT_SOCKET_DIR,
        help="directory for the host-side socket, named DOMAIN.sock (default %(default)s)",
    )
    # Its own dest: `balloonctl --socket PATH` before a command is the daemon's control socket.
    parser.add_argument(
        "--socket",
        dest="channel_socket",
        default=None,
        metavar="PATH",
        help="exact host socket path instead",
    )
    parser.add_argument("--apply", action="store_true", help="attach it with virsh --config")
    parser.add_argument("--live", action="store_true", help="with --apply: also attach it now")
    parser.add_argument(
        "-c",
        "--connect",
        metavar="URI",
        help=f"libvirt URI for --apply ({URI_DEFAULT})",
    )
    parser.add_argument("--virsh", default="virsh", help="the virsh command (default virsh)")
    parser.set_defaults(func=_run)
