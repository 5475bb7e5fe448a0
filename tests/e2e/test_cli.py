"""Issue 15 §2: the CLI client, `sandboxd sandbox ...`, against a real server
as a user runs it: tables and --json, exec streaming with the process's exit
code, files both ways, logs (and -f following), pause/resume/kill, errors
with their message and status, and `shell` as an interactive PTY driven by
tmux (typing, a resize, the exit code)."""
import json
import os
import shutil
import subprocess
import time
import unittest

from harness import BIN, ServerTest, main


class Cli(ServerTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env = dict(os.environ, E2B_API_URL=f"http://127.0.0.1:{cls.server.port}",
                       E2B_API_KEY=cls.server.key,
                       E2B_SANDBOX_URL=f"http://127.0.0.1:{cls.server.envd_port}")
        cls.env.pop("SSL_CERT_FILE", None)

    def cli(self, *args, stdin=None, env=None, check=True):
        out = subprocess.run([BIN, "sandbox", *args], env=env or self.env, capture_output=True,
                             input=stdin, timeout=120)
        if check:
            self.assertEqual(out.returncode, 0, out)
        return out

    def new_sandbox(self, *extra):
        sid = self.cli("create", "base", *extra).stdout.decode().strip()
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{sid}")
        return sid

    def test_create_list_info_as_tables_and_json(self):
        made = json.loads(self.cli("create", "--metadata", "owner=cli,team=blue", "--json").stdout)
        sid = made["sandboxID"]
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{sid}")
        table = self.cli("list").stdout.decode().splitlines()
        self.assertEqual(table[0].split()[:3], ["SANDBOX", "ID", "TEMPLATE"])
        row = next(line for line in table if line.startswith(sid))
        self.assertIn("running", row)
        self.assertIn("owner=cli,team=blue", row)
        listed = json.loads(self.cli("list", "--json").stdout)
        self.assertIn(sid, [s["sandboxID"] for s in listed])
        info = self.cli("info", sid).stdout.decode()
        self.assertRegex(info, rf"sandboxID\s+{sid}")
        self.assertEqual(json.loads(self.cli("info", sid, "--json").stdout)["metadata"],
                         {"owner": "cli", "team": "blue"})

    def test_text_from_sandboxes_cannot_drive_the_terminal(self):
        """Metadata carrying escape sequences (retitle the window, clear the
        screen, a C1 CSI) is printed with its control characters as '?'."""
        hostile = "\x1b]0;pwned\x07x\x1b[2J\u009b2Jy\x7f"
        r = self.server.request("POST", "/sandboxes", {"templateID": "base", "metadata": {"note": hostile}})
        self.assertStatus(r, 201)
        sid = r.json["sandboxID"]
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{sid}")
        for args in (("list",), ("info", sid), ("list", "--json"), ("info", sid, "--json")):
            out = self.cli(*args).stdout
            for raw in (b"\x1b", b"\x07", b"\xc2\x9b", b"\x7f"):
                self.assertNotIn(raw, out, args)
        self.assertIn("note=?]0;pwned?x?[2J?2Jy?", self.cli("info", sid).stdout.decode())
        self.assertEqual(json.loads(self.cli("info", sid, "--json").stdout)["metadata"]["note"], hostile)

    def test_exec_streams_and_returns_the_exit_code(self):
        sid = self.new_sandbox()
        out = self.cli("exec", sid, "--env", "WHO=cli", "--cwd", "/tmp", "--", "bash", "-c",
                       "echo $WHO in $(pwd); echo oops >&2; exit 7", check=False)
        self.assertEqual(out.returncode, 7)
        self.assertEqual(out.stdout, b"cli in /tmp\n")
        self.assertEqual(out.stderr, b"oops\n")
        # Output as it comes: the first line long before the process ends.
        p = subprocess.Popen([BIN, "sandbox", "exec", sid, "--", "bash", "-c",
                              "echo first; sleep 2; echo second"],
                             env=self.env, stdout=subprocess.PIPE)
        started = time.monotonic()
        self.assertEqual(p.stdout.readline(), b"first\n")
        first = time.monotonic() - started
        self.assertEqual(p.stdout.readline(), b"second\n")
        self.assertEqual(p.wait(timeout=30), 0)
        p.stdout.close()
        self.assertLess(first, time.monotonic() - started - 1.0)
        # As root, and a killed process's status.
        self.assertEqual(self.cli("exec", sid, "--user", "root", "--", "id", "-u").stdout, b"0\n")
        self.assertEqual(self.cli("exec", sid, "--", "bash", "-c", "kill -9 $$", check=False).returncode,
                         137)

    def test_files_both_ways_and_logs(self):
        sid = self.new_sandbox()
        blob = os.urandom(1 << 20)
        self.cli("files", "put", sid, "-", "/home/user/blob.bin", stdin=blob)
        self.assertEqual(self.cli("files", "get", sid, "/home/user/blob.bin").stdout, blob)
        local = os.path.join(self.server.dir, "cli-copy.bin")
        self.addCleanup(lambda: os.path.exists(local) and os.remove(local))
        self.cli("files", "get", sid, "/home/user/blob.bin", local)
        with open(local, "rb") as f:
            self.assertEqual(f.read(), blob)
        missing = self.cli("files", "get", sid, "/nope", check=False)
        self.assertEqual(missing.returncode, 1)
        self.assertIn(b"(404)", missing.stderr)
        self.cli("exec", sid, "--", "echo", "a-logged-line")
        logs = self.cli("logs", sid).stdout.decode()
        self.assertIn("sandbox.lifecycle.created", logs)
        self.assertIn("a-logged-line", logs)

    def test_logs_follow_until_the_sandbox_is_gone(self):
        sid = self.new_sandbox()
        p = subprocess.Popen([BIN, "sandbox", "logs", sid, "-f"], env=self.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            time.sleep(1.5)
            self.cli("exec", sid, "--", "echo", "followed-line")
            deadline = time.monotonic() + 15
            seen = b""
            os.set_blocking(p.stdout.fileno(), False)
            while b"followed-line" not in seen and time.monotonic() < deadline:
                seen += p.stdout.read() or b""
                time.sleep(0.2)
            self.assertIn(b"followed-line", seen)
            self.cli("kill", sid)
            self.assertEqual(p.wait(timeout=15), 0)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()
            p.stderr.close()

    def test_pause_resume_kill(self):
        sid = self.new_sandbox()
        self.cli("exec", sid, "--", "bash", "-c", "echo kept > /home/user/k")
        self.cli("pause", sid)
        self.assertEqual(json.loads(self.cli("info", sid, "--json").stdout)["state"], "paused")
        self.cli("resume", sid, "--timeout", "120")
        self.assertEqual(self.cli("exec", sid, "--", "cat", "/home/user/k").stdout, b"kept\n")
        self.cli("kill", sid)
        gone = self.cli("info", sid, check=False)
        self.assertEqual(gone.returncode, 1)
        self.assertEqual(gone.stderr, b"error: sandbox not found (404)\n")

    def test_errors_say_what_is_wrong(self):
        bad = dict(self.env, E2B_API_KEY="e2b_" + "0" * 40)
        out = self.cli("list", env=bad, check=False)
        self.assertEqual(out.returncode, 1)
        self.assertIn(b"(401)", out.stderr)
        nokey = dict(self.env)
        nokey.pop("E2B_API_KEY")
        out = self.cli("list", env=nokey, check=False)
        self.assertIn(b"no API key", out.stderr)
        out = self.cli("list", "--api-url", "http://127.0.0.1:1", check=False)
        self.assertEqual(out.returncode, 1)
        self.assertIn(b"127.0.0.1:1", out.stderr)
        out = self.cli("frobnicate", check=False)
        self.assertEqual(out.returncode, 2)
        self.assertIn(b"unknown command: sandbox frobnicate", out.stderr)
        # An id is never a path: no request leaves for "../templates/x".
        for cmd in ("kill", "exec"):
            out = self.cli(cmd, "../templates/x", *(["--", "true"] if cmd == "exec" else []),
                           check=False)
            self.assertNotEqual(out.returncode, 0)
            self.assertIn(b"not a sandbox id: ../templates/x", out.stderr)
        out = self.cli("create", "no-such-template", check=False)
        self.assertEqual(out.returncode, 1)
        self.assertIn(b"no-such-template", out.stderr)


class Shell(ServerTest):
    """`sandboxd sandbox shell` in a real terminal: a tmux server of the
    test's own (its own socket), removed after."""

    def setUp(self):
        if shutil.which("tmux") is None:
            self.skipTest("tmux is not installed")
        self.sock = f"sandboxd-test-{os.getpid()}"
        self.addCleanup(subprocess.run, ["tmux", "-L", self.sock, "kill-server"],
                        capture_output=True)

    def tmux(self, *args):
        return subprocess.run(["tmux", "-L", self.sock, *args], capture_output=True, text=True,
                              timeout=30)

    def screen(self):
        return self.tmux("capture-pane", "-p", "-t", "cli").stdout

    def wait_for(self, text, within=20):
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if text in self.screen():
                return
            time.sleep(0.1)
        self.fail(f"{text!r} never showed:\n{self.screen()}")

    def test_an_interactive_terminal_with_resize_and_exit_code(self):
        r = self.server.request("POST", "/sandboxes", {"templateID": "base"})
        self.assertStatus(r, 201)
        sid = r.json["sandboxID"]
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{sid}")
        env = (f"E2B_API_URL=http://127.0.0.1:{self.server.port} E2B_API_KEY={self.server.key} "
               f"E2B_SANDBOX_URL=http://127.0.0.1:{self.server.envd_port}")
        cmd = f"env {env} {BIN} sandbox shell {sid}; echo SHELL-EXIT:$?; sleep 60"
        self.assertEqual(self.tmux("new-session", "-d", "-s", "cli", "-x", "100", "-y", "30",
                                   cmd).returncode, 0)
        self.wait_for(":~$")
        self.tmux("send-keys", "-t", "cli", "echo answer=$((6*7)) cols=$(tput cols)", "Enter")
        self.wait_for("answer=42 cols=100")
        self.tmux("resize-window", "-t", "cli", "-x", "120", "-y", "30")
        time.sleep(0.5)
        self.tmux("send-keys", "-t", "cli", "echo now=$(tput cols)", "Enter")
        self.wait_for("now=120")
        self.tmux("send-keys", "-t", "cli", "exit 3", "Enter")
        self.wait_for("SHELL-EXIT:3")


if __name__ == "__main__":
    main()
