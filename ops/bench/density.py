"""Density: how create and kill behave as live sandboxes accumulate, against
a fresh sandboxd of its own. Creates N sandboxes (default 1000) in blocks of
50 and prints, per block, the create p50/p99 and the kill p50 of 5 extra
sandboxes made and killed at that density; then listing throughput at N
live (GET /v2/sandboxes?limit=100 and GET /sandboxes), memory per sandbox,
the server's RSS, idle CPU (the host's and sandboxd's own), a restart's time to serving again (the reconciles
go on after it), the time to kill all N at once and until all is reclaimed, RSS afterwards, and the
host's memory cgroup count (/proc/cgroups) before and after.
Prints figures; asserts nothing."""
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "e2e"))
sys.path.insert(0, os.path.dirname(__file__))
from harness import Server  # noqa: E402
from create import pct, mem_available_kib, rss_kib  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def memory_cgroups():
    with open("/proc/cgroups") as f:
        for line in f:
            parts = line.split()
            if parts and parts[0] == "memory":
                return int(parts[2])
    return -1


def busy_cores(pid, seconds=5):
    """Cores' worth of CPU used over `seconds` by the whole host (/proc/stat)
    and by process `pid` (all its threads)."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return sum(v), v[3] + v[4], int(fields[11]) + int(fields[12])  # total, idle + iowait, ours
    t0, i0, p0 = sample()
    time.sleep(seconds)
    t1, i1, p1 = sample()
    host = (os.cpu_count() or 1) * (1 - (i1 - i0) / max(1, t1 - t0))
    return host, (p1 - p0) / os.sysconf("SC_CLK_TCK") / seconds


def ms(xs, p):
    return pct([x * 1000 for x in xs], p)


def timed(f, *args, **kw):
    t0 = time.perf_counter()
    f(*args, **kw)
    return time.perf_counter() - t0


def load(server, path, seconds=3, conns=8):
    out = subprocess.run(["node", os.path.join(HERE, "http_load.mjs"),
                          f"http://127.0.0.1:{server.port}{path}", server.key,
                          str(seconds), str(conns)], capture_output=True, text=True, timeout=60)
    return json.loads(out.stdout) if out.returncode == 0 else {"error": out.stderr[-300:]}


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    block = 50
    cg0 = memory_cgroups()
    server = Server(["--max-sandboxes", str(n + 100), "--max-sandboxes-per-org", str(n + 100)]
                    + os.environ.get("SANDBOXD_ARGS", "").split())
    try:
        time.sleep(0.5)
        mem0 = mem_available_kib()
        rss0 = rss_kib(server.proc.pid)
        print(f"sandboxd density: up to {n} live sandboxes in blocks of {block}, template base, "
              f"{os.cpu_count()} cores; server RSS at start {rss0 / 1024:.1f} MiB")
        print(f"{'live':>6} {'create p50':>11} {'create p99':>11} {'kill p50':>9} {'RSS MiB':>8}")
        ids, first_block = [], None
        while len(ids) < n:
            creates = []
            for _ in range(min(block, n - len(ids))):
                t0 = time.perf_counter()
                ids.append(server.create(timeout=3600))
                creates.append(time.perf_counter() - t0)
            kills = []
            for _ in range(5):
                sid = server.create(timeout=3600)
                kills.append(timed(server.request, "DELETE", f"/sandboxes/{sid}"))
            row = (ms(creates, 50), ms(creates, 99), ms(kills, 50))
            first_block = first_block or row
            print(f"{len(ids):>6} {row[0]:>8.1f} ms {row[1]:>8.1f} ms {row[2]:>6.1f} ms "
                  f"{rss_kib(server.proc.pid) / 1024:>8.1f}", flush=True)
        print(f"create p50 at {len(ids)} live / first block: {row[0] / first_block[0]:.2f}x; "
              f"kill p50 {row[2]:.1f} ms")
        time.sleep(1)
        host, ours = busy_cores(server.proc.pid)
        print(f"CPU used with {n} idle sandboxes (5 s): host {host:.2f} cores, "
              f"sandboxd {ours:.3f} cores")
        mem1 = mem_available_kib()
        rss1 = rss_kib(server.proc.pid)
        print(f"memory per live sandbox (MemAvailable drop / {n}): {(mem0 - mem1) / n / 1024:.2f} MiB;"
              f" server RSS {rss1 / 1024:.1f} MiB")
        for path in ["/v2/sandboxes?limit=100", "/sandboxes"]:
            r = load(server, path)
            print(f"GET {path:<26} at {n} live: {r}")
        # Restart: SIGTERM, then a new server replays the log, reconciles
        # every sandbox with its container and serves.
        server.stop()
        t0 = time.perf_counter()
        server.start()
        took = time.perf_counter() - t0
        metrics = server.request("GET", "/metrics", key=None).raw.decode()
        running = [line.split()[-1] for line in metrics.splitlines()
                   if line.startswith('sandboxd_sandboxes{state="running"}')]
        print(f"restart with {n} live: serving after {took:.2f} s; "
              f"running after it: {running[0] if running else 0}; exec in the first and last: "
              f"{server.run(ids[0], 'true').status} {server.run(ids[-1], 'true').status}")
        t0 = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(lambda s: server.request("DELETE", f"/sandboxes/{s}").status, ids))
        took = time.perf_counter() - t0
        # A kill answers once the processes are gone; the files, mounts and
        # cgroups go right after.
        sandboxes = os.path.join(server.dir, "sandboxes")
        while set(ids) & set(os.listdir(sandboxes)):  # the warm pool's stay
            time.sleep(0.05)
        reclaimed = time.perf_counter() - t0
        print(f"kill all {n} (16 at a time): {took:.2f} s, "
              f"{sum(c == 204 for c in codes)} answered 204; everything reclaimed after "
              f"{reclaimed:.2f} s")
        time.sleep(2)
        print(f"server RSS after the kills {rss_kib(server.proc.pid) / 1024:.1f} MiB "
              f"(start {rss0 / 1024:.1f}); memory cgroups on the host: {cg0} before, "
              f"{memory_cgroups()} after")
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
