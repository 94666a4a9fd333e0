"""The explicit operator operations behind `balloonctl` (balloon, maxmem, save, restore,
migrate), as plain functions over a backend so that tests and the real-VM lab call them
with URIs, without the CLI.

Every operation checks first and refuses (`balloond.errors.Refused`, with the figures) before
it changes anything; while it works on a domain it records a hold with its pid, so a running
daemon leaves that domain alone, and it removes the hold at the end.
"""

from __future__ import annotations

from balloond.config import config_path
from balloond.ops.context import OpsContext, destination_uri
from balloond.ops.holding import working_hold
from balloond.ops.image import RestoreResult, SaveResult, restore_domain, save_domain
from balloond.ops.memory import BalloonResult, balloon, release, set_maxmem
from balloond.ops.migration import MigrateResult, migrate_domain

__all__ = [
    "BalloonResult",
    "MigrateResult",
    "OpsContext",
    "RestoreResult",
    "SaveResult",
    "balloon",
    "config_path",
    "destination_uri",
    "migrate_domain",
    "release",
    "restore_domain",
    "save_domain",
    "set_maxmem",
    "working_hold",
]
