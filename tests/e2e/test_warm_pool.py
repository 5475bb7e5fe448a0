"""The warm pool against the real server: sandboxes booted ahead of any
create, invisible until claimed, the caller's choices applied at claim time,
nothing of them left behind by a shutdown or a crash."""
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

from harness import BIN, Server, ServerTest, main


def warm_ready(server, template="base"):
    text = server.request("GET", "/metrics", key=None).raw.decode()
    m = re.search(r'^sandboxd_warm_sandboxes\{template="%s"\} (\d+)$' % template, text, re.M)
    return int(m.group(1)) if m else None


def wait_warm(server, n, timeout=60):
    deadline = time.time() + timeout
    while warm_ready(server) != n:
        if time.time() > deadline:
            raise AssertionError(f"warm pool never reached {n} (now {warm_ready(server)}):\n"
                                 + server.log()[-2000:])
        time.sleep(0.05)


def containers(server):
    """Ids of every sandbox with files on the host, warm or live. A killed
    one's files are removed just after its kill answered: not counted."""
    d = os.path.join(server.dir, "sandboxes")
    if not os.path.isdir(d):
        return set()
    killed = set()
    if server.proc and server.proc.poll() is None:  # a stopped server reclaimed them
        killed = {s["sandboxID"] for s in server.request("GET", "/sandboxes?status=stopped").json}
    return set(os.listdir(d)) - killed


def live_ids(server):
    r = server.request("GET", "/sandboxes?status=running,paused")
    return {s["sandboxID"] for s in r.json}


def host_boot_id():
    with open("/proc/sys/kernel/random/boot_id") as f:
        return f.read().strip()


class WarmPool(ServerTest):
    server_args = ("--warm-pool", "base=2")

    def claim(self, **fields):
        wait_warm(self.server, 2)
        warm = containers(self.server) - live_ids(self.server)
        self.assertEqual(len(warm), 2, warm)
        r = self.server.request("POST", "/sandboxes", {"templateID": "base", **fields})
        self.assertStatus(r, 201)
        sid = r.json["sandboxID"]
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{sid}")
        self.assertIn(sid, warm, "the create did not claim a warm sandbox")
        return sid, r.json

    def test_warm_sandboxes_are_invisible_until_claimed(self):
        wait_warm(self.server, 2)
        warm = containers(self.server) - live_ids(self.server)
        self.assertEqual(len(warm), 2)
        listed = self.server.request("GET", "/v2/sandboxes").json
        self.assertFalse({s["sandboxID"] for s in listed} & warm)
        for sid in warm:
            self.assertError(self.server.request("GET", f"/sandboxes/{sid}"), 404)
            self.assertError(self.server.request("DELETE", f"/sandboxes/{sid}"), 404)
            self.assertEqual(self.server.events(sid), [])
            r = self.server.request("POST", f"/sandboxes/{sid}/processes", {"cmd": "true"})
            self.assertError(r, 404)

    def test_a_claimed_sandbox_is_the_callers_and_no_other(self):
        sid, body = self.claim(envVars={"FOO": "from caller"}, metadata={"who": "me"}, timeout=120)
        self.assertEqual(body["metadata"], {"who": "me"})
        out = self.server.sh(sid, 'printf "%s|%s|%s|" "$FOO" "$(hostname)" "$E2B_SANDBOX_ID";'
                                  " cat /proc/sys/kernel/random/boot_id")["stdout"]
        foo, hostname, env_id, boot_id = out.strip().split("|")
        self.assertEqual(foo, "from caller")
        self.assertEqual(hostname, sid)
        self.assertEqual(env_id, sid)
        self.assertNotEqual(boot_id, host_boot_id())
        # The caller's variables reach a process started through envd too
        # (the agent's environment, not one request's).
        out = self.server.sh(sid, "env")["stdout"]
        self.assertIn("FOO=from caller", out.splitlines())
        events = self.server.events(sid)
        self.assertEqual([e["type"] for e in events], ["sandbox.lifecycle.created"])
        self.assertEqual(events[0]["eventData"]["sandbox_metadata"], {"who": "me"})
        got = self.server.request("GET", f"/sandboxes/{sid}").json
        self.assertEqual(got["metadata"], {"who": "me"})
        # The pool refills behind the claim.
        wait_warm(self.server, 2)

    def test_two_claimed_sandboxes_share_nothing(self):
        a, _ = self.claim()
        b, _ = self.claim()
        read = "cat /proc/sys/kernel/random/boot_id; cat /proc/self/uid_map; hostname"
        out_a = self.server.sh(a, read)["stdout"]
        out_b = self.server.sh(b, read)["stdout"]
        boot_a, map_a, host_a = out_a.split("\n")[0], out_a.split("\n")[1].split(), out_a.split("\n")[2]
        boot_b, map_b, host_b = out_b.split("\n")[0], out_b.split("\n")[1].split(), out_b.split("\n")[2]
        self.assertNotEqual(boot_a, boot_b)
        self.assertNotEqual(map_a[1], map_b[1], "the same user-namespace range")
        self.assertEqual((host_a, host_b), (a, b))
        # A file one writes is not in the other.
        self.server.sh(a, "echo mine > /tmp/mark")
        self.assertNotEqual(self.server.run(b, "cat", "/tmp/mark").json["exitCode"], 0)

    def test_the_callers_variables_override_the_defaults(self):
        sid, _ = self.claim(envVars={"PATH": "/opt/x:/usr/bin:/bin", "E2B_SANDBOX": "mine"})
        out = self.server.sh(sid, 'printf "%s|%s" "$PATH" "$E2B_SANDBOX"')["stdout"]
        self.assertEqual(out, "/opt/x:/usr/bin:/bin|mine")


