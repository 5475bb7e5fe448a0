"""Issue 10 §8: the gVisor tier (`serve --oci-runtime runsc`).

Each sandbox gets a kernel of its own (gVisor's Sentry, ptrace platform), so
a kernel exploit from inside meets gVisor, not the host's kernel. These
tests run real sandboxes under Debian's runsc: commands, files, envd
processes with a PTY, pause/resume with and without memory, and the agent
socket attack of §1 replayed against the socket the agent binds there."""
import base64
import os
import socket
import stat
import tempfile
import threading
import time
import unittest

from harness import Envd, ServerTest, main


def host_kernel():
    with open("/proc/sys/kernel/osrelease") as f:
        return f.read().strip()


@unittest.skipUnless(os.path.exists("/usr/bin/runsc") or os.path.exists("/usr/sbin/runsc"),
                     "runsc is not installed (apt-get install runsc)")
class GvisorTest(ServerTest):
    server_args = ("--oci-runtime", "runsc")

    def sandbox(self):
        r = self.server.request("POST", "/sandboxes", {"templateID": "base"})
        self.assertStatus(r, 201)
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{r.json['sandboxID']}")
        return r.json

    def test_commands_run_on_gvisors_kernel(self):
        sid = self.sandbox()["sandboxID"]
        out = self.server.sh(sid, "uname -r; dmesg | head -n1; python3 -c 'print(6*7)'; id -un")
        lines = out["stdout"].split("\n")
        self.assertNotEqual(lines[0], host_kernel())
        self.assertIn("gVisor", lines[1])
        self.assertEqual(lines[2:4], ["42", "user"])
        # Root inside sees only its own processes.
        ps = self.server.sh(sid, "python3 -c 'import os; print(sum(p.isdigit() for p in os.listdir(\"/proc\")))'", user="root")
        self.assertLess(int(ps["stdout"]), 20)

    def test_files_envd_and_a_pty(self):
        sb = self.sandbox()
        sid = sb["sandboxID"]
        self.assertStatus(self.server.write(sid, "/home/user/in.txt", b"\x00\xffbytes"), 200)
        r = self.server.read(sid, "/home/user/in.txt")
        self.assertEqual(base64.b64decode(r.json["content"]), b"\x00\xffbytes")
        envd = Envd(self.server, sb)
        out, _, end, _ = envd.run("echo $((2+3)) && whoami")
        self.assertEqual((out, end["exitCode"]), ("5\nuser\n", 0))
        # A PTY under gVisor's ptrace platform failed once in CI (the shell
        # was gone before its first resize, the stream cut): one more try on a
        # fresh sandbox, with the first failure printed, before failing.
        first = self.pty_roundtrip(envd)
        if first is not True:
            print(f"\n  gVisor PTY, first try failed: {first}; trying a new sandbox")
            first = self.pty_roundtrip(Envd(self.server, self.sandbox()))
        self.assertIs(first, True, first)

    def pty_roundtrip(self, envd):
        """True, or what went wrong: an interactive bash on a PTY, resized."""
        got = {"out": b""}

        def consume():
            try:
                for _, m in envd.stream("process.Process/Start",
                                        {"process": {"cmd": "/bin/bash", "args": ["-i"]},
                                         "pty": {"size": {"cols": 80, "rows": 24}}, "tag": "gv"}):
                    ev = m.get("event", {})
                    got["out"] += base64.b64decode(ev.get("data", {}).get("pty", ""))
                    if "end" in ev:
                        got["end"] = ev["end"]
            except Exception as e:  # reported below through `got`
                got["error"] = repr(e)

        t = threading.Thread(target=consume)
        t.start()
        pid = None
        for _ in range(100):
            procs = envd.unary("process.Process/List", {}).json["processes"]
            pid = next((p["pid"] for p in procs if p.get("tag") == "gv"), None)
            if pid:
                break
            time.sleep(0.1)
        if pid is None:
            t.join(30)
            return f"no PTY process listed ({got})"
        r = envd.unary("process.Process/Update",
                       {"process": {"pid": pid}, "pty": {"size": {"cols": 101, "rows": 31}}})
        if r.status != 200:
            t.join(30)
            return f"resize answered {r} ({got})"
        envd.unary("process.Process/SendInput",
                   {"process": {"pid": pid}, "input": {"pty": base64.b64encode(b"stty size; exit\n").decode()}})
        t.join(30)
        if b"31 101" not in got["out"] or not got.get("end", {}).get("exited"):
            return f"unexpected session {got}"
        return True

    def test_pause_resume_with_and_without_memory(self):
        sid = self.sandbox()["sandboxID"]
        self.server.sh(sid, "echo kept > /home/user/kept; sleep 600 >/dev/null 2>&1 &")
        self.assertStatus(self.server.request("POST", f"/sandboxes/{sid}/pause"), 204)
        self.assertStatus(self.server.request("POST", f"/sandboxes/{sid}/resume", {}), 201)
        self.assertIn("sleep 600", self.server.sh(sid, "ps ax")["stdout"])
        self.assertStatus(self.server.request("POST", f"/sandboxes/{sid}/pause",
                                              {"memory": False}), 204)
        self.assertStatus(self.server.request("POST", f"/sandboxes/{sid}/resume", {}), 201)
        self.assertEqual(self.server.sh(sid, "cat /home/user/kept")["stdout"], "kept\n")

    def test_the_agents_socket_cannot_be_swapped_for_a_link(self):
        # The agent binds its socket in a host directory lent to the sandbox;
        # root inside tries every way to swap it for a link to a host socket
        # the test owns: unlink then symlink, rename over it, both from
        # python too. gVisor refuses each; were one to pass, the host opens
        # the entry without following links and connects only to a socket.
        sid = self.sandbox()["sandboxID"]
        host_dir = tempfile.mkdtemp(prefix="sandboxd-gvisor-")
        victim = os.path.join(host_dir, "victim.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(victim)
        listener.listen(4)
        listener.settimeout(0.5)
        try:
            script = (f"ln -s {victim} /run/sandboxd/link; "
                      "rm -f /run/sandboxd/agent.sock; echo rm=$?; "
                      f"ln -sf {victim} /run/sandboxd/agent.sock; echo ln=$?; "
                      "mv -f /run/sandboxd/link /run/sandboxd/agent.sock; echo mv=$?; "
                      "python3 -c \"import os; os.rename('/run/sandboxd/link', "
                      "'/run/sandboxd/agent.sock')\" 2>/dev/null; echo rename=$?")
            out = self.server.sh(sid, script, user="root")["stdout"].split()
            self.assertEqual(out, ["rm=1", "ln=1", "mv=1", "rename=1"])
            entry = os.path.join(self.server.dir, "sandboxes", sid, "agent", "agent.sock")
            self.assertTrue(stat.S_ISSOCK(os.lstat(entry).st_mode))
            # The link the sandbox could make is there, and nothing uses it.
            self.assertTrue(os.path.islink(os.path.join(os.path.dirname(entry), "link")))
            self.assertEqual(self.server.sh(sid, "hostname")["stdout"].strip(), sid)
            with self.assertRaises(socket.timeout):
                listener.accept()
        finally:
            listener.close()
            os.unlink(victim)
            os.rmdir(host_dir)

if __name__ == "__main__":
    main()
