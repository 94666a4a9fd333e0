"""Figures measured by the lab (boot time, report latency, reaction time, save/restore and
migration costs), written to e2e/.cache/report.json and printed at the end of the session."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

from e2e import CACHE

REPORT = CACHE / "report.json"


class Report:
    def __init__(self, path: Path = REPORT) -> None:
        self.path = path
        self.figures: dict[str, dict[str, Any]] = {}
        self.meta: dict[str, Any] = {
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": platform.node(),
        }

    def record(self, section: str, key: str, value: Any) -> None:
        self.figures.setdefault(section, {})[key] = value

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(
            json.dumps({"meta": self.meta, "figures": self.figures}, indent=2, sort_keys=True)
            + "\n"
        )

    def lines(self) -> list[str]:
        out = []
        for section in sorted(self.figures):
            out.append(f"{section}:")
            for key, value in self.figures[section].items():
                out.append(f"  {key:<34} {_fmt(value)}")
        return out


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)
