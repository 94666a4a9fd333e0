"""The real-VM lab: real libvirtd "hosts", real QEMU guests booted from a tiny initramfs.

Everything it prepares lives in `e2e/.cache/` (git-ignored); everything it starts is stopped
by `e2e.procs` on exit. See docs/e2e.md.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(__file__).resolve().parent / ".cache"
# Every process we start carries this folder in its command line (config, kernel, pid files):
# that is how teardown and the next run recognise what is ours and nothing else.
RUN = CACHE / "run"
NAME_PREFIX = "bde2e-"
# One lab at a time on the machine, from whichever checkout (overridable for a private run).
LAB_LOCK = Path(os.environ.get("BALLOOND_LAB_LOCK", "/run/lock/balloond-lab.lock"))
