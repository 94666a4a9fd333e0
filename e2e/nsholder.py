"""Hold a private mount namespace open for a lab "host" (run under `unshare -m`).

    python -m e2e.nsholder READY_FILE SRC:DST [SRC:DST ...]

Bind-mounts each SRC over DST (inside this namespace only), writes READY_FILE, and waits
for SIGTERM. The host's daemons join the namespace with `nsenter -t PID -m`.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    ready, binds = Path(argv[0]), argv[1:]
    for bind in binds:
        src, dst = bind.split(":", 1)
        if not Path(src).is_file():  # a folder (files, e.g. /etc/passwd, bind as they are)
            Path(src).mkdir(parents=True, exist_ok=True)
            Path(dst).mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "--bind", src, dst], check=True)
    ready.write_text("ready\n")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        signal.pause()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