class WarmPoolLifecycle(unittest.TestCase):
    """Shutdown and crash: what was warm never outlives its server."""

    def setUp(self):
        self.server = Server(["--warm-pool", "base=2"])
        self.addCleanup(self.server.cleanup)

    def test_shutdown_removes_warm_sandboxes_and_keeps_live_ones(self):
        wait_warm(self.server, 2)
        sid = self.server.create()
        wait_warm(self.server, 2)
        self.assertEqual(len(containers(self.server)), 3)
        self.server.stop()
        self.assertEqual(containers(self.server), {sid})
        self.server.start()
        self.assertEqual(self.server.request("GET", f"/sandboxes/{sid}").json["state"], "running")
        wait_warm(self.server, 2)

    def test_shutdown_while_a_warm_sandbox_boots_removes_it_too(self):
        wait_warm(self.server, 2)
        d = os.path.join(self.server.dir, "sandboxes")
        before = set(os.listdir(d))
        sid = self.server.create()  # claims one: a refill boots after a quiet second
        booting, deadline = set(), time.time() + 10
        while not booting and time.time() < deadline:
            booting = set(os.listdir(d)) - before - {sid}
        self.assertEqual(len(booting), 1, "no refill began")
        self.server.stop()  # SIGTERM while it boots (its files are there from the boot's start)
        self.assertEqual(set(os.listdir(d)), {sid},
                         self.server.log()[-2000:])
        for gone in booting:
            self.assertFalse(os.path.exists(f"/sys/fs/cgroup/pids/sandboxd/{gone}"))
        self.server.start()
        self.assertEqual(self.server.request("GET", f"/sandboxes/{sid}").json["state"], "running")

    def test_restart_after_a_crash_removes_the_warm_sandboxes_it_left(self):
        wait_warm(self.server, 2)
        sid = self.server.create()
        wait_warm(self.server, 2)
        left = containers(self.server) - {sid}
        self.assertEqual(len(left), 2)
        self.server.crash()
        self.assertEqual(containers(self.server), left | {sid})  # kill -9 left them
        self.server.start()
        deadline = time.time() + 30
        while containers(self.server) & left and time.time() < deadline:
            time.sleep(0.1)
        self.assertFalse(containers(self.server) & left, "warm sandboxes of the crashed server stayed")
        wait_warm(self.server, 2)
        self.assertEqual(self.server.request("GET", f"/sandboxes/{sid}").json["state"], "running")
        for gone in left:
            self.assertFalse(os.path.exists(f"/sys/fs/cgroup/memory/sandboxd/{gone}"))
            self.assertFalse(os.path.exists(f"/sys/fs/cgroup/pids/sandboxd/{gone}"))


class WarmPoolCapacity(ServerTest):
    """Warm sandboxes count against the host limit and give way to creates."""
    server_args = ("--warm-pool", "base=2", "--max-sandboxes", "3")

    def test_creates_up_to_the_limit_then_429(self):
        wait_warm(self.server, 2)
        self.assertLessEqual(len(containers(self.server)), 3)
        made = []
        for _ in range(3):
            made.append(self.server.create())
            self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{made[-1]}")
            self.assertLessEqual(len(containers(self.server)), 3 + 1)  # a refill may be booting
        self.assertError(self.server.request("POST", "/sandboxes", {"templateID": "base"}), 429,
                         "sandbox limit reached")
        # No refill fits while the host is full; one booted meanwhile gives way.
        deadline = time.time() + 10
        while containers(self.server) != set(made) and time.time() < deadline:
            time.sleep(0.1)
        self.assertEqual(containers(self.server), set(made))
        self.assertEqual(warm_ready(self.server), 0)
        self.server.request("DELETE", f"/sandboxes/{made[0]}")
        wait_warm(self.server, 1)


class WarmPoolFlag(unittest.TestCase):
    def refused(self, value):
        d = tempfile.mkdtemp(prefix="sandboxd-e2e-")
        try:
            out = subprocess.run([BIN, "serve", "--data-dir", d, "--api-listen", "127.0.0.1:1",
                                  "--warm-pool", value], capture_output=True, text=True, timeout=30)
        finally:
            shutil.rmtree(d, ignore_errors=True)
        self.assertNotEqual(out.returncode, 0)
        return out.stderr + out.stdout

    def test_bad_values_are_refused_with_the_reason(self):
        self.assertIn("unknown template 'nosuch'", self.refused("nosuch=1"))
        self.assertIn("no size", self.refused("base"))
        self.assertIn("bad size", self.refused("base=-1"))
        self.assertIn("bad size", self.refused("base=1001"))

    def test_zero_disables_it(self):
        server = Server(["--warm-pool", "0"])
        try:
            time.sleep(0.5)
            self.assertIsNone(warm_ready(server))
            self.assertEqual(containers(server), set())
            sid = server.create()
            self.assertEqual(containers(server), {sid})
        finally:
            server.cleanup()


if __name__ == "__main__":
    main()
