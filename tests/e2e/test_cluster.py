"""A control node and two worker nodes on one machine (issue 13, stage 2).
Each worker runs in a network namespace this test creates, joined to the
control node over a bridge this test creates (10.254.77.0/24), with a data
dir of its own. The official SDK drives sandboxes on every node through the
one API and envd URL. Checked: a wrong cluster secret is refused at the TLS
handshake; placement spreads; commands (one streamed), files, pause/resume
and a port work on each node; a drained node gets no new sandboxes; a node
with the wrong secret retrying its handshake drops no joined worker; a worker
killed with -9 turns its sandboxes to `error` (kill_reason node_lost); the
restarted worker reconciles (what it still ran is removed) and takes
sandboxes again; after a control node restart workers rejoin and their
sandboxes carry on, and a node that stays away is lost after the rejoin
grace; a cut network loses the node within the heartbeat timeout, and the
same worker process rejoins once the link is back. A snapshot of a worker's
sandbox (and a fork) is kept on that worker and its sandboxes run there; a
drain outlives a control restart; layers no snapshot owns go at a rejoin.
Everything made is removed, even on failure."""
import json
import os
import secrets
import subprocess
import time
import unittest

from cluster_harness import NET, ClusterNet, Worker, write_secret
from harness import BIN, Server, eventually, free_port

HERE = os.path.dirname(os.path.abspath(__file__))
SDK = os.path.join(HERE, "..", "sdk")


class ClusterTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.workers = []
        cls.net = ClusterNet(2)
        cls.addClassCleanup(cls.net.teardown)
        cls.made_ns = cls.net.namespaces
        cls.secrets_dir = cls.net.secrets_dir
        cls.secret = os.path.join(cls.secrets_dir, "cluster-secret")
        write_secret(cls.secret, secrets.token_hex(32))
        cls.cluster_port = free_port()
        cls.join = f"{NET}.1:{cls.cluster_port}"
        cls.server = Server(("--cluster-listen", cls.join, "--cluster-secret-file", cls.secret,
                             "--warm-pool", "0", "--domain", "sandboxd.test",
                             "--rejoin-grace", "10s"))
        cls.addClassCleanup(cls.server.cleanup)
        cls.w1 = cls.add_worker("w1", cls.made_ns[0])
        cls.w2 = cls.add_worker("w2", cls.made_ns[1])

    @classmethod
    def add_worker(cls, name, ns, secret=None):
        w = Worker(name, ns, secret or cls.secret, cls.join)
        cls.workers.append(w)
        cls.addClassCleanup(w.cleanup)
        return w

    # -- helpers ---------------------------------------------------------

    def nodes(self):
        out = subprocess.run([BIN, "worker", "list", "--json", "--data-dir", self.server.dir],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        return {n["node"]: n for n in json.loads(out.stdout)}

    def connected(self, name):
        n = self.nodes().get(name)
        return bool(n and n["connected"])

    def start_and_join(self, w):
        w.start()
        self.assertTrue(eventually(lambda: w.joined() and self.connected(w.name), within=60,
                                   every=0.2), f"{w.name} did not join:\n{w.log()}\n"
                        f"--- control ---\n{self.server.log()[-3000:]}")

    def probe(self, *args):
        env = dict(os.environ, E2B_API_KEY=self.server.key,
                   E2B_API_URL=f"http://127.0.0.1:{self.server.port}",
                   E2B_SANDBOX_URL=f"http://127.0.0.1:{self.server.envd_port}")
        env.pop("E2B_DOMAIN", None)
        env.pop("E2B_ACCESS_TOKEN", None)
        out = subprocess.run(["node", os.path.join(SDK, "cluster_probe.mjs"), *args], env=env,
                             capture_output=True, text=True, timeout=600, cwd=SDK)
        self.assertEqual(out.returncode, 0,
                         f"{out.stderr[-3000:]}\n--- control ---\n{self.server.log()[-3000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    def where(self, sid):
        for w in (self.w1, self.w2):
            if sid in w.containers():
                return w.name
        return "control"

    # -- the tests, in order ---------------------------------------------

    def test_1_a_node_without_the_secret_is_refused(self):
        wrong = os.path.join(self.secrets_dir, "wrong-secret")
        write_secret(wrong, secrets.token_hex(32))
        intruder = self.add_worker("intruder", self.made_ns[0], wrong)
        intruder.start()
        self.assertTrue(eventually(lambda: "cannot join" in intruder.log(), within=30, every=0.2),
                        intruder.log())
        time.sleep(1)
        self.assertNotIn("intruder", self.nodes())
        self.assertNotIn("joined", intruder.log())
        intruder.crash()

    def test_2_placement_spreads_and_the_sdk_works_on_every_node(self):
        self.start_and_join(self.w1)
        self.start_and_join(self.w2)
        ids = self.probe("create", "6")
        placed = {sid: self.where(sid) for sid in ids}
        by_node = {}
        for sid, node in placed.items():
            by_node.setdefault(node, []).append(sid)
        self.assertEqual(set(by_node), {"control", "w1", "w2"}, placed)
        nodes = self.nodes()
        for name in ("w1", "w2"):
            self.assertEqual(nodes[name]["sandboxes"], len(by_node[name]), nodes)
            self.assertIn("base", nodes[name]["templates"])
        # The SDK on one sandbox per node: commands, a stream, files, pause
        # and resume, a port.
        report = self.probe("use", *[by_node[n][0] for n in ("w1", "w2", "control")])
        self.assertTrue(all(r["ok"] for r in report), report)
        type(self).placed = placed

    def layers(self, node_dir):
        d = os.path.join(node_dir, "snapshots")
        return {n for n in os.listdir(d) if not n.endswith(".copying")} if os.path.isdir(d) else set()

    def test_2b_a_worker_sandbox_snapshots_and_forks_on_its_node(self):
        src = next(s for s, n in self.placed.items() if n == "w2")
        self.server.sh(src, "echo kept-on-w2 > /home/user/snap.txt")
        control_before = self.layers(self.server.dir)
        r = self.server.request("POST", f"/sandboxes/{src}/snapshots", {"name": "on-w2"})
        self.assertEqual(r.status, 201, f"{r}\n{self.server.log()[-3000:]}")
        # The layer is kept where the sandbox ran, not on the control node.
        layers = self.layers(self.w2.dir)
        self.assertEqual(len(layers), 1, layers)
        self.assertEqual(self.layers(self.server.dir), control_before)
        # A sandbox made from it runs there, on those files.
        new = self.server.create("on-w2")
        self.assertEqual(self.where(new), "w2")
        self.assertEqual(self.server.sh(new, "cat /home/user/snap.txt")["stdout"], "kept-on-w2\n")
        # A fork of a worker's sandbox: a hidden snapshot there, forks there.
        r = self.server.request("POST", f"/sandboxes/{src}/fork", {"count": 2})
        self.assertEqual(r.status, 201, r)
        forks = [item["sandbox"]["sandboxID"] for item in r.json]
        for fid in forks:
            self.assertEqual(self.where(fid), "w2")
            self.assertEqual(self.server.sh(fid, "cat /home/user/snap.txt")["stdout"],
                             "kept-on-w2\n")
        for sid in [new, *forks]:
            self.assertEqual(self.server.request("DELETE", f"/sandboxes/{sid}").status, 204)
        # Deleting the snapshot removes its layer on the worker; the forks'
        # hidden snapshot goes once they are gone.
        d = self.server.request("DELETE", "/templates/on-w2")
        self.assertEqual(d.status, 204, d)
        self.assertTrue(eventually(lambda: not self.layers(self.w2.dir), within=30, every=0.2),
                        f"left on w2: {self.layers(self.w2.dir)}\n{self.server.log()[-3000:]}")

    def test_3_a_drained_node_gets_no_new_sandboxes(self):
        out = subprocess.run([BIN, "worker", "drain", "w2", "--data-dir", self.server.dir],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertTrue(self.nodes()["w2"]["draining"])
        ids = self.probe("create", "4")
        self.assertNotIn("w2", {self.where(s) for s in ids})
        for sid in ids:
            self.server.request("DELETE", f"/sandboxes/{sid}")
        out = subprocess.run([BIN, "worker", "drain", "w2", "--undo", "--data-dir",
                              self.server.dir], capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertFalse(self.nodes()["w2"]["draining"])

    def test_3b_failed_handshakes_do_not_drop_joined_workers(self):
        # A node with another secret keeps trying: each attempt fails its TLS
        # handshake on the control node's one middleman thread, beside the
        # joined workers' connections. They must all stay up.
        wrong = os.path.join(self.secrets_dir, "wrong-secret-2")
        write_secret(wrong, secrets.token_hex(32))
        intruder = self.add_worker("intruder2", self.made_ns[1], wrong)
        intruder.start()
        self.assertTrue(eventually(lambda: intruder.log().count("cannot join") >= 3, within=30,
                                   every=0.2), intruder.log())
        intruder.crash()
        nodes = self.nodes()
        self.assertTrue(nodes["w1"]["connected"] and nodes["w2"]["connected"], nodes)
        self.assertNotIn("node w1 lost", self.server.log())
        self.assertNotIn("node w2 lost", self.server.log())
        for sid, node in self.placed.items():
            if node != "control":
                r = self.server.run(sid, "echo", "up")
                self.assertEqual(r.status, 200, r)

    def test_4_a_lost_worker_ends_its_sandboxes_in_error(self):
        placed = self.placed
        on_w1 = [s for s, n in placed.items() if n == "w1"]
        on_w2 = [s for s, n in placed.items() if n == "w2"]
        self.assertTrue(on_w1 and on_w2, placed)
        for sid in on_w2:
            r = self.server.run(sid, "echo", "before")
            self.assertEqual(r.status, 200, f"{r}\n--- control ---\n{self.server.log()[-3000:]}"
                                            f"\n--- w2 ---\n{self.w2.log()}")
        self.w1.crash()
        t0 = time.time()

        def all_lost():
            for sid in on_w1:
                evs = self.server.events(sid)
                if not any(e["type"] == "sandbox.lifecycle.killed"
                           and e["eventData"].get("kill_reason") == "node_lost" for e in evs):
                    return False
            return True
        self.assertTrue(eventually(all_lost, within=30, every=0.2),
                        f"{[self.server.events(s) for s in on_w1]}\n{self.server.log()[-3000:]}")
        type(self).lost_after = time.time() - t0
        print(f"\nsandboxes of a killed worker in error after {self.lost_after:.2f} s")
        for sid in on_w1:
            self.assertEqual(self.server.request("GET", f"/sandboxes/{sid}").status, 404)
        self.assertFalse(self.nodes()["w1"]["connected"])
        # The other worker's sandboxes are untouched.
        for sid in on_w2:
            r = self.server.run(sid, "echo", "still-here")
            self.assertEqual(r.status, 200, f"{r}\n--- control ---\n{self.server.log()[-3000:]}"
                                            f"\n--- w2 ---\n{self.w2.log()}")
            self.assertEqual(r.json["stdout"].strip(), "still-here")

    def test_5_a_restarted_worker_reconciles_and_takes_sandboxes_again(self):
        left = self.w1.containers()
        self.assertTrue(left, "the killed worker's containers should still be there")
        self.start_and_join(self.w1)
        self.assertTrue(eventually(lambda: not self.w1.containers(), within=60, every=0.2),
                        f"left on w1: {self.w1.containers()}\n{self.server.log()[-3000:]}")
        ids = self.probe("create", "6")
        mine = [s for s in ids if self.where(s) == "w1"]
        self.assertTrue(mine, "no new sandbox on the rejoined worker")
        r = self.server.run(mine[0], "echo", "back")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["stdout"].strip(), "back")
        type(self).on_w1_again = mine

    def test_6_after_a_control_node_restart_workers_rejoin_and_reconcile(self):
        on_w2 = [s for s, n in self.placed.items() if n == "w2"]
        on_w1 = self.on_w1_again
        # A drain outlives the restart.
        out = subprocess.run([BIN, "worker", "drain", "w2", "--data-dir", self.server.dir],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        # A layer no snapshot owns (as a snapshot deleted while w2 was away
        # leaves): removed when w2 joins again.
        stray = os.path.join(self.w2.dir, "snapshots", "a" * 20)
        os.makedirs(stray)
        # w1 goes down while the control node is down and stays down: once
        # the rejoin grace (10 s here) is over, its sandboxes are lost.
        self.server.stop()
        self.w1.crash()
        self.server.start()
        self.assertTrue(eventually(lambda: self.connected("w2"), within=60, every=0.2),
                        f"w2 did not rejoin:\n{self.w2.log()}\n{self.server.log()[-3000:]}")
        self.assertTrue(self.nodes()["w2"]["draining"])
        self.assertTrue(eventually(lambda: not os.path.exists(stray), within=30, every=0.2),
                        self.server.log()[-3000:])
        out = subprocess.run([BIN, "worker", "drain", "w2", "--undo", "--data-dir",
                              self.server.dir], capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        for sid in on_w2:
            r = self.server.run(sid, "echo", "after-restart")
            self.assertEqual(r.status, 200, f"{r}\n{self.server.log()[-3000:]}")
            self.assertEqual(r.json["stdout"].strip(), "after-restart")
            got = self.server.request("GET", f"/sandboxes/{sid}")
            self.assertEqual(got.status, 200, got)
            self.assertEqual(got.json["state"], "running")

        def w1_lost():
            return all(any(e["type"] == "sandbox.lifecycle.killed"
                           and e["eventData"].get("kill_reason") == "node_lost"
                           for e in self.server.events(sid)) for sid in on_w1)
        self.assertTrue(eventually(w1_lost, within=40, every=0.5), self.server.log()[-3000:])
        nodes = self.nodes()
        self.assertIn("w1", nodes, f"{nodes}\n{self.server.log()[-3000:]}")
        self.assertFalse(nodes["w1"]["connected"])

    def test_7_a_cut_network_loses_the_node_and_it_rejoins_when_back(self):
        on_w2 = [s for s, n in self.placed.items() if n == "w2"]
        self.assertTrue(on_w2)
        link = self.net.links[2]  # the host's end of w2's veth
        subprocess.run(["ip", "link", "set", link, "down"], check=True)
        t0 = time.time()
        try:
            def w2_lost():
                return all(any(e["type"] == "sandbox.lifecycle.killed"
                               and e["eventData"].get("kill_reason") == "node_lost"
                               for e in self.server.events(sid)) for sid in on_w2)
            self.assertTrue(eventually(w2_lost, within=30, every=0.2),
                            self.server.log()[-3000:])
            print(f"\nsandboxes of a cut-off worker in error after {time.time() - t0:.2f} s")
        finally:
            subprocess.run(["ip", "link", "set", link, "up"], check=True)
        # Back on the network, the same process joins again with a fresh
        # tunnel end, and new sandboxes on it work.
        self.assertTrue(eventually(lambda: self.connected("w2"), within=60, every=0.5),
                        f"{self.w2.log()}\n{self.server.log()[-3000:]}")
        subprocess.run([BIN, "worker", "drain", "control", "--data-dir", self.server.dir],
                       check=True, capture_output=True, timeout=30)
        try:
            ids = self.probe("create", "1")
            self.assertEqual(self.where(ids[0]), "w2")
            report = self.probe("use", ids[0])
            self.assertTrue(report[0]["ok"], report)
        finally:
            subprocess.run([BIN, "worker", "drain", "control", "--undo", "--data-dir",
                            self.server.dir], capture_output=True, timeout=30)


if __name__ == "__main__":
    unittest.main(verbosity=2)
