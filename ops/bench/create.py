"""Create-to-first-exec latency over N sandboxes (default 100), against a
fresh sandboxd of its own: each sample is POST /sandboxes followed by the
first POST /processes (`true`) returning. Also prints create, exec, pause,
resume and kill latencies. Prints figures; asserts nothing.

SANDBOXD_ARGS adds server flags: SANDBOXD_ARGS="--oci-runtime runsc" measures
the gVisor tier beside the default crun one."""
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "e2e"))
from harness import Server  # noqa: E402


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def line(name, xs):
    ms = [x * 1000 for x in xs]
    print(f"{name:<22} n={len(ms):<4} p50={pct(ms, 50):7.1f} ms  p99={pct(ms, 99):7.1f} ms"
          f"  mean={statistics.mean(ms):7.1f} ms")


def mem_available_kib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    return 0


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cgroup_memory(sid):
    """(rss, usage) bytes charged to the sandbox's memory cgroup."""
    base = f"/sys/fs/cgroup/memory/sandboxd/{sid}"
    rss = 0
    with open(f"{base}/memory.stat") as f:
        for line in f:
            k, v = line.split()
            if k == "total_rss":
                rss = int(v)
    with open(f"{base}/memory.usage_in_bytes") as f:
        return rss, int(f.read())


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    server = Server(os.environ.get("SANDBOXD_ARGS", "").split())
    try:
        time.sleep(0.5)
        mem0 = mem_available_kib()
        first_exec, create, exec_, true_, pause, resume, kill = [], [], [], [], [], [], []
        ids = []
        for _ in range(n):
            t0 = time.perf_counter()
            sid = server.create(timeout=600)
            t1 = time.perf_counter()
            r = server.run(sid, "true")
            t2 = time.perf_counter()
            assert r.status == 200, r
            ids.append(sid)
            create.append(t1 - t0)
            first_exec.append(t2 - t0)
            t3 = time.perf_counter()
            server.run(sid, "python3", "-c", "print(1+1)")
            exec_.append(time.perf_counter() - t3)
            t4 = time.perf_counter()
            server.run(sid, "true")
            true_.append(time.perf_counter() - t4)
        time.sleep(1)
        mem1 = mem_available_kib()
        rss = rss_kib(server.proc.pid)
        charged = [cgroup_memory(sid) for sid in ids]
        for sid in ids[:20]:
            t0 = time.perf_counter()
            if server.request("POST", f"/sandboxes/{sid}/pause").status != 204:
                continue
            t1 = time.perf_counter()
            server.request("POST", f"/sandboxes/{sid}/connect", {"timeout": 600})
            t2 = time.perf_counter()
            pause.append(t1 - t0)
            resume.append(t2 - t1)
        for sid in ids:
            t0 = time.perf_counter()
            server.request("DELETE", f"/sandboxes/{sid}")
            kill.append(time.perf_counter() - t0)
        runtime = os.environ.get("SANDBOXD_ARGS") or "crun"
        print(f"sandboxd bench: {n} sandboxes, template base, {os.cpu_count()} cores, {runtime}")
        line("create->first exec", first_exec)
        line("create", create)
        line("exec python3 print", exec_)
        line("exec true", true_)
        line("pause", pause)
        line("resume (connect)", resume)
        line("kill", kill)
        print(f"idle sandbox, memory charged to its cgroup: rss mean "
              f"{statistics.mean(c[0] for c in charged) / 2**20:.2f} MiB, total (with page cache) mean "
              f"{statistics.mean(c[1] for c in charged) / 2**20:.2f} MiB;"
              f" whole-system MemAvailable drop {(mem0 - mem1) / 1024:.0f} MiB for {n};"
              f" sandboxd RSS with {n} live sandboxes {rss / 1024:.1f} MiB")
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
