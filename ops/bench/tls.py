"""HTTPS against plain HTTP, one server each (the e2e harness, a certificate
made by tests/e2e/fixtures/test_certs.py):
  - API: GET /health on a new connection each time (TLS: a full handshake
    through the API's TLS front);
  - API while 192 clients (12 addresses x 16) sit in handshakes they never
    finish: what the front keeps from stalling everyone;
  - API while one address reconnects in a loop from 4 threads (a full
    handshake each, then hang up): what its handshake budget (128 at once,
    then 32 a second) keeps from the front's one thread;
  - envd: a 64 MiB file up and down through /files (TLS: libmicrohttpd's).
Prints figures; asserts nothing."""
import http.client
import os
import shutil
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "e2e"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "e2e", "fixtures"))
import test_certs  # noqa: E402
from harness import Envd, Server  # noqa: E402
from create import pct  # noqa: E402

N = int(os.environ.get("N", "300"))
MIB = 64


def line(name, xs):
    ms = [x * 1000 for x in xs]
    print(f"{name:<44} n={len(ms):<4} p50={pct(ms, 50):6.2f} ms  p99={pct(ms, 99):6.2f} ms"
          f"  mean={statistics.mean(ms):6.2f} ms")


def health(server, n):
    """GET /health on a new connection each time. Over TLS each comes from
    another loopback address (127.0.3.x), so that what is measured is the
    handshake, not one address's handshake budget (32 a second)."""
    out = []
    for i in range(n):
        if server.tls:
            conn = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=30,
                                               context=server.tls,
                                               source_address=(f"127.0.3.{i % 250 + 1}", 0))
        else:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        t0 = time.perf_counter()
        conn.request("GET", "/health")
        status = conn.getresponse().status
        out.append(time.perf_counter() - t0)
        conn.close()
        assert status == 200, status
    return out


def flood(port, stop, counts, lock):
    """Full handshakes from 127.0.2.1 in a loop, each connection then hung up."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5,
                                          source_address=("127.0.2.1", 0)) as s:
                with ctx.wrap_socket(s):
                    outcome = "done"
        except (ssl.SSLError, OSError):
            outcome = "refused"
        with lock:
            counts[outcome] += 1


def files(server, label):
    r = server.request("POST", "/sandboxes", {"templateID": "base"})
    assert r.status == 201, r
    envd = Envd(server, r.json)
    blob = os.urandom(MIB << 20)
    try:
        t0 = time.perf_counter()
        assert envd.files_post(blob, "application/octet-stream", path="/tmp/blob").status == 200
        up = time.perf_counter() - t0
        t0 = time.perf_counter()
        got = envd.files_get("/tmp/blob")
        down = time.perf_counter() - t0
        assert got.raw == blob
        print(f"{label:<44} up {MIB / up:7.1f} MiB/s   down {MIB / down:7.1f} MiB/s")
    finally:
        server.request("DELETE", f"/sandboxes/{r.json['sandboxID']}")


def main():
    certs = tempfile.mkdtemp(prefix="sandboxd-bench-tls-")
    ca, cert, key = test_certs.make(certs)
    plain = Server()
    tls = None
    try:
        tls = Server(("--tls-cert", cert, "--tls-key", key),
                     tls=ssl.create_default_context(cafile=ca))
        health(plain, 20)
        health(tls, 20)
        line("API GET /health, new connection: http", health(plain, N))
        line("API GET /health, new connection: https", health(tls, N))
        silent = []
        try:
            for a in range(12):
                for _ in range(16):
                    silent.append(socket.create_connection(
                        ("127.0.0.1", tls.port), timeout=30, source_address=(f"127.0.1.{a + 1}", 0)))
            time.sleep(0.5)
            line("  same, 192 silent handshakes held open", health(tls, N))
        finally:
            for s in silent:
                s.close()
        stop, counts = threading.Event(), {"done": 0, "refused": 0}
        lock = threading.Lock()
        threads = [threading.Thread(target=flood, args=(tls.port, stop, counts, lock))
                   for _ in range(4)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        try:
            time.sleep(0.5)
            line("  same, one address reconnecting in a loop", health(tls, N))
        finally:
            stop.set()
            for t in threads:
                t.join()
        took = time.perf_counter() - t0
        print(f"{'    its handshakes':<44} {counts['done'] / took:7.1f}/s done, "
              f"{counts['refused'] / took:7.1f}/s refused on accept")
        files(plain, f"envd /files {MIB} MiB: http")
        files(tls, f"envd /files {MIB} MiB: https")
    finally:
        plain.cleanup()
        if tls:
            tls.cleanup()
        shutil.rmtree(certs, ignore_errors=True)


if __name__ == "__main__":
    main()
