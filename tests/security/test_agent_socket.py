"""Issue 10 §1: the host never follows a path a sandbox controls.

Root inside a sandbox used to replace its agent.sock (bind-mounted from the
host) with a symlink, and the server then ran requests for sandbox A inside
sandbox B, or connected to any unix socket on the host. Now the agent's
socket is bound by the host in a directory the sandbox cannot see and is
handed to the init as an open fd. These tests perform the swap from inside
and check where the host's requests land, and that a host socket receives
nothing."""
import os
import socket
import stat
import tempfile
import threading

from harness import ServerTest, main


class HostSocket:
    """A unix socket on the host that records every byte sent to it."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="sandboxd-hostsock-")
        self.path = os.path.join(self.dir, "victim.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.received = b""
        self.connections = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.settimeout(1)
            try:
                while True:
                    data = conn.recv(65536)
                    if not data:
                        break
                    self.received += data
            except OSError:
                pass
            conn.close()

    def close(self):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()
        os.unlink(self.path)
        os.rmdir(self.dir)


class AgentSocketTest(ServerTest):

    def setUp(self):
        self.a = self.server.create()
        self.b = self.server.create()
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{self.a}")
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{self.b}")
        self.host = HostSocket()
        self.addCleanup(self.host.close)
        # Only B has this file: reading it through A would prove a redirect.
        self.server.sh(self.b, "echo only-in-b > /tmp/marker-b")

    def host_socket_of(self, sid):
        return os.path.join(self.server.dir, "sandboxes", sid, "agent.sock")

    def assert_requests_land_in_a(self):
        r = self.server.run(self.a, "hostname")
        self.assertStatus(r, 200)
        self.assertEqual(r.json["stdout"].strip(), self.a)
        self.assertEqual(self.server.read(self.a, "/tmp/marker-b").status, 404)
        r = self.server.request("GET", f"/sandboxes/{self.a}/envs")
        self.assertStatus(r, 200)

    def test_the_agent_socket_is_not_reachable_from_inside(self):
        out = self.server.sh(self.a, "ls -la /run/sandboxd 2>&1; grep -c -e agent.sock -e /run/sandboxd /proc/mounts || true",
                             user="root")
        self.assertIn("No such file", out["stdout"])
        self.assertEqual(out["stdout"].strip().splitlines()[-1], "0")
        # On the host: a socket of the host's, not something the sandbox made.
        st = os.lstat(self.host_socket_of(self.a))
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(st.st_uid, 0)

    def test_symlink_to_another_sandboxes_socket(self):
        target = self.host_socket_of(self.b)
        script = (f"mkdir -p /run/sandboxd && ln -sf {target} /run/sandboxd/agent.sock && "
                  f"mkdir -p $(dirname {target}) && ln -sf {target} {self.host_socket_of(self.a)}; "
                  "echo swapped")
        self.assertIn("swapped", self.server.sh(self.a, script, user="root")["stdout"])
        self.assert_requests_land_in_a()
        # The host's own entry is untouched.
        self.assertTrue(stat.S_ISSOCK(os.lstat(self.host_socket_of(self.a)).st_mode))

    def test_symlink_to_a_host_socket(self):
        script = (f"mkdir -p /run/sandboxd && ln -sf {self.host.path} /run/sandboxd/agent.sock && "
                  f"mkdir -p $(dirname {self.host_socket_of(self.a)}) && "
                  f"ln -sf {self.host.path} {self.host_socket_of(self.a)}; echo swapped")
        self.assertIn("swapped", self.server.sh(self.a, script, user="root")["stdout"])
        self.assert_requests_land_in_a()
        # Nothing reached the host's socket.
        self.assertEqual(self.host.connections, 0)
        self.assertEqual(self.host.received, b"")

    def test_sandbox_keeps_working_across_pause_resume_and_cold_resume(self):
        for memory in (True, False):
            self.assertStatus(self.server.request("POST", f"/sandboxes/{self.a}/pause",
                                                  {"memory": memory}), 204)
            self.assertIn(self.server.request("POST", f"/sandboxes/{self.a}/resume",
                                              {"timeout": 300}).status, (200, 201))
            self.assert_requests_land_in_a()


if __name__ == "__main__":
    main()
