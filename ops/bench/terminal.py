"""The console's terminal (POST /sandboxes/:id/terminal, then envd's GET
/terminal WebSocket: a login shell on a PTY in the sandbox) side by side with
what an operator would use on the host instead: `crun exec -t` into the same
sandbox's container, driven through a PTY of our own.
  - open: from asking to the shell's first prompt;
  - echo: one keystroke in, its echo back (the latency a typist feels);
  - output: 32 MiB printed through the PTY, as fast as the client reads.
Prints figures; asserts nothing."""
import os
import pty
import re
import select
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "e2e"))
from browser import WebSocket  # noqa: E402
from harness import Server  # noqa: E402
from create import line  # noqa: E402

N = int(os.environ.get("N", "300"))
OPENS = int(os.environ.get("OPENS", "20"))
MIB = 32
FLOOD = f"head -c {MIB << 20} /dev/zero | tr '\\0' x; echo; echo FLOOD-DONE\r"


class Ws:
    """The console's terminal, as the page speaks to it."""

    def __init__(self, server, sid):
        t = server.request("POST", f"/sandboxes/{sid}/terminal").json
        self.ws = WebSocket(t["url"], timeout=60)
        self.out = b""

    def write(self, data):
        self.ws.send_bytes(data)

    def read(self):
        op, payload = self.ws.recv_frame()
        if op == 0x8:
            raise EOFError(payload)
        return payload if op == 0x2 else b""

    def close(self):
        self.ws.close()


class CrunExec:
    """crun exec -t into the sandbox's container, on a PTY we hold."""

    def __init__(self, server, sid):
        state = os.path.join(server.dir, "runtime", "state")
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execvp("crun", ["crun", "--root", state, "exec", "-t", sid, "/bin/bash", "-i", "-l"])

    def write(self, data):
        os.write(self.fd, data)

    def read(self):
        select.select([self.fd], [], [], 60)
        return os.read(self.fd, 1 << 16)

    def close(self):
        os.close(self.fd)
        os.waitpid(self.pid, 0)


def until(term, pattern, buf=b""):
    while not re.search(pattern, buf):
        buf += term.read()
        buf = buf[-4096:]
    return buf


def measure(name, make):
    opens, echoes = [], []
    for _ in range(OPENS):
        t0 = time.perf_counter()
        term = make()
        until(term, rb"[$#] $")
        opens.append(time.perf_counter() - t0)
        term.close()
    term = make()
    until(term, rb"[$#] $")
    for _ in range(N):
        t0 = time.perf_counter()
        term.write(b"x")
        until(term, rb"x")
        echoes.append(time.perf_counter() - t0)
    term.write(b"\x15")  # ^U: drop the typed line
    t0 = time.perf_counter()
    term.write(FLOOD.encode())
    until(term, rb"\nFLOOD-DONE")
    took = time.perf_counter() - t0
    term.close()
    line(f"{name} open", opens)
    line(f"{name} echo", echoes)
    print(f"{name + ' output':<22} {MIB} MiB in {took:.2f} s = {MIB / took:.1f} MiB/s")


def main():
    server = Server()
    try:
        r = server.request("POST", "/sandboxes", {"templateID": "base", "timeout": 1800})
        assert r.status == 201, r
        sid = r.json["sandboxID"]
        measure("console terminal", lambda: Ws(server, sid))
        measure("crun exec -t", lambda: CrunExec(server, sid))
        server.request("DELETE", f"/sandboxes/{sid}")
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
