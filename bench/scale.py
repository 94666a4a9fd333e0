"""Scale figures of balloond's decision and daemon tick (issue 2 and 7); see
balloond/bench/scale.py. `make bench` runs this after the policy-quality benchmark."""

from __future__ import annotations

import sys
from pathlib import Path

from balloond.bench.scale import main

if __name__ == "__main__":
    out = Path(__file__).resolve().parent / "results" / "scale.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    sys.exit(main([*sys.argv[1:], "--out", str(out)] if "--out" not in sys.argv else None))
