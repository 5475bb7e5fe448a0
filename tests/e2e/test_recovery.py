"""The log is the source of truth: kill -9 the server, restart it, and every
sandbox is back in the state the log says, reconciled with the host."""
import os
import subprocess
import time
import unittest

from harness import BIN, OCI, Server, eventually, main

LOG_FILL = os.environ.get("SANDBOXD_LOG_FILL") or os.path.join(os.path.dirname(BIN), "log_fill")


class Recovery(unittest.TestCase):
    def setUp(self):
        self.server = Server()
        self.addCleanup(self.server.cleanup)

    def restart_after_crash(self):
        self.server.crash()
        self.server.start()

    def test_kill_9_then_restart_keeps_every_sandbox(self):
        s = self.server
        running = s.create(metadata={"n": "running"})
        paused = s.create(metadata={"n": "paused"})
        killed = s.create(metadata={"n": "killed"})
        s.sh(running, "echo kept > /workspace/state; nohup sleep 1000 >/dev/null 2>&1 &")
        s.sh(paused, "echo paused-file > /workspace/p")
        self.assertEqual(s.request("POST", f"/sandboxes/{paused}/pause").status, 204)
        self.assertEqual(s.request("DELETE", f"/sandboxes/{killed}").status, 204)
        before = {x["sandboxID"]: x for x in
                  s.request("GET", "/sandboxes?status=running,paused,stopped").json}

        self.restart_after_crash()

        after = {x["sandboxID"]: x for x in
                 s.request("GET", "/sandboxes?status=running,paused,stopped").json}
        self.assertEqual(set(before), set(after))
        for sid in before:
            for k in ["state", "metadata", "startedAt", "endAt", "templateID", "envdAccessToken"]:
                self.assertEqual(before[sid][k], after[sid][k], (sid, k))
        # Running ones still execute, with their files and processes intact.
        out = s.sh(running, "cat /workspace/state; pgrep -c sleep")
        self.assertEqual(out["stdout"], "kept\n1\n")
        # Paused ones resume with their files.
        self.assertEqual(s.request("POST", f"/sandboxes/{paused}/connect", {"timeout": 60}).status, 201)
        self.assertEqual(s.sh(paused, "cat /workspace/p")["stdout"], "paused-file\n")
        # And the log goes on after the replay.
        self.assertEqual(s.request("DELETE", f"/sandboxes/{running}").status, 204)

    def test_vanished_container_is_killed_as_orphaned(self):
        s = self.server
        gone = s.create()
        s.crash()
        subprocess.run([OCI, "--root", os.path.join(s.dir, "runtime", "state"),
                        "delete", "--force", gone], check=True, capture_output=True)
        s.start()
        # The server serves while it reconciles: the orphan goes within moments.
        self.assertTrue(eventually(lambda: s.request("GET", f"/sandboxes/{gone}").status == 404))
        killed = [e for e in s.events(gone) if e["type"] == "sandbox.lifecycle.killed"]
        self.assertEqual(len(killed), 1)
        self.assertEqual(killed[0]["eventData"]["kill_reason"], "orphaned")

    def test_unowned_container_is_removed(self):
        s = self.server
        s.crash()
        # A sandbox directory of ours that no log entry owns.
        stray = os.path.join(s.dir, "sandboxes", "zzzzzzzzzzzzzzzzzzzz")
        os.makedirs(os.path.join(stray, "upper"))
        s.start()
        deadline = time.time() + 10
        while os.path.exists(stray) and time.time() < deadline:
            time.sleep(0.1)
        self.assertFalse(os.path.exists(stray))

    def test_expired_while_down_is_killed_on_start(self):
        s = self.server
        sid = s.create(timeout=1)
        s.crash()
        time.sleep(1.5)
        s.start()
        self.assertTrue(eventually(lambda: s.request("GET", f"/sandboxes/{sid}").status == 404))
        killed = [e for e in s.events(sid) if e["type"] == "sandbox.lifecycle.killed"]
        self.assertEqual(killed[0]["eventData"]["kill_reason"], "timeout")

    def test_ended_sandboxes_after_a_long_log(self):
        """A restart keeps only the live sandboxes and each org's newest 1,000
        ended ones in memory; an older ended one is still found by id (its
        logs and metrics), rebuilt from its own events."""
        s = self.server
        old = s.create()
        s.sh(old, "echo from-the-old-one")
        self.assertEqual(s.request("DELETE", f"/sandboxes/{old}").status, 204)
        live = s.create()
        org = s.events(old)[0]["sandboxTeamId"]
        s.stop()
        # 1,001 more ended sandboxes of the same org after it (4 events each).
        out = subprocess.run([LOG_FILL, os.path.join(s.dir, "db"), org, str(4 * 1001)],
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        s.start()
        stopped = s.request("GET", "/sandboxes?state=stopped").json
        self.assertEqual(len(stopped), 1000)
        self.assertNotIn(old, {x["sandboxID"] for x in stopped})
        self.assertIn("fill1000", {x["sandboxID"] for x in stopped})
        listed = s.request("GET", "/sandboxes").json
        self.assertEqual([x["sandboxID"] for x in listed], [live])
        self.assertEqual(s.request("GET", f"/sandboxes/{old}").status, 404)
        logs = s.request("GET", f"/sandboxes/{old}/logs")
        self.assertEqual(logs.status, 200, logs.raw)
        self.assertIn("from-the-old-one", logs.raw.decode())
        self.assertEqual(s.request("GET", f"/sandboxes/{old}/metrics").status, 200)
        # Another org sees none of it.
        other = s.new_key("other-org")
        self.assertEqual(s.request("GET", f"/sandboxes/{old}/logs", key=other).status, 404)
        self.assertEqual(s.request("GET", "/sandboxes?state=stopped", key=other).json, [])
        self.assertEqual(s.run(live, "true").status, 200)


class Keys(unittest.TestCase):
    def test_keys_create_without_a_server(self):
        s = Server()
        self.addCleanup(s.cleanup)
        s.stop()
        out = subprocess.run([BIN, "keys", "create", "--data-dir", s.dir, "--org", "acme"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        key = out.stdout.strip()
        self.assertRegex(key, r"^e2b_[0-9a-f]{40}$")
        s.start()
        self.assertEqual(s.request("GET", "/sandboxes", key=key).status, 200)
        # The default key survives restarts and is stored only in api-key (0600).
        self.assertEqual(oct(os.stat(os.path.join(s.dir, "api-key")).st_mode & 0o777), "0o600")
        self.assertEqual(s.request("GET", "/sandboxes").status, 200)

    def test_serve_rejects_bad_flags(self):
        import tempfile
        d = tempfile.mkdtemp(prefix="sandboxd-flags-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", d]))
        # Beside the data dir, not in it (serve makes what is in it private).
        secrets = tempfile.mkdtemp(prefix="sandboxd-secrets-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", secrets]))
        short = os.path.join(secrets, "short-secret")
        shared = os.path.join(secrets, "shared-secret")
        for path, text, mode in [(short, "short\n", 0o600), (shared, "s" * 64 + "\n", 0o644)]:
            with open(path, "w") as f:
                f.write(text)
            os.chmod(path, mode)
        cluster = ["--cluster-listen", "127.0.0.1:1"]
        for args, why in [
            (["--cluster-listen", "nohost"], "--cluster-listen: listen address must be HOST:PORT"),
            (cluster, "needs --cluster-secret-file"),
            (cluster + ["--cluster-secret-file", short], "at least 32 characters"),
            (cluster + ["--cluster-secret-file", shared], "readable by other users"),
            (cluster + ["--cluster-secret-file", os.path.join(secrets, "none")], "cannot read"),
            (["--node-name", "Bad_Name"], "--node-name"),
            (["--rejoin-grace", "10ms"], "--rejoin-grace"),
            (["--api-listen", "nohost"], "HOST:PORT"),
            (["--envd-listen", "127.0.0.1:99999"], "bad port"),
            (["--max-sandboxes", "0"], "positive integer"),
            (["--http-threads", "x"], "positive integer"),
            (["--max-connections", "0"], "positive integer"),
            (["--max-connections-per-client", "-5"], "positive integer"),
            (["--max-snapshots-per-org", "0"], "positive integer"),
            (["--event-retention", "5y"], "duration"),
            (["--compaction-interval", "0"], "positive duration"),
            (["--allow-private-webhooks", "maybe"], "true or false"),
            (["--no-such-flag", "1"], "unknown flag"),
        ]:
            out = subprocess.run([BIN, "serve", "--data-dir", d, *args],
                                 capture_output=True, text=True, timeout=30)
            self.assertNotEqual(out.returncode, 0, args)
            self.assertIn(why, out.stderr, args)

    def test_serve_refuses_a_data_dir_too_long_for_unix_sockets(self):
        import tempfile
        base = tempfile.mkdtemp(prefix="sandboxd-long-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", base]))
        d = os.path.join(base, "d" * 90)
        out = subprocess.run([BIN, "serve", "--data-dir", d], capture_output=True, text=True, timeout=30)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("shorter --data-dir", out.stderr)

    def test_worker_rejects_bad_usage(self):
        for args, why in [
            (["--join", "nohost", "--cluster-secret-file", "/x"], "--join: listen address"),
            (["--join", "127.0.0.1:1"], "--cluster-secret-file is required"),
            (["--join", "127.0.0.1:1", "--cluster-secret-file", "/x", "--name", "A B"],
             "--name"),
            (["drain", "Bad_Name"], "usage: sandboxd worker drain"),
            (["list", "--data-dir", "/nonexistent-sandboxd-dir"], "is the control node serving"),
        ]:
            out = subprocess.run([BIN, "worker", *args], capture_output=True, text=True,
                                 timeout=30)
            self.assertNotEqual(out.returncode, 0, args)
            self.assertIn(why, out.stderr, args)

    def test_keys_create_rejects_bad_usage(self):
        out = subprocess.run([BIN, "keys", "create"], capture_output=True, text=True)
        self.assertEqual(out.returncode, 2)
        self.assertIn("--org", out.stderr)
        out = subprocess.run([BIN, "frobnicate"], capture_output=True, text=True)
        self.assertEqual(out.returncode, 2)
        out = subprocess.run([BIN, "--help"], capture_output=True, text=True)
        self.assertEqual(out.returncode, 0)
        self.assertIn("keys create", out.stdout)


if __name__ == "__main__":
    main()
