"""What the egress proxy adds to a sandbox's HTTPS request (a new TLS
connection per request, a small GET), from inside a sandbox to a server in a
namespace the bench makes (tests/e2e/fixtures: the egress tests' upstream):
  - direct: a sandbox without network.rules (its HTTPS is not redirected);
  - passthrough: a sandbox with rules, to a name no rule matches (relayed);
  - intercepted: to the rule's name (TLS ended and opened again on the host,
    a secret resolved and set as a header).
Prints figures; asserts nothing. Needs root, a build and the base template."""
import json
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "e2e"))
import test_egress_rules as t  # noqa: E402
from harness import Server  # noqa: E402
from create import pct  # noqa: E402

INSIDE = r"""
import json, socket, ssl, sys, time
name, addr, n, cafile = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
ctx = ssl.create_default_context(cafile=None if cafile == "-" else cafile)
out = []
for _ in range(n):
    t0 = time.perf_counter()
    s = ctx.wrap_socket(socket.create_connection((addr, 443), timeout=10), server_hostname=name)
    s.sendall(f"GET /b HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
    while s.recv(65536):
        pass
    s.close()
    out.append(time.perf_counter() - t0)
print(json.dumps(out))
"""


def line(name, xs):
    ms = [x * 1000 for x in xs]
    print(f"{name:<40} n={len(ms):<4} p50={pct(ms, 50):6.2f} ms  p99={pct(ms, 99):6.2f} ms"
          f"  mean={statistics.mean(ms):6.2f} ms")


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    import tempfile, shutil
    pki = tempfile.mkdtemp(prefix="sbxtest-pki-")
    good = server = None
    try:
        t.make_pki(pki)
        good = t.HttpsNet([f"{x}={pki}/{x}.pem:{pki}/{x}.key" for x in (t.API, t.OTHER)])
        good.start()
        server = Server(["--egress-trust-file", f"{pki}/ca.pem"])
        r = server.request("POST", "/secrets", {"name": "bench", "value": "sk-bench"})
        assert r.status == 201, r
        with open(f"{pki}/ca.pem", "rb") as f:
            ca = f.read()
        plain = server.create()
        ruled = server.create(network=t.rules("Bearer ${e2b.secrets.bench}"))
        for sid in (plain, ruled):
            server.write(sid, "/home/user/inside.py", INSIDE.encode())
            server.write(sid, "/home/user/up-ca.pem", ca)

        def run(sid, name, cafile):
            out = server.sh(sid, f"python3 /home/user/inside.py {name} {good.addr} {n} {cafile}",
                            timeout=600)
            return json.loads(out["stdout"])

        print(f"HTTPS GET from a sandbox, a new TLS connection each ({n} requests):")
        line("direct (no rules)", run(plain, t.API, "/home/user/up-ca.pem"))
        line("passthrough (rules, other name)", run(ruled, t.OTHER, "/home/user/up-ca.pem"))
        line("intercepted (rule + secret header)", run(ruled, t.API, "-"))
    finally:
        if server:
            server.cleanup()
        if good:
            good.stop()
        shutil.rmtree(pki, ignore_errors=True)


if __name__ == "__main__":
    main()
