"""Pause/resume latency of a sandbox holding 256 MiB of touched memory, then
snapshot, create-from-snapshot and fork times, against a fresh sandboxd of
its own. Prints figures; asserts nothing."""
import base64
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "e2e"))
from harness import Server  # noqa: E402

TOUCH = ("import time\nb = bytearray(256 << 20)\n"
         "for i in range(0, len(b), 4096): b[i] = 1\n"
         "open('/tmp/touched', 'w').write('ok')\ntime.sleep(3600)\n")


def line(name, xs):
    ms = sorted(x * 1000 for x in xs)
    print(f"{name:<34} n={len(ms):<3} p50={ms[len(ms) // 2]:8.1f} ms  max={ms[-1]:8.1f} ms"
          f"  mean={statistics.mean(ms):8.1f} ms")


def ok(r, *codes):
    assert r.status in codes, r
    return r


def timed(f):
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def main():
    server = Server()
    try:
        s = server
        sid = ok(s.request("POST", "/sandboxes", {"templateID": "base", "timeout": 600}), 201).json["sandboxID"]
        ok(s.request("POST", f"/sandboxes/{sid}/filesystem",
                     {"path": "/tmp/touch.py", "content": base64.b64encode(TOUCH.encode()).decode()}),
           200, 201, 204)
        ok(s.run(sid, "sh", "-c", "setsid python3 /tmp/touch.py >/dev/null 2>&1 < /dev/null &"), 200)
        while s.run(sid, "cat", "/tmp/touched").json.get("stdout") != "ok":
            time.sleep(0.2)
        pauses, resumes = [], []
        for _ in range(10):
            pauses.append(timed(lambda: ok(s.request("POST", f"/sandboxes/{sid}/pause"), 204)))
            resumes.append(timed(lambda: ok(s.request("POST", f"/sandboxes/{sid}/connect", {"timeout": 600}), 201)))
        line("pause, 256 MiB touched", pauses)
        line("resume, 256 MiB touched", resumes)
        s.run(sid, "sh", "-c", "head -c 50000000 /dev/urandom > /home/user/blob")
        snaps = [timed(lambda: ok(s.request("POST", f"/sandboxes/{sid}/snapshots", {"name": "bench"}), 201))
                 for _ in range(5)]
        line("snapshot (running, 50 MB written)", snaps)
        made = []
        creates = []
        for _ in range(10):
            t0 = time.perf_counter()
            made.append(ok(s.request("POST", "/sandboxes", {"templateID": "bench", "timeout": 600}), 201).json["sandboxID"])
            creates.append(time.perf_counter() - t0)
        line("create from snapshot", creates)
        for count in (1, 10):
            rounds = []
            for _ in range(3):
                t0 = time.perf_counter()
                r = ok(s.request("POST", f"/sandboxes/{sid}/fork", {"count": count, "timeout": 600}), 201)
                rounds.append(time.perf_counter() - t0)
                made += [x["sandbox"]["sandboxID"] for x in r.json if "sandbox" in x]
            line(f"fork count={count}", rounds)
        for m in made:
            s.request("DELETE", f"/sandboxes/{m}")
        s.request("DELETE", f"/sandboxes/{sid}")
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
