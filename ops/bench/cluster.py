"""A sandbox on a worker node vs one on the control node itself: create to
first exec (`true`) through the control node's API, and exec `true`
throughput (each exec crosses the nodes as CAF messages through the data
plane's tunnel), sequential and 8 at a time. The worker runs on this same
machine in a network namespace of its own (tests/e2e/cluster_harness.py), so
the figures show the cluster's own cost, not a network's. Prints figures;
asserts nothing. N sandboxes per side (default 30)."""
import os
import secrets
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "e2e"))
from cluster_harness import NET, ClusterNet, Worker, write_secret  # noqa: E402
from create import line  # noqa: E402
from harness import BIN, Server, eventually, free_port  # noqa: E402


def drain(server, node, on):
    args = [BIN, "worker", "drain", node, "--data-dir", server.dir] + ([] if on else ["--undo"])
    subprocess.run(args, check=True, capture_output=True, timeout=30)


def create_to_first_exec(server, n):
    firsts, ids = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        sid = server.create("base")
        r = server.run(sid, "true")
        assert r.status == 200, r
        firsts.append(time.perf_counter() - t0)
        ids.append(sid)
    return firsts, ids


def exec_rate(server, sid, seconds=5.0, threads=1):
    done = [0]
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def loop():
        while time.perf_counter() < stop:
            r = server.run(sid, "true")
            assert r.status == 200, r
            with lock:
                done[0] += 1
    ts = [threading.Thread(target=loop) for _ in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return done[0] / (time.perf_counter() - t0)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    net = ClusterNet(1)
    server = worker = None
    try:
        secret = os.path.join(net.secrets_dir, "cluster-secret")
        write_secret(secret, secrets.token_hex(32))
        join = f"{NET}.1:{free_port()}"
        server = Server(("--cluster-listen", join, "--cluster-secret-file", secret,
                         "--warm-pool", "0"))
        worker = Worker("w1", net.namespaces[0], secret, join)
        worker.start()
        assert eventually(worker.joined, within=60, every=0.2), worker.log()
        print(f"cluster: control node + worker w1 (netns), {n} sandboxes per side")
        results = {}
        for where, drained in (("control", "w1"), ("worker", "control")):
            drain(server, drained, True)
            firsts, ids = create_to_first_exec(server, n)
            on_worker = sum(1 for sid in ids if sid in worker.containers())
            assert on_worker == (n if where == "worker" else 0), (where, on_worker)
            seq = exec_rate(server, ids[0])
            par = exec_rate(server, ids[0], threads=8)
            results[where] = (firsts, seq, par)
            for sid in ids:
                server.request("DELETE", f"/sandboxes/{sid}")
            drain(server, drained, False)
        for where, (firsts, seq, par) in results.items():
            line(f"create→exec on {where}", firsts)
        for where, (firsts, seq, par) in results.items():
            print(f"exec true on {where:<8} sequential {seq:7.1f}/s   8 at a time {par:7.1f}/s")
        c, w = results["control"], results["worker"]
        print(f"worker ÷ control: create→exec p50 "
              f"{sorted(w[0])[len(w[0]) // 2] / sorted(c[0])[len(c[0]) // 2]:.2f}×, "
              f"exec/s sequential {w[1] / c[1]:.2f}×, 8 at a time {w[2] / c[2]:.2f}×")
    finally:
        if worker:
            worker.cleanup()
        if server:
            server.cleanup()
        net.teardown()


if __name__ == "__main__":
    main()
