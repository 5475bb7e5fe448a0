"""Issue 10 §6: hostile clients of both listeners.

Observed before: a JSON body nested 200,000 deep killed the server (SIGSEGV);
two 40 MiB POSTs without a key each pinned a core until the server was killed,
and SIGTERM did not stop it; 1,500 idle connections to the envd listener
locked every other client out; a signed /files URL for one user read a
root-only file once `Authorization: Basic root:` was added; one client opening
19,000 connections took every descriptor the server had, pinned both cores
in Pistache's accept loop and held creates up. Each test performs
the attack against a real server (and a real sandbox) and checks the server
afterwards: alive, idle, serving others."""
import base64
import hashlib
import json
import os
import resource
import signal
import socket
import struct
import subprocess
import threading
import time
import unittest
from urllib.parse import urlencode

from harness import Envd, Server, ServerTest, eventually, main

DEEP = 200_000
BIG = 40 << 20


def deep_json(prefix=b'{"a":', suffix=b"}"):
    return prefix + b"[" * DEEP + b"]" * DEEP + suffix


def cpu_seconds(pid):
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def connect_from(source, port):
    """A connection to 127.0.0.1:port from another loopback address: what a
    second client host looks like."""
    sock = socket.socket()
    try:
        sock.bind((source, 0))
        sock.settimeout(10)
        sock.connect(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    return sock


def readable_within(socks, n, timeout):
    """The sockets with something to read (data or the end), once `n` of
    them have or `timeout` seconds passed."""
    import selectors
    sel = selectors.DefaultSelector()
    for sock in socks:
        sel.register(sock, selectors.EVENT_READ)
    ready = set()
    deadline = time.time() + timeout
    try:
        while len(ready) < n and time.time() < deadline:
            for key, _ in sel.select(max(0.0, deadline - time.time())):
                ready.add(key.fileobj)
                sel.unregister(key.fileobj)
    finally:
        sel.close()
    return list(ready)


def read_until_closed(sock, timeout):
    """What the server sent before closing; None if it is still open after
    `timeout` seconds."""
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            got = sock.recv(65536)
            if not got:
                return data
            data += got
    except socket.timeout:
        return None
    except ConnectionResetError:
        return data


class RawPost:
    """A POST whose body is sent from a thread while the answer is read:
    what a client uploading a huge body sees. `stall` stops sending after
    that many body bytes (the connection stays open)."""

    def __init__(self, port, path, length, headers=None, stall=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {length}\r\n"
        for k, v in (headers or {}).items():
            head += f"{k}: {v}\r\n"
        self.sock.sendall((head + "\r\n").encode())
        self.length = length
        self.stall = stall
        self.sent = 0
        self.t0 = time.time()
        self.thread = threading.Thread(target=self._send, daemon=True)
        self.thread.start()

    def _send(self):
        chunk = b"a" * (1 << 20)
        limit = self.length if self.stall is None else self.stall
        try:
            while self.sent < limit:
                n = min(len(chunk), limit - self.sent)
                self.sock.sendall(chunk[:n])
                self.sent += n
        except OSError:
            pass

    def answer(self, timeout=10):
        """(status, body, seconds until the status line) or (None, b"", t)
        when the connection ended without one."""
        self.sock.settimeout(timeout)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                got = self.sock.recv(65536)
                if not got:
                    break
                data += got
        except OSError:
            pass
        t = time.time() - self.t0
        if not data.startswith(b"HTTP/1."):
            return None, b"", t
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v)
        try:
            while len(body) < length:
                got = self.sock.recv(65536)
                if not got:
                    break
                body += got
        except OSError:
            pass
        return status, body, t

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class HostileTest(ServerTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        r = cls.server.request("POST", "/sandboxes", {"templateID": "base", "timeout": 900})
        assert r.status == 201, r
        cls.envd = Envd(cls.server, r.json)

    def assertAlive(self):
        self.assertIsNone(self.server.proc.poll(), "sandboxd died:\n" + self.server.log())
        self.assertEqual(self.server.request("GET", "/health", key=None, timeout=5).status, 200)
        self.assertEqual(self.envd.unary("process.Process/List", {}).status, 200)

    def envd_post(self, path, body, token="default", extra=None):
        c = self.envd.conn(timeout=30)
        c.request("POST", path, body=body, headers=self.envd.headers(token=token, extra=extra))
        r = c.getresponse()
        out = (r.status, r.read())
        c.close()
        return out


class DeepJson(HostileTest):
    def test_deep_bodies_are_400_and_the_server_lives(self):
        body = deep_json(b'{"templateID":"base","metadata":')
        r = self.server.request("POST", "/sandboxes", raw=body,
                                headers={"Content-Type": "application/json"})
        self.assertError(r, 400, "nested deeper than 64 levels")
        r = self.server.request("POST", "/events/webhooks", raw=deep_json(b'{"url":'),
                                headers={"Content-Type": "application/json"})
        self.assertError(r, 400, "nested deeper than 64 levels")
        # Without a key: refused before the body is even read.
        r = self.server.request("POST", "/sandboxes", raw=body, key=None,
                                headers={"Content-Type": "application/json"})
        self.assertError(r, 401)
        self.assertAlive()

    def test_deep_envd_messages_are_invalid_argument(self):
        msg = deep_json(b'{"process":{"cmd":"/bin/true","args":', b"}}")
        status, raw = self.envd_post("/process.Process/Start",
                                     b"\x00" + struct.pack(">I", len(msg)) + msg,
                                     extra={"Content-Type": "application/connect+json",
                                            "Connect-Protocol-Version": "1"})
        # A Connect stream answers 200 with the error in its end-of-stream message.
        self.assertEqual(status, 200)
        self.assertEqual(raw[0], 2)
        end = json.loads(raw[5:])
        self.assertEqual(end["error"]["code"], "invalid_argument")
        self.assertIn("nested deeper", end["error"]["message"])
        status, raw = self.envd_post("/filesystem.Filesystem/Stat", deep_json(b'{"path":', b"}"),
                                     extra={"Content-Type": "application/json"})
        self.assertEqual(status, 400)
        self.assertEqual(json.loads(raw)["code"], "invalid_argument")
        self.assertAlive()


class BigBodies(HostileTest):
    def test_40mib_without_a_key_is_refused_at_once_and_costs_nothing(self):
        pid = self.server.proc.pid
        posts = [RawPost(self.server.port, "/sandboxes", BIG,
                         {"Content-Type": "application/json"}) for _ in range(2)]
        try:
            for p in posts:
                status, body, took = p.answer()
                self.assertEqual(status, 413, body)
                self.assertLess(took, 2.0)
                self.assertEqual(json.loads(body)["code"], 413)
        finally:
            for p in posts:
                p.close()
        time.sleep(0.5)
        before = cpu_seconds(pid)
        time.sleep(2)
        self.assertLess(cpu_seconds(pid) - before, 0.3, "the server is still busy")
        self.assertAlive()

    def test_a_body_for_a_route_that_needs_a_key_is_not_read_without_one(self):
        p = RawPost(self.server.port, "/sandboxes", 1 << 20, stall=0)
        try:
            status, body, took = p.answer()
            self.assertEqual(status, 401, body)
            self.assertLess(took, 2.0)
        finally:
            p.close()

    def test_the_api_cap_still_takes_a_1mib_filesystem_write(self):
        data = os.urandom(1 << 20)
        r = self.server.write(self.envd.sid, "/tmp/one-mib", data)
        self.assertStatus(r, 200)
        self.assertEqual(base64.b64decode(self.server.read(self.envd.sid, "/tmp/one-mib").json["content"]),
                         data)
        big = {"path": "/tmp/x", "content": "A" * (3 << 20)}
        self.assertError(self.server.request("POST", f"/sandboxes/{self.envd.sid}/filesystem", big), 413)

    def test_envd_refuses_by_content_length_before_reading(self):
        pid = self.server.proc.pid
        # No token and too long: refused by its Content-Length, the body never read.
        p = RawPost(self.server.envd_port, "/process.Process/List", BIG,
                    {"E2b-Sandbox-Id": self.envd.sid, "Content-Type": "application/json"})
        try:
            status, body, took = p.answer()
            # Connect's resource_exhausted (HTTP 429, as connect-go answers
            # a message over its read limit): the length alone decides.
            self.assertEqual(status, 429, body)
            self.assertEqual(json.loads(body)["code"], "resource_exhausted")
            self.assertLess(took, 2.0)
        finally:
            p.close()
        # No token, 8 MiB announced, none sent: answered without waiting for it.
        p = RawPost(self.server.envd_port, "/process.Process/List", 8 << 20,
                    {"E2b-Sandbox-Id": self.envd.sid, "Content-Type": "application/json"}, stall=0)
        try:
            status, body, took = p.answer()
            self.assertEqual(status, 401, body)
            self.assertLess(took, 2.0)
        finally:
            p.close()
        before = cpu_seconds(pid)
        time.sleep(1)
        self.assertLess(cpu_seconds(pid) - before, 0.3)
        self.assertAlive()


class Connections(HostileTest):
    def test_1500_idle_connections_lock_nobody_out(self):
        raise_nofile()
        for port in (self.server.envd_port, self.server.port):
            socks = []
            try:
                for _ in range(1500):
                    socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
                time.sleep(0.5)
                t0 = time.time()
                if port == self.server.envd_port:
                    r = self.envd.unary("process.Process/List", {})
                else:
                    r = self.server.request("GET", "/sandboxes", timeout=5)
                self.assertEqual(r.status, 200)
                self.assertLess(time.time() - t0, 2.0)
            finally:
                for s in socks:
                    s.close()
        self.assertAlive()

    def test_one_client_cannot_take_every_connection(self):
        """A client opening connections by the thousand gets its 2,048 per
        listener; past them the API answers 503 and hangs up, envd closes
        at once. The server keeps its descriptors and serves everyone else."""
        raise_nofile()
        pid = self.server.proc.pid
        fds0 = len(os.listdir(f"/proc/{pid}/fd"))
        for port in (self.server.port, self.server.envd_port):
            socks = []
            try:
                for _ in range(2048 + 300):
                    socks.append(connect_from("127.0.0.2", port))
                t0 = time.time()
                # Exactly 300 are refused (which ones depends on the order the
                # listener's workers take them up): the API tells up to 256 why
                # (503) and hangs up on the rest; envd closes them all on accept.
                refused = readable_within(socks, 300, 10)
                self.assertEqual(len(refused), 300, f"port {port}")
                told = 0
                for sock in refused:
                    data = read_until_closed(sock, 5)
                    self.assertIsNotNone(data, f"port {port}: still open")
                    if data:
                        self.assertEqual(port, self.server.port)
                        self.assertTrue(data.startswith(b"HTTP/1.1 503"), data[:200])
                        body = json.loads(data.partition(b"\r\n\r\n")[2])
                        self.assertEqual(body["code"], 503)
                        self.assertIn("too many connections", body["message"])
                        told += 1
                if port == self.server.port:
                    self.assertGreater(told, 0)
                    self.assertLessEqual(told, 256)
                self.assertLess(time.time() - t0, 10)
                # The other 2,048 are held open.
                time.sleep(0.5)
                self.assertEqual(readable_within([x for x in socks if x not in refused], 1, 0.1), [])
                fds = len(os.listdir(f"/proc/{pid}/fd"))
                self.assertLess(fds, fds0 + 2048 + 256 + 30, f"port {port}")  # admitted + being told
                # Everyone else is served.
                if port == self.server.envd_port:
                    r = self.envd.unary("process.Process/List", {})
                else:
                    r = self.server.request("GET", "/sandboxes", timeout=5)
                self.assertEqual(r.status, 200)
                self.assertEqual(self.server.run(self.envd.sid, "true", timeout=10).status, 200)
            finally:
                for sock in socks:
                    sock.close()
        self.assertTrue(eventually(lambda: len(os.listdir(f"/proc/{pid}/fd")) < fds0 + 50, 30))
        self.assertAlive()

    def test_slowloris_is_cut(self):
        def slow(port, out):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            t0 = time.time()
            try:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
                s.settimeout(1)
                while time.time() - t0 < 40:
                    try:
                        s.sendall(b"X")
                    except OSError:
                        break
                    try:
                        if not s.recv(4096):
                            break
                    except socket.timeout:
                        continue
                    except OSError:
                        break
                    break  # an answer (408): the server is closing
            finally:
                out[port] = time.time() - t0
                s.close()

        took = {}
        threads = [threading.Thread(target=slow, args=(p, took))
                   for p in (self.server.envd_port, self.server.port)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        # Both listeners give a request head 15 s.
        for port, t in took.items():
            self.assertGreater(t, 10)
            self.assertLess(t, 25, f"port {port}")
        self.assertAlive()


class ConnectionTotal(ServerTest):
    server_args = ("--max-connections", "300", "--max-connections-per-client", "200")

    def test_the_total_holds_and_frees_up(self):
        raise_nofile()
        pid = self.server.proc.pid
        fds0 = len(os.listdir(f"/proc/{pid}/fd"))
        a, b = [], []
        try:
            filled = time.monotonic()
            a = [connect_from("127.0.0.2", self.server.port) for _ in range(200)]
            b = [connect_from("127.0.0.3", self.server.port) for _ in range(200)]
            self.assertTrue(eventually(
                lambda: len(os.listdir(f"/proc/{pid}/fd")) >= fds0 + 300, 10))
            # Full: a third client is told so, with the reason.
            r = self.server.request("GET", "/sandboxes", timeout=5)
            self.assertError(r, 503, "too many connections")
            # At once, every time. This once timed out (5 s) in a CI run:
            # Pistache 0.0.5 queued the answer behind an EPOLLOUT edge that a
            # request arriving at the same moment turned into a read-only
            # event, and the answer stayed queued (~1 connection in 1,000;
            # the server had read the request and sent nothing). A refusal is
            # now written at once (see refuse() in http/server.cpp); up to
            # 1,000 more refused clients that send their request right after
            # connecting catch that coming back about half the time (while
            # the server is still full: the header timeout, 15 s, cuts the
            # idle connections filling it).
            raw = (f"GET /sandboxes HTTP/1.1\r\nHost: x\r\n"
                   f"X-API-Key: {self.server.key}\r\n\r\n").encode()
            for i in range(1000):
                if time.monotonic() > filled + 10:
                    break
                with socket.create_connection(("127.0.0.1", self.server.port), timeout=5) as c:
                    c.sendall(raw)
                    self.assertTrue(c.recv(4096).startswith(b"HTTP/1.1 503 "), i)
            # The kernel's queue of connections not yet accepted holds such a
            # burst (Pistache's 128 overflowed on most runs, each overflow a
            # 1 s stall or more for the client that hit it).
            listen = subprocess.run(["ss", "-Hltn", f"sport = :{self.server.port}"],
                                    capture_output=True, text=True, check=True).stdout.split()
            self.assertGreaterEqual(int(listen[2]), 1024, listen)
            # Held: 300 admitted, and those being told why (256 at most).
            self.assertLess(len(os.listdir(f"/proc/{pid}/fd")), fds0 + 300 + 256 + 20)
            for sock in a:
                sock.close()
            a = []
            self.assertTrue(eventually(
                lambda: self.server.request("GET", "/sandboxes", timeout=5).status == 200, 10))
        finally:
            for sock in a + b:
                sock.close()
        self.assertIsNone(self.server.proc.poll())


class SignedUrls(HostileTest):
    def sign(self, path, op, user, exp):
        raw = f"{path}:{op}:{user}:{self.envd.token}:{exp}"
        return "v1_" + base64.b64encode(hashlib.sha256(raw.encode()).digest()).decode().rstrip("=")

    def get(self, query, method="GET", body=None, auth_user=None):
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", self.server.envd_port, timeout=30)
        headers = {"E2b-Sandbox-Id": self.envd.sid}
        if auth_user is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{auth_user}:".encode()).decode()
        if body is not None:
            headers["Content-Type"] = "application/octet-stream"
        c.request(method, "/files?" + urlencode(query), body=body, headers=headers)
        r = c.getresponse()
        out = (r.status, r.read())
        c.close()
        return out

    def test_a_signature_grants_exactly_its_user_path_and_operation(self):
        out, _, end, _ = self.envd.run(
            "echo root-secret > /root/secret && chmod 600 /root/secret && "
            "echo root-secret > /tmp/root-only && chmod 600 /tmp/root-only", user="root")
        self.assertEqual(end["exitCode"], 0)
        exp = str(int(time.time()) + 120)
        for path in ["/root/secret", "/tmp/root-only"]:
            # Signed for the default user (no username, as SDKs ≥ envd 0.4 do),
            # and for "user" explicitly: Basic root must not change who reads.
            for user, q in [("", {}), ("user", {"username": "user"})]:
                query = {"path": path, **q, "signature": self.sign(path, "read", user, exp),
                         "signature_expiration": exp}
                for auth in [None, "root"]:
                    status, body = self.get(query, auth_user=auth)
                    self.assertNotEqual(status, 200, (path, user, auth))
                    self.assertNotIn(b"root-secret", body)
        # The same signature made for root does read it (the check is not just "deny").
        query = {"path": "/tmp/root-only", "username": "root",
                 "signature": self.sign("/tmp/root-only", "read", "root", exp),
                 "signature_expiration": exp}
        self.assertEqual(self.get(query), (200, b"root-secret\n"))
        # A signed user cannot be swapped for another in the URL either.
        query["username"] = "user"
        self.assertEqual(self.get(query)[0], 401)

    def test_a_download_signature_cannot_upload_and_back(self):
        path = "/tmp/signed-op"
        self.envd.files_post(b"original", "application/octet-stream", path=path)
        exp = str(int(time.time()) + 120)
        read = {"path": path, "username": "user", "signature": self.sign(path, "read", "user", exp),
                "signature_expiration": exp}
        write = {**read, "signature": self.sign(path, "write", "user", exp)}
        self.assertEqual(self.get(read), (200, b"original"))
        self.assertEqual(self.get(read, "POST", b"overwritten")[0], 401)
        self.assertEqual(self.get(write)[0], 401)
        self.assertEqual(self.get(read, "DELETE")[0], 405)
        self.assertEqual(self.get(read), (200, b"original"))
        self.assertEqual(self.get(write, "POST", b"replaced")[0], 200)
        self.assertEqual(self.get(read), (200, b"replaced"))


class Sigterm(unittest.TestCase):
    """A server of its own: SIGTERM while clients are mid-request."""

    def test_sigterm_stops_the_server_while_requests_are_being_parsed(self):
        server = Server()
        self.addCleanup(server.cleanup)
        posts = [RawPost(server.port, "/sandboxes", BIG, {"Content-Type": "application/json"}),
                 RawPost(server.port, "/sandboxes", 1 << 20,
                         {"X-API-Key": server.key, "Content-Type": "application/json"},
                         stall=1000),
                 RawPost(server.envd_port, "/process.Process/List", 1 << 20,
                         {"E2b-Sandbox-Id": "x"}, stall=1000),
                 RawPost(server.envd_port, "/process.Process/List", 1 << 20,
                         {"E2b-Sandbox-Id": "x"}, stall=0)]
        try:
            time.sleep(0.5)
            t0 = time.time()
            server.proc.send_signal(signal.SIGTERM)
            server.proc.wait(timeout=10)
            self.assertLess(time.time() - t0, 5.0, server.log())
        finally:
            for p in posts:
                p.close()


if __name__ == "__main__":
    main()
