"""Issue 15 §3: HTTPS on the API and envd listeners (serve --tls-cert/--tls-key)
with a certificate the test makes. Everything a client does works over TLS
(the API, envd RPCs and streams, a port's WebSocket); plain HTTP is not
served; a client that connects and never finishes its handshake neither
blocks others nor holds its connection past the deadline; the per-client
limits still see each client behind the API's TLS front; bad files are
refused at start with the file named."""
import base64
import hashlib
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import unittest

from harness import BIN, Envd, Server, main

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "fixtures"))
import test_certs  # noqa: E402

PER_CLIENT = 8


def read_head(sock):
    """An answer's bytes up to the end of its head (or of the connection)."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(4096)
        if not chunk:
            break
        answer += chunk
    return answer


def make_certs(cls):
    """A CA and a server certificate in a directory removed after the class."""
    cls.certs = tempfile.mkdtemp(prefix="sandboxd-tls-")
    cls.addClassCleanup(shutil.rmtree, cls.certs, True)
    cls.ca, cls.cert, cls.key = test_certs.make(cls.certs)


class Https(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        make_certs(cls)
        cls.tls = ssl.create_default_context(cafile=cls.ca)
        cls.server = Server(("--tls-cert", cls.cert, "--tls-key", cls.key,
                             "--max-connections-per-client", str(PER_CLIENT)), tls=cls.tls)
        cls.addClassCleanup(cls.server.cleanup)

    def tls_socket(self, port, source="127.0.0.1"):
        raw = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0))
        return self.tls.wrap_socket(raw, server_hostname="127.0.0.1")

    def test_the_api_and_envd_speak_https(self):
        self.assertEqual(self.server.request("GET", "/health", key=None).status, 200)
        r = self.server.request("POST", "/sandboxes", {"templateID": "base"})
        self.assertEqual(r.status, 201, r)
        sid = r.json["sandboxID"]
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{sid}")
        envd = Envd(self.server, r.json)
        out, _, end, _ = envd.run("echo over-tls; head -c 300000 /dev/zero | wc -c")
        self.assertEqual(out.split(), ["over-tls", "300000"])
        self.assertEqual(end["exitCode"], 0, end)
        blob = os.urandom(2 << 20)
        self.assertEqual(envd.files_post(blob, "application/octet-stream",
                                         path="/home/user/blob").status, 200)
        got = envd.files_get("/home/user/blob")
        self.assertEqual(got.status, 200)
        self.assertEqual(got.raw, blob)
        # The API names envd's endpoint with its scheme.
        info = self.server.request("GET", f"/sandboxes/{sid}")
        self.assertEqual(info.status, 200)

    def test_a_port_websocket_over_https(self):
        r = self.server.request("POST", "/sandboxes", {"templateID": "base"})
        self.assertEqual(r.status, 201, r)
        sid = r.json["sandboxID"]
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{sid}")
        with open(os.path.join(HERE, "fixtures", "port_server.py"), "rb") as f:
            self.assertEqual(self.server.write(sid, "/home/user/port_server.py", f.read()).status, 200)
        self.server.sh(sid, "setsid -f python3 /home/user/port_server.py 8000 >/tmp/ps.log 2>&1")
        headers = {"E2b-Sandbox-Id": sid, "E2b-Sandbox-Port": "8000"}
        deadline = time.time() + 30
        while True:
            c = self.server.connection(self.server.envd_port, 30)
            c.request("GET", "/host", headers=headers)
            status = c.getresponse().status
            c.close()
            if status == 200:
                break
            self.assertLess(time.time(), deadline, "the port never answered over https")
            time.sleep(0.2)
        s = self.tls_socket(self.server.envd_port)
        self.addCleanup(s.close)
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall((f"GET /ws HTTP/1.1\r\nHost: localhost\r\nE2b-Sandbox-Id: {sid}\r\n"
                   "E2b-Sandbox-Port: 8000\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(1)
            self.assertTrue(chunk, head)
            head += chunk
        self.assertTrue(head.startswith(b"HTTP/1.1 101"), head)
        data, mask = b"hello", os.urandom(4)
        s.sendall(bytes([0x81, 0x80 | len(data)]) + mask
                  + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))
        frame = b""
        while len(frame) < 2 or len(frame) < 2 + (frame[1] & 0x7F):
            chunk = s.recv(64)
            self.assertTrue(chunk, frame)
            frame += chunk
        self.assertEqual(frame[2:2 + (frame[1] & 0x7F)], b"echo:hello")

    def test_the_console_terminal_over_wss(self):
        """The terminal's WebSocket over envd's TLS (its relay on a thread of
        its own there): the ticket names a wss:// URL, a command runs."""
        from browser import WebSocket
        r = self.server.request("POST", "/sandboxes", {"templateID": "base"})
        self.assertEqual(r.status, 201, r)
        sid = r.json["sandboxID"]
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{sid}")
        t = self.server.request("POST", f"/sandboxes/{sid}/terminal")
        self.assertEqual(t.status, 201, t)
        self.assertTrue(t.json["tls"])
        self.assertTrue(t.json["url"].startswith(f"wss://127.0.0.1:{self.server.envd_port}/terminal?"))
        ws = WebSocket(t.json["url"], timeout=30, tls=self.tls)
        self.addCleanup(ws.close)
        ws.send_bytes(b"echo over-$((20+22))-tls\r")
        out = b""
        deadline = time.time() + 20
        while b"over-42-tls" not in out and time.time() < deadline:
            op, payload = ws.recv_frame()
            self.assertNotEqual(op, 0x8, payload)
            out += payload
        self.assertIn(b"over-42-tls", out)

    def test_the_cli_over_https(self):
        env = dict(os.environ, E2B_API_URL=f"https://127.0.0.1:{self.server.port}",
                   E2B_API_KEY=self.server.key,
                   E2B_SANDBOX_URL=f"https://127.0.0.1:{self.server.envd_port}")
        env.pop("SSL_CERT_FILE", None)

        def cli(*args):
            return subprocess.run([BIN, "sandbox", *args], env=env, capture_output=True, timeout=120)

        made = cli("create", "--cacert", self.ca)
        self.assertEqual(made.returncode, 0, made)
        sid = made.stdout.decode().strip()
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{sid}")
        out = cli("exec", sid, "--cacert", self.ca, "--", "echo", "cli-over-tls")
        self.assertEqual((out.returncode, out.stdout), (0, b"cli-over-tls\n"), out)
        # Without the CA, the server is not trusted.
        out = cli("list")
        self.assertEqual(out.returncode, 1)
        self.assertIn(b"certificate", out.stderr)

    def test_a_refused_body_still_gets_its_answer(self):
        # The API refuses 40 MiB at once and stops reading; the front drops
        # the rest of the body but still carries the answer back.
        s = self.tls_socket(self.server.port)
        self.addCleanup(s.close)
        s.settimeout(20)
        s.sendall(b"POST /sandboxes HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 41943040\r\n\r\n")
        try:
            s.sendall(b"x" * (256 << 10))
        except OSError:
            pass
        answer = read_head(s)
        self.assertTrue(answer.startswith(b"HTTP/1.1 413"), answer[:200])

    def test_plain_http_is_not_served(self):
        for port in (self.server.port, self.server.envd_port):
            with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
                try:
                    answer = s.recv(4096)
                except ConnectionResetError:
                    answer = b""
                self.assertFalse(answer.startswith(b"HTTP/1.1 200"), (port, answer))

    def test_a_client_that_does_not_trust_the_certificate_is_not_fooled(self):
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=20) as raw:
            with self.assertRaises(ssl.SSLCertVerificationError):
                ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1")

    def test_silent_clients_block_nobody_and_are_cut_at_the_deadline(self):
        # Twelve connections that never say a word: Pistache's own TLS would
        # have its one accept thread stuck in the first handshake.
        silent = [socket.create_connection(("127.0.0.1", self.server.port), timeout=30)
                  for _ in range(12)]
        try:
            for _ in range(3):
                started = time.monotonic()
                self.assertEqual(self.server.request("GET", "/health", key=None).status, 200)
                self.assertLess(time.monotonic() - started, 2.0)
            # Each is closed by the server once the handshake deadline (10 s)
            # has passed; none is held longer.
            started = time.monotonic()
            for s in silent:
                s.settimeout(max(1.0, 20 - (time.monotonic() - started)))
                try:
                    self.assertEqual(s.recv(1), b"")
                except ConnectionResetError:
                    pass
            self.assertGreater(time.monotonic() - started, 8)
        finally:
            for s in silent:
                s.close()

    def test_handshakes_per_client_are_bounded(self):
        # 16 in handshake at once per client address; the next is closed at
        # once, without a byte read; another address is served meanwhile.
        silent = [socket.create_connection(("127.0.0.1", self.server.port), timeout=10)
                  for _ in range(16)]
        try:
            time.sleep(0.3)
            extra = socket.create_connection(("127.0.0.1", self.server.port), timeout=10)
            started = time.monotonic()
            try:
                self.assertEqual(extra.recv(1), b"")
            except ConnectionResetError:
                pass
            extra.close()
            self.assertLess(time.monotonic() - started, 5)
            other = self.tls_socket(self.server.port, source="127.0.0.2")
            other.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            self.assertTrue(other.recv(64).startswith(b"HTTP/1.1 200"))
            other.close()
        finally:
            for s in silent:
                s.close()
        time.sleep(0.3)
        self.assertEqual(self.server.request("GET", "/health", key=None).status, 200)

    def test_per_client_limits_see_the_client_behind_the_front(self):
        # One address holds its quota of connections (handshakes done, so
        # relayed to the API listener); it is refused one more, as without
        # TLS, while another address is not: the listener does not see them
        # all as the front's loopback.
        held = [self.tls_socket(self.server.port) for _ in range(PER_CLIENT)]
        try:
            time.sleep(0.5)

            def health(source):
                s = self.tls_socket(self.server.port, source=source)
                try:
                    s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
                    return read_head(s)
                finally:
                    s.close()

            refused = health("127.0.0.1")
            self.assertTrue(refused.startswith(b"HTTP/1.1 503"), refused)
            self.assertTrue(health("127.0.0.3").startswith(b"HTTP/1.1 200"))
        finally:
            for s in held:
                s.close()
        time.sleep(0.3)
        self.assertEqual(self.server.request("GET", "/health", key=None).status, 200)


class BadFiles(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        make_certs(cls)
        other = os.path.join(cls.certs, "other")
        os.mkdir(other)
        _, _, cls.other_key = test_certs.make(other)

    def refused(self, *args):
        d = tempfile.mkdtemp(prefix="sandboxd-e2e-")
        try:
            out = subprocess.run([BIN, "serve", "--data-dir", d, "--api-listen", "127.0.0.1:1",
                                  *args], capture_output=True, text=True, timeout=60)
            self.assertNotEqual(out.returncode, 0)
            return out.stdout + out.stderr
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def test_a_cert_without_its_key(self):
        self.assertIn("--tls-cert and --tls-key go together", self.refused("--tls-cert", self.cert))

    def test_a_key_that_is_not_the_certificates(self):
        out = self.refused("--tls-cert", self.cert, "--tls-key", self.other_key)
        self.assertIn(f"--tls-key {self.other_key} is not the key of --tls-cert", out)

    def test_a_missing_file(self):
        missing = os.path.join(self.certs, "nope.pem")
        self.assertIn(f"--tls-cert {missing}", self.refused("--tls-cert", missing, "--tls-key", self.key))


if __name__ == "__main__":
    main()
