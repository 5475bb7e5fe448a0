"""sandboxd side by side with what a user would pick instead: raw `crun` on
the same template rootfs and podman (installed here by the bench itself when
missing; COMPARE_PODMAN=0 leaves it out). Rounds are interleaved (sandboxd
warm, sandboxd cold, crun, podman, then again) so that the machine's drift
hits every column alike. Prints p50/p99 per row and the ratio to crun;
asserts nothing.

What each column does per round:
  sandboxd warm   POST /sandboxes claiming a warm sandbox (the pool refilled
                  before each round), then the first exec through the API
  sandboxd cold   the same with --warm-pool 0: a full boot (per-sandbox disk,
                  idmapped layers, user namespace, veth + rules, agent)
  crun            overlay mount of the rootfs + `crun run -d` (pid, net, ipc,
                  uts, mount namespaces, cgroup limits; no user namespace, no
                  network beyond its netns), then `crun exec`
  podman          `podman run -d --network none` of the rootfs imported as an
                  image, then `podman exec`
The first exec is `python3 -c 'print(1+1)'` everywhere.
"""
import concurrent.futures
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "e2e"))
from harness import BIN, Server  # noqa: E402

PY = ["python3", "-c", "print(1+1)"]
IMAGE = "localhost/sandboxd-compare-base"


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def base_rootfs():
    out = subprocess.run([BIN, "template", "list"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        f = line.split()
        if f and f[0] == "base" and f[1] == "built":
            return f[-1]
    raise SystemExit("template base is not built: run ./ops/test or ./ops/run once first")


def timed(fn, *args):
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


# -- sandboxd ---------------------------------------------------------------

def warm_ready(server):
    text = server.request("GET", "/metrics", key=None).raw.decode()
    for line in text.splitlines():
        if line.startswith('sandboxd_warm_sandboxes{template="base"}'):
            return int(line.split()[-1])
    return 0


def wait_warm(server, n, timeout=300):
    deadline = time.time() + timeout
    while warm_ready(server) < n and time.time() < deadline:
        time.sleep(0.02)


class Sandboxd:
    def __init__(self, pool):
        self.pool = pool
        self.server = Server(["--warm-pool", f"base={pool}" if pool else "0"])

    def ready(self, n=None):
        if self.pool:
            wait_warm(self.server, n or self.pool)

    def create(self, name):
        return self.server.create()

    def exec_py(self, sid):
        r = self.server.run(sid, *PY)
        assert r.status == 200 and r.json["stdout"] == "2\n", r

    def pause(self, sid):
        assert self.server.request("POST", f"/sandboxes/{sid}/pause").status == 204

    def resume(self, sid):
        assert self.server.request("POST", f"/sandboxes/{sid}/connect", {"timeout": 600}).status in (200, 201)

    def kill(self, sid):
        assert self.server.request("DELETE", f"/sandboxes/{sid}").status == 204

    def close(self):
        self.server.cleanup()


# -- raw crun -----------------------------------------------------------------

class Crun:
    def __init__(self, rootfs):
        self.rootfs = rootfs
        self.dir = tempfile.mkdtemp(prefix="sandboxd-compare-crun-")
        self.state = os.path.join(self.dir, "state")
        spec_dir = os.path.join(self.dir, "spec")
        os.makedirs(spec_dir)
        subprocess.run(["crun", "spec"], cwd=spec_dir, check=True)
        with open(os.path.join(spec_dir, "config.json")) as f:
            self.spec = json.load(f)
        self.made = []

    def ready(self, n=None):
        pass

    def create(self, name):
        bundle = os.path.join(self.dir, name)
        for d in ("upper", "work", "merged"):
            os.makedirs(os.path.join(bundle, d))
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={self.rootfs},upperdir={bundle}/upper,workdir={bundle}/work",
                        f"{bundle}/merged"], check=True)
        self.made.append(name)
        spec = json.loads(json.dumps(self.spec))
        spec["root"] = {"path": f"{bundle}/merged", "readonly": False}
        spec["hostname"] = name
        spec["process"]["terminal"] = False
        spec["process"]["args"] = ["sleep", "infinity"]
        spec["linux"]["cgroupsPath"] = f"sandboxd-compare/{name}"
        spec["linux"]["resources"] = {"memory": {"limit": 512 << 20},
                                      "pids": {"limit": 1024},
                                      "cpu": {"quota": 200000, "period": 100000}}
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(spec, f)
        # The container inherits what it is given: never a pipe we wait on.
        subprocess.run(["crun", "--root", self.state, "run", "-d", "--bundle", bundle, name],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=True)
        return name

    def exec_py(self, name):
        out = subprocess.run(["crun", "--root", self.state, "exec", name, *PY],
                             capture_output=True, text=True, check=True).stdout
        assert out == "2\n", out

    def pause(self, name):
        subprocess.run(["crun", "--root", self.state, "pause", name], check=True)

    def resume(self, name):
        subprocess.run(["crun", "--root", self.state, "resume", name], check=True)

    def kill(self, name):
        subprocess.run(["crun", "--root", self.state, "delete", "-f", name], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["umount", os.path.join(self.dir, name, "merged")], check=True)
        self.made.remove(name)

    def close(self):
        for name in list(self.made):
            subprocess.run(["crun", "--root", self.state, "delete", "-f", name],
                           capture_output=True)
            subprocess.run(["umount", "-l", os.path.join(self.dir, name, "merged")],
                           capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)
        for ctl in ("memory", "pids", "cpu,cpuacct", "cpu", "cpuacct", "freezer", "blkio",
                    "devices", "net_cls,net_prio", "perf_event", "hugetlb", "cpuset", "unified"):
            try:
                os.rmdir(f"/sys/fs/cgroup/{ctl}/sandboxd-compare")
            except OSError:
                pass


