"""`python -m chaos`: run the attacks, print the table, exit 1 if any failed."""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from chaos import (
    attacks_channels,
    attacks_control,
    attacks_disk,
    attacks_http,
    attacks_save,
)
from chaos.lab import scratch
from chaos.session import Session
from chaos.table import render
from chaos.verdict import Row
from chaos.watch import Figures

Attack = tuple[str, Callable[[], Row]]


def all_attacks(session: Session) -> list[Attack]:
    found: list[Attack] = []
    found += attacks_http.attacks(lambda: session.daemon("metrics"))
    found += attacks_http.attacks(lambda: attacks_http.tls_daemon(session), " over TLS")[:1]
    found += attacks_control.attacks(session)
    found += attacks_disk.attacks(session)
    found += attacks_channels.attacks(session)
    found += attacks_save.attacks(session)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="TEXT",
        help="run only the attacks whose name contains TEXT (repeatable)",
    )
    parser.add_argument(
        "--tree",
        type=Path,
        metavar="DIR",
        help="run balloond and balloonctl from this source tree (figures "
        "before a fix); default: the installed package",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the rows as JSON")
    parser.add_argument("--list", action="store_true", help="list the attacks and exit")
    args = parser.parse_args(argv)
    started = time.monotonic()
    rows: list[Row] = []
    with scratch() as root:
        session = Session(root, args.tree.resolve() if args.tree else None)
        try:
            for name, attack in _selected(session, args.only, args.list):
                rows.append(_run(name, attack))
                print(
                    f"chaos: {rows[-1].verdict:4} {name} ({time.monotonic() - started:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
        finally:
            session.close()
    if args.list:
        return 0
    print(render(rows))
    print(f"chaos: {len(rows)} attacks in {time.monotonic() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps([asdict(row) for row in rows], indent=1))
    return 1 if any(row.verdict == "FAIL" for row in rows) else 0


def _selected(session: Session, only: list[str], listing: bool) -> list[Attack]:
    chosen = [a for a in all_attacks(session) if not only or any(t in a[0] for t in only)]
    if listing:
        for name, _ in chosen:
            print(name)
        return []
    return chosen


def _run(name: str, attack: Callable[[], Row]) -> Row:
    try:
        return attack()
    except Exception as error:  # an attack that breaks the harness is a failed row, not a stop
        row = Row(name, Figures())
        row.fail(f"harness: {type(error).__name__}: {error}")
        traceback.print_exc()
        return row


if __name__ == "__main__":
    sys.exit(main())
