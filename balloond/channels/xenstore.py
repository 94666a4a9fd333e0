"""Xen guests report through xenstore: the agent writes its latest report line to its own
`data/balloond/report` (a guest may write only under /local/domain/<id>/data/). Dom0 reads
it with `xenstore-read`; `xenstore-ls -f` output can be parsed too.

Run against a real xenstored in the Xen lab (tests/xen, docs/e2e.md); the unit tests use
text in the format `xenstore-read` and `xenstore-ls -f` print, the runner a parameter.
The domain is the `<id>` of the path read (libvirt's domain id), never the report's content.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from balloond.errors import ReportRejected
from balloond.model import DomainSnapshot, GuestReport
from balloond.reports import MAX_LINE, parse_report
from balloond.telemetry import Telemetry

REPORT_KEY = "data/balloond/report"
Runner = Callable[[Sequence[str]], str | None]  # argv -> stdout, None when the command failed

_LS_LINE = re.compile(r'^(?P<path>/[^ ]*) = "(?P<value>.*)"(?: +\(.*\))?$')
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|[0-7]{1,3}|.)")
_SIMPLE = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'"}


def run_command(argv: Sequence[str]) -> str | None:
    """Run a xenstore tool with a short timeout; None on any failure."""
    try:
        done = subprocess.run(argv, capture_output=True, timeout=2.0, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return done.stdout[: MAX_LINE * 4].decode("utf-8", "replace")


def parse_xenstore_ls(text: str) -> dict[str, str]:
    """`xenstore-ls -f` lines (`/path = "value"`, optionally followed by permissions in
    parentheses with -p) -> {path: value}, with the tool's backslash escapes undone."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        match = _LS_LINE.match(line.rstrip())
        if match:
            found[match.group("path")] = _unescape(match.group("value"))
    return found


def _unescape(value: str) -> str:
    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        if code in _SIMPLE:
            return _SIMPLE[code]
        if code.startswith("x") and len(code) == 3:
            return chr(int(code[1:], 16))
        if code.isdigit():
            return chr(int(code, 8))
        return code

    return _ESCAPE.sub(one, value)


class XenstoreReader:
    """A `ReportSource` for Xen domains: reads each domain's report at `sync` time."""

    def __init__(
        self,
        telemetry: Telemetry,
        clock: Callable[[], float] = time.time,
        runner: Runner = run_command,
        max_age: float = 30.0,
    ) -> None:
        self.telemetry = telemetry
        self.clock = clock
        self.runner = runner
        self.max_age = max_age
        self._reports: dict[str, GuestReport] = {}
        self._lines: dict[str, bytes] = {}  # the last line read, accepted or not

    @staticmethod
    def available() -> bool:
        return shutil.which("xenstore-read") is not None

    def sync(self, domains: Iterable[DomainSnapshot]) -> None:
        seen: set[str] = set()
        for domain in domains:
            if domain.hypervisor != "xen" or domain.id is None:
                continue
            seen.add(domain.uuid)
            self._read_one(domain)
        for uuid in [u for u in self._lines if u not in seen]:  # every uuid read is in _lines
            del self._lines[uuid]
            self._reports.pop(uuid, None)

    def _read_one(self, domain: DomainSnapshot) -> None:
        text = self.runner(["xenstore-read", f"/local/domain/{domain.id}/{REPORT_KEY}"])
        if text is None:
            return
        line = text.rstrip("\n").encode("utf-8", "surrogateescape")
        if self._lines.get(domain.uuid) == line:
            return  # xenstore keeps only the latest value: reading it again is not news
        self._lines[domain.uuid] = line
        previous = self._reports.get(domain.uuid)
        try:
            report = parse_report(
                line,
                maxmem=domain.maxmem,
                now=self.clock(),
                previous_seq=None if previous is None else previous.seq,
            )
        except ReportRejected as rejected:
            self.telemetry.record_report(domain.name, rejected.reason)
            return
        self._reports[domain.uuid] = report
        self.telemetry.record_report(domain.name, None)

    def reports(self) -> Mapping[str, GuestReport]:
        now = self.clock()
        return {u: r for u, r in self._reports.items() if now - r.received_at <= self.max_age}