# -- podman -------------------------------------------------------------------

class Podman:
    def __init__(self, rootfs):
        if shutil.which("podman") is None:
            print("installing podman (bench only) ...", file=sys.stderr)
            subprocess.run(["apt-get", "install", "-y", "-q", "podman"], check=True,
                           env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
                           stdout=subprocess.DEVNULL)
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(["podman", "import", "-", IMAGE], stdin=tar.stdout, check=True,
                       stdout=subprocess.DEVNULL)
        tar.wait()
        self.made = []

    def ready(self, n=None):
        pass

    def create(self, name):
        self.made.append(name)
        subprocess.run(["podman", "run", "-d", "--network", "none", "--name", name,
                        "--memory", "512m", "--pids-limit", "1024", "--cpus", "2",
                        # podman asks for more open files and processes than root may here
                        "--ulimit", "nofile=1024:20000", "--ulimit", "nproc=4096:4096",
                        IMAGE, "sleep", "infinity"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)
        return name

    def exec_py(self, name):
        out = subprocess.run(["podman", "exec", name, *PY], capture_output=True, text=True,
                             check=True).stdout
        assert out == "2\n", out

    def pause(self, name):
        subprocess.run(["podman", "pause", name], check=True, stdout=subprocess.DEVNULL)

    def resume(self, name):
        subprocess.run(["podman", "unpause", name], check=True, stdout=subprocess.DEVNULL)

    def kill(self, name):
        subprocess.run(["podman", "rm", "-f", "-t", "0", name], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.made.remove(name)

    def close(self):
        for name in self.made:
            subprocess.run(["podman", "rm", "-f", "-t", "0", name], capture_output=True)
        subprocess.run(["podman", "rmi", "-f", IMAGE], capture_output=True)


# -- rounds -------------------------------------------------------------------

def one_round(system, name, out):
    system.ready()
    t0 = time.perf_counter()
    sid = system.create(name)
    t1 = time.perf_counter()
    system.exec_py(sid)
    t2 = time.perf_counter()
    out["create"].append(t1 - t0)
    out["create -> first python exec"].append(t2 - t0)
    out["pause"].append(timed(system.pause, sid))
    out["resume"].append(timed(system.resume, sid))
    out["kill"].append(timed(system.kill, sid))


def burst_run(system, n, tag):
    """n creates at once, each followed by its first exec: wall time until all are done."""
    system.ready(n)
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        def one(i):
            sid = system.create(f"{tag}{i}")
            system.exec_py(sid)
            return sid
        ids = list(pool.map(one, range(n)))
    wall = time.perf_counter() - t0
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(system.kill, ids))
    return wall


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    burst = int(os.environ.get("COMPARE_BURST", "50"))
    rootfs = base_rootfs()
    systems = {}
    try:
        systems["sandboxd warm"] = Sandboxd(pool=2)
        systems["sandboxd cold"] = Sandboxd(pool=0)
        systems["crun"] = Crun(rootfs)
        if os.environ.get("COMPARE_PODMAN", "1") != "0":
            systems["podman"] = Podman(rootfs)
        rows = ["create -> first python exec", "create", "pause", "resume", "kill"]
        figures = {k: {r: [] for r in rows} for k in systems}
        for i in range(rounds):
            for label, system in systems.items():
                one_round(system, f"cmp{os.getpid()}r{i}", figures[label])
        bursts = {}
        for label, system in systems.items():
            if label == "sandboxd warm":
                system.close()
                system = systems[label] = Sandboxd(pool=burst)
            bursts[label] = burst_run(system, burst, f"cmp{os.getpid()}b")
        print(f"compare: {rounds} interleaved rounds, template base rootfs, {os.cpu_count()} cores"
              f" (p50 / p99, ms; ratio = p50 / crun p50)")
        labels = list(systems)
        print(f"{'':30}" + "".join(f"{l:>24}" for l in labels))
        for r in rows:
            cells = []
            base = statistics.median(figures["crun"][r]) if figures["crun"][r] else None
            for l in labels:
                xs = [x * 1000 for x in figures[l][r]]
                ratio = f" {statistics.median(xs) / (base * 1000):.2f}x" if base else ""
                cells.append(f"{pct(xs, 50):7.1f}/{pct(xs, 99):7.1f}{ratio:>7}")
            print(f"{r:30}" + "".join(f"{c:>24}" for c in cells))
        cells = []
        for l in labels:
            ratio = bursts[l] / bursts["crun"]
            cells.append(f"{bursts[l] * 1000:9.0f} ms {ratio:5.2f}x")
        print(f"{f'{burst} concurrent, all done':30}" + "".join(f"{c:>24}" for c in cells))
        print("(sandboxd warm: pool sized 2 for the rounds, "
              f"{burst} for the concurrent row; sandboxd cold: --warm-pool 0)")
    finally:
        for system in systems.values():
            system.close()


if __name__ == "__main__":
    main()
