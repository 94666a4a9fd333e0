"""The lab's control loop inside a domU, over xenstore (a PV domU has one console and no
virtio-serial): dom0 writes a JSON command to /local/domain/<id>/lab/cmd (dom0's node, which
this domain may read), this answers in its own data/lab/reply. The commands are the KVM
guest's (e2e/guest/labctl.py) plus `xs`, which speaks xs_wire to /dev/xen/xenbus directly
and says what xenstored answered: the hostile-guest scenario writes garbage, floods and
another domain's path with it.

Test-only, Python 3.11 standard library only.
"""

import base64
import contextlib
import json
import os
import struct
import time

import labctl

DEVICE = "/dev/xen/xenbus"
XS_READ, XS_WRITE, XS_ERROR = 2, 11, 16
MAX_REPLY = 4000  # xenstore values are at most 4096 bytes


class Xenbus:
    def __init__(self):
        self.fd = os.open(DEVICE, os.O_RDWR)
        self.req = 0

    def call(self, kind, *parts):
        self.req += 1
        payload = b"\0".join(parts)
        os.write(self.fd, struct.pack("=IIII", kind, self.req, 0, len(payload)) + payload)
        head = b""
        while len(head) < 16:
            head += os.read(self.fd, 16 - len(head))
        rkind, _, _, length = struct.unpack("=IIII", head)
        body = b""
        while len(body) < length:
            body += os.read(self.fd, length - len(body))
        if rkind == XS_ERROR:
            raise OSError(body.rstrip(b"\0").decode(errors="replace"))
        return body

    def read(self, path):
        return self.call(XS_READ, path.encode() + b"\0").decode(errors="replace")

    def write(self, path, value):
        return self.call(XS_WRITE, path.encode(), value)


XS = None


def xs(msg):
    """{"op": "write"|"read", "path", "value" (text), "repeat"} -> what xenstored said to
    each try: "ok" or the error (EACCES, E2BIG, EQUOTA, ...), counted."""
    results = {}
    value = msg.get("value", "").encode()
    if "value_bytes" in msg:  # a value of that many bytes of filler
        value = b"x" * int(msg["value_bytes"])
    started = time.monotonic()
    for _ in range(int(msg.get("repeat", 1))):
        try:
            if msg["op"] == "write":
                XS.write(msg["path"], value)
                outcome = "ok"
            else:
                outcome = "ok:" + XS.read(msg["path"])[:200]
        except OSError as exc:
            outcome = str(exc)
        results[outcome] = results.get(outcome, 0) + 1
    return {"results": results, "seconds": time.monotonic() - started}


def run(msg):
    """labctl's `run` with a longer default limit: a Python command under TCG on a busy
    machine can take more than labctl's 10 s to start."""
    return labctl.run(dict(msg, timeout=float(msg.get("timeout_s", 60))))


labctl.COMMANDS.update(xs=xs, run=run)


def serve():
    global XS
    XS = Xenbus()
    last = None
    while True:
        try:
            raw = XS.read("lab/cmd")
        except OSError:
            raw = ""
        if raw and raw != last:
            last = raw
            line = b""
            with contextlib.suppress(ValueError):
                line = base64.b64decode(raw)  # dom0 encodes (xenstore-write eats backslashes)
            answer = json.loads(labctl.answer(line))
            with contextlib.suppress(ValueError):
                answer["id"] = json.loads(line).get("id")
            text = json.dumps(answer)
            if len(text) > MAX_REPLY:
                text = json.dumps({"id": answer.get("id"), "ok": False, "error": "reply too long"})
            XS.write("data/lab/reply", text.encode())
        time.sleep(0.1)


if __name__ == "__main__":
    serve()
