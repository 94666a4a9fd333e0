"""Placeholder: subcommands registered here are being written (see balloond/cli/__init__.py)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Nothing registered yet."""
