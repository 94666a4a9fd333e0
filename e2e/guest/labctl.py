"""Guest side of the lab control channel (virtio-serial port org.balloond.lab.0).

The host sends one JSON object per line, {"id": N, "cmd": NAME, ...}; this answers one JSON
line {"id": N, "ok": true|false, ...}. Test-only: it runs as root inside a throwaway guest.
Standard library only: this runs on Debian's python3.11-minimal + libpython3.11-stdlib.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

HOG = None  # the running memory workload (subprocess.Popen), if any
PROGRESS = "/run/hog.progress"


def meminfo():
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts:
                value = int(parts[0])
                out[key] = value * 1024 if len(parts) > 1 and parts[1] == "kB" else value
    return out


def read_text(path, default=""):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def hog_status():
    if HOG is None:
        return {"alive": False, "allocated": 0, "rc": None}
    rc = HOG.poll()
    allocated = int(read_text(PROGRESS, "0").strip() or 0)
    return {"alive": rc is None, "allocated": allocated, "rc": rc, "pid": HOG.pid}


def start_hog(msg):
    global HOG
    stop_hog()
    argv = [
        sys.executable,
        "/opt/lab/hog.py",
        str(int(msg["size"])),
        str(int(msg.get("step", 16 << 20))),
        str(float(msg.get("interval", 0.5))),
    ]
    HOG = subprocess.Popen(argv)
    return {"pid": HOG.pid}


def stop_hog():
    global HOG
    if HOG is not None and HOG.poll() is None:
        HOG.send_signal(signal.SIGKILL)
        HOG.wait()
    HOG = None
    with contextlib.suppress(OSError):
        os.unlink(PROGRESS)
    return {}


def run(msg):
    done = subprocess.run(msg["argv"], capture_output=True, timeout=float(msg.get("timeout", 10)))
    return {
        "rc": done.returncode,
        "stdout": done.stdout.decode(errors="replace"),
        "stderr": done.stderr.decode(errors="replace"),
    }


COMMANDS = {
    "ping": lambda m: {"uptime": float(read_text("/proc/uptime", "0 0").split()[0])},
    "meminfo": lambda m: {"meminfo": meminfo()},
    "pressure": lambda m: {"memory": read_text("/proc/pressure/memory")},
    "counter": lambda m: {"counter": int(read_text("/run/counter", "0").strip() or 0)},
    "hog": start_hog,
    "hog_status": lambda m: hog_status(),
    "unhog": lambda m: stop_hog(),
    "run": run,
}


def answer(line):
    try:
        msg = json.loads(line)
        out = COMMANDS[msg["cmd"]](msg)
        out.update(id=msg.get("id"), ok=True)
    except Exception as exc:  # the host wants to see the error, the loop must go on
        out = {"id": None, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
        with contextlib.suppress(Exception):
            out["id"] = json.loads(line).get("id")
    return (json.dumps(out) + "\n").encode()


def serve(dev):
    fd = os.open(dev, os.O_RDWR)
    buf = b""
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            # virtio-serial reads 0 bytes while no host client is connected: wait for one.
            buf = b""
            time.sleep(0.2)
            continue
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.strip():
                data = answer(line)
                while data:
                    data = data[os.write(fd, data) :]


if __name__ == "__main__":
    serve(sys.argv[1])
