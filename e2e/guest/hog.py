"""Allocate SIZE bytes in STEP-byte chunks, one every INTERVAL seconds, touching every page,
then hold them until killed. Progress (bytes held) goes to /run/hog.progress."""

import signal
import sys
import time

size, step, interval = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
held = []
total = 0
while total < size:
    n = min(step, size - total)
    held.append(b"\x01" * n)  # written, so resident: a zero-filled bytearray would not be
    total += n
    with open("/run/hog.progress", "w") as f:
        f.write(str(total))
    time.sleep(interval)
signal.pause()
