"""The lab's control server in dom0: the KVM guest's labctl commands (e2e/guest/labctl.py:
meminfo, run, ...) served over TCP, plus what only dom0 can do for the test:

- `domu`: a command for a domU's own labctl, passed through xenstore (dom0 writes
  /local/domain/<id>/lab/cmd, the domU answers in its data/lab/reply);
- `read`/`write`: files in dom0 (consoles, logs, the daemon's config);
- a forwarder from 0.0.0.0:PORT to the daemon's loopback metrics port, as an operator's
  tunnel would be (QEMU's user network reaches only dom0's eth0 address).

Test-only: it runs as root in a throwaway dom0. Python 3.11 standard library only.
"""

import argparse
import base64
import contextlib
import json
import socket
import subprocess
import sys
import threading
import time

import labctl

XS_BIN = "/usr/bin/"


def xs(*argv, timeout=10):
    done = subprocess.run(
        [XS_BIN + argv[0], *argv[1:]], capture_output=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        return None
    return done.stdout.decode(errors="replace")


def domu(msg):
    """Send {"cmd": ...} to the labctl of domain `domid` and wait for its answer."""
    domid = int(msg["domid"])
    request = {k: v for k, v in msg.items() if k not in ("domid", "id", "wait", "domu_cmd")}
    request["cmd"] = msg["domu_cmd"]
    request["id"] = f"{domid}-{time.time():f}"
    # base64: xenstore-write expands backslash escapes, which JSON strings are full of.
    text = base64.b64encode(json.dumps(request).encode()).decode()
    if xs("xenstore-write", f"/local/domain/{domid}/lab/cmd", text) is None:
        raise RuntimeError(f"xenstore-write of domain {domid}'s lab/cmd failed")
    deadline = time.monotonic() + float(msg.get("wait", 20))
    while time.monotonic() < deadline:
        raw = xs("xenstore-read", "-R", f"/local/domain/{domid}/data/lab/reply")
        if raw:
            try:
                reply = json.loads(raw)
            except ValueError:
                reply = {}
            if reply.get("id") == request["id"]:
                return {"reply": reply}
        time.sleep(0.1)
    raise TimeoutError(f"domain {domid} did not answer {request['cmd']}")


def read(msg):
    with open(msg["path"], "rb") as f:
        if msg.get("tail"):
            f.seek(0, 2)
            f.seek(max(0, f.tell() - int(msg["tail"])))
        return {"text": f.read().decode(errors="replace")}


def write(msg):
    with open(msg["path"], "w") as f:
        f.write(msg["text"])
    return {}


def run(msg):
    """labctl's `run`, its time limit given as `timeout_s` (the host's client keeps
    `timeout` for its own socket)."""
    return labctl.run(dict(msg, timeout=float(msg.get("timeout_s", 60))))


labctl.COMMANDS.update(domu=domu, read=read, write=write, run=run)


def serve_client(conn):
    buf = b""
    with conn:
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                return
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.strip():
                    conn.sendall(labctl.answer(line))


def listen(port, handler):
    server = socket.create_server(("0.0.0.0", port), reuse_port=True)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=handler, args=(conn,), daemon=True).start()


def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def forwarder(target):
    host, port = target

    def handle(conn):
        try:
            upstream = socket.create_connection((host, port), timeout=5)
        except OSError:
            conn.close()
            return
        upstream.settimeout(None)
        threading.Thread(target=pipe, args=(upstream, conn), daemon=True).start()
        pipe(conn, upstream)

    return handle


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tcp", type=int, required=True)
    parser.add_argument("--forward", action="append", default=[], help="PORT:HOST:PORT")
    args = parser.parse_args()
    for spec in args.forward:
        port, host, target = spec.split(":")
        handler = forwarder((host, int(target)))
        threading.Thread(target=listen, args=(int(port), handler), daemon=True).start()
    print(f"labctl: serving on {args.tcp}", flush=True)
    listen(args.tcp, serve_client)


if __name__ == "__main__":
    sys.exit(main())
