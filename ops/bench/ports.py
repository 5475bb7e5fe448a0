"""What the port proxy adds: GET of a small page on a server in a sandbox,
through the envd listener (one kept-alive client connection, a new agent
connection per request, as the proxy does) beside the same GET made from
inside the sandbox on its loopback. Prints figures; asserts nothing."""
import http.client
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "e2e"))
from harness import Server  # noqa: E402
from create import pct  # noqa: E402  (the percentile every bench here prints)

INSIDE = r"""
import http.client, json, sys, time
n = int(sys.argv[1])
c = http.client.HTTPConnection("127.0.0.1", 8000)
out = []
for _ in range(n):
    t0 = time.perf_counter()
    c.request("GET", "/")
    c.getresponse().read()
    out.append(time.perf_counter() - t0)
print(json.dumps(out))
"""


def line(name, xs):
    ms = [x * 1000 for x in xs]
    print(f"{name:<34} n={len(ms):<5} p50={pct(ms, 50):6.2f} ms  p99={pct(ms, 99):6.2f} ms"
          f"  mean={statistics.mean(ms):6.2f} ms")


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    server = Server()
    try:
        sid = server.create()
        server.write(sid, "/home/user/site/index.html", b"<h1>hello</h1>\n" * 10)
        server.write(sid, "/home/user/inside.py", INSIDE.encode())
        server.sh(sid, "cd /home/user/site && setsid -f python3 -m http.server 8000"
                       " --bind 127.0.0.1 >/dev/null 2>&1")
        c = http.client.HTTPConnection("127.0.0.1", server.envd_port, timeout=30)
        hdrs = {"E2b-Sandbox-Id": sid, "E2b-Sandbox-Port": "8000"}
        for _ in range(200):
            c.request("GET", "/", headers=hdrs)
            r = c.getresponse()
            r.read()
            if r.status == 200:
                break
            time.sleep(0.1)
        outside = []
        for _ in range(n):
            t0 = time.perf_counter()
            c.request("GET", "/", headers=hdrs)
            c.getresponse().read()
            outside.append(time.perf_counter() - t0)
        inside = json.loads(server.sh(sid, f"python3 /home/user/inside.py {n}")["stdout"])
        print(f"sandboxd port proxy bench: {n} GETs of a 150-byte page, python3 -m http.server,"
              f" {os.cpu_count()} cores")
        line("from inside (127.0.0.1:8000)", inside)
        line("through the envd listener", outside)
        print(f"added by the proxy: p50 {1000 * (pct(outside, 50) - pct(inside, 50)):.2f} ms")
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
