"""Sandbox ports reached from outside through the envd listener (E2B's
`getHost`): by `E2b-Sandbox-Id` + `E2b-Sandbox-Port` headers or by a Host of
`<port>-<id>.<domain>`. The server inside listens on 127.0.0.1 only.
Bodies both ways (length-framed, chunked, streamed as they come), a
WebSocket, keep-alive, and E2B's answers for a closed port and a missing
sandbox."""
import base64
import hashlib
import http.client
import os
import socket
import struct
import time

from harness import ServerTest, main

HERE = os.path.dirname(os.path.abspath(__file__))
PORT = 8000


class PortsTest(ServerTest):
    server_args = ("--domain", "sandboxd.test")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        r = cls.server.request("POST", "/sandboxes", {"templateID": "base"})
        assert r.status == 201, r
        cls.created = r.json
        cls.sid = r.json["sandboxID"]
        cls.serve_in(cls.sid)

    @classmethod
    def serve_in(cls, sid, extra=None):
        with open(os.path.join(HERE, "fixtures", "port_server.py"), "rb") as f:
            r = cls.server.write(sid, "/home/user/port_server.py", f.read())
        assert r.status == 200, r
        cls.server.sh(sid, f"setsid -f python3 /home/user/port_server.py {PORT}"
                           " >/tmp/port_server.log 2>&1")
        deadline = time.time() + 30
        while time.time() < deadline:
            if cls.get("/host", sid=sid, extra=extra).status == 200:
                return
            time.sleep(0.2)
        raise AssertionError("the server inside never answered through the proxy")

    @classmethod
    def conn(cls):
        return http.client.HTTPConnection("127.0.0.1", cls.server.envd_port, timeout=60)

    @classmethod
    def headers(cls, port=PORT, sid=None, extra=None):
        h = {"E2b-Sandbox-Id": sid or cls.sid, "E2b-Sandbox-Port": str(port)}
        h.update(extra or {})
        return h

    @classmethod
    def get(cls, path, **kw):
        c = cls.conn()
        c.request("GET", path, headers=cls.headers(**kw))
        r = c.getresponse()
        r.data = r.read()
        c.close()
        return r

    def test_by_headers_and_by_host_with_the_query_intact(self):
        r = self.get("/query?a=1&b=%2F%20x")
        self.assertEqual((r.status, r.data), (200, b"a=1&b=%2F%20x"))
        c = self.conn()
        host = f"{PORT}-{self.sid}.sandboxd.test"
        c.request("GET", "/host", headers={"Host": host})
        r = c.getresponse()
        self.assertEqual((r.status, r.read()), (200, host.encode()))
        # Keep-alive: the same client connection serves the next request.
        c.request("GET", "/query?again", headers={"Host": host})
        r = c.getresponse()
        self.assertEqual((r.status, r.read()), (200, b"again"))
        c.close()

    def test_request_bodies_by_length_and_chunked(self):
        payload = os.urandom(3 << 20)
        c = self.conn()
        c.request("POST", "/echo", body=payload, headers=self.headers())
        r = c.getresponse()
        self.assertEqual((r.status, r.getheader("X-Framing")), (200, "length"))
        self.assertEqual(r.read(), payload)
        c.close()
        c = self.conn()
        c.request("POST", "/echo", body=iter([b"one,", b"two,", b"three"]),
                  headers=self.headers(), encode_chunked=True)
        r = c.getresponse()
        self.assertEqual((r.status, r.getheader("X-Framing"), r.read()), (200, "chunked", b"one,two,three"))
        c.close()

    def test_responses_stream_as_they_come(self):
        c = self.conn()
        t0 = time.time()
        c.request("GET", "/stream", headers=self.headers())
        r = c.getresponse()
        first = r.readline()
        self.assertEqual(first, b"tick 0\n")
        self.assertLess(time.time() - t0, 1.5, "the first chunk waited for the whole body")
        self.assertEqual(r.read(), b"tick 1\ntick 2\n")
        c.close()
        # A large body arrives whole.
        r = self.get("/big?n=20000000")
        self.assertEqual(len(r.data), 20000000)
        self.assertEqual(r.data[:512], bytes(range(256)) * 2)

    def test_a_websocket_is_relayed(self):
        s = socket.create_connection(("127.0.0.1", self.server.envd_port), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall((f"GET /ws HTTP/1.1\r\nHost: {PORT}-{self.sid}.sandboxd.test\r\n"
                   f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(1)
        self.assertTrue(head.startswith(b"HTTP/1.1 101"), head)
        accept = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        self.assertIn(b"sec-websocket-accept: " + accept.lower(), head.lower())

        def send(text):
            data, mask = text.encode(), os.urandom(4)
            size = bytes([0x80 | len(data)]) if len(data) < 126 \
                else bytes([0x80 | 126]) + struct.pack(">H", len(data))
            s.sendall(bytes([0x81]) + size + mask
                      + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

        def recv():
            hdr = s.recv(2)
            n = hdr[1] & 0x7F
            if n == 126:
                n = struct.unpack(">H", s.recv(2))[0]
            data = b""
            while len(data) < n:
                data += s.recv(n - len(data))
            return data

        send("hello")
        self.assertEqual(recv(), b"echo:hello")
        # Quiet for longer than a request head may take (15 s): an upgraded
        # connection is no request in progress, nobody cuts it.
        time.sleep(16)
        send("world" * 30)
        self.assertEqual(recv(), b"echo:" + b"world" * 30)
        s.close()

    def test_domain_traffic_token_and_masked_host(self):
        # serve --domain names the ports (the SDK's getHost); ports are public
        # unless the sandbox was created with allowPublicTraffic false.
        self.assertEqual(self.created["domain"], "sandboxd.test")
        self.assertIsNone(self.created["trafficAccessToken"])
        r = self.server.request("POST", "/sandboxes", {
            "templateID": "base",
            "network": {"allowPublicTraffic": False, "maskRequestHost": "app.local:${PORT}"}})
        self.assertStatus(r, 201)
        sid, token = r.json["sandboxID"], r.json["trafficAccessToken"]
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{sid}")
        self.assertEqual(len(token), 48)
        self.assertEqual(r.json["network"]["allowPublicTraffic"], False)
        self.assertEqual(r.json["network"]["maskRequestHost"], "app.local:${PORT}")
        with_token = {"E2B-Traffic-Access-Token": token}
        self.serve_in(sid, extra=with_token)
        r = self.get("/host", sid=sid, extra=with_token)
        self.assertEqual((r.status, r.data), (200, b"app.local:8000"))
        import json
        for extra, why in [(None, "missing traffic access token"),
                           ({"E2B-Traffic-Access-Token": "0" * 48}, "invalid traffic access token"),
                           ({"E2B-Traffic-Access-Token": token[:-1]}, "invalid traffic access token")]:
            r = self.get("/host", sid=sid, extra=extra)
            self.assertEqual((r.status, json.loads(r.data)["message"]), (403, why))
        # Another private sandbox's token does not open this one.
        r = self.server.request("POST", "/sandboxes", {
            "templateID": "base", "network": {"allowPublicTraffic": False}})
        self.assertStatus(r, 201)
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{r.json['sandboxID']}")
        other = {"E2B-Traffic-Access-Token": r.json["trafficAccessToken"]}
        self.assertEqual(self.get("/host", sid=sid, extra=other).status, 403)
        # A public sandbox does not need it; and it is no envd token.
        r = self.get("/host", extra=with_token)
        self.assertEqual(r.status, 200)  # public: the token is simply not needed
        c = self.conn()
        c.request("GET", "/envs", headers={"E2b-Sandbox-Id": sid, "E2b-Sandbox-Port": "49983",
                                           "X-Access-Token": token})
        self.assertEqual(c.getresponse().status, 401)
        c.close()
        r = self.server.request("POST", "/sandboxes", {
            "templateID": "base", "network": {"maskRequestHost": "bad host"}})
        self.assertEqual(r.status, 400)

    def test_a_request_wakes_a_paused_sandbox_with_auto_resume(self):
        r = self.server.request("POST", "/sandboxes", {
            "templateID": "base", "timeout": 60, "autoPause": True, "autoResume": {"enabled": True}})
        self.assertStatus(r, 201)
        sid = r.json["sandboxID"]
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{sid}")
        self.serve_in(sid)
        self.assertStatus(self.server.request("POST", f"/sandboxes/{sid}/pause"), 204)
        r = self.get("/query?awake", sid=sid)
        self.assertEqual((r.status, r.data), (200, b"awake"))
        self.assertEqual(self.server.request("GET", f"/sandboxes/{sid}").json["state"], "running")

    def test_a_closed_port_and_a_missing_sandbox_answer_as_e2b(self):
        r = self.get("/", port=3000)
        self.assertEqual(r.status, 502)
        self.assertTrue(r.getheader("Content-Type").startswith("application/json"))
        import json
        body = json.loads(r.data)
        self.assertEqual(body["message"], "The sandbox is running but port is not open")
        self.assertEqual((body["sandboxId"], body["port"]), (self.sid, 3000))
        r = self.get("/", port=3000, extra={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"})
        self.assertEqual(r.status, 502)
        self.assertIn(b"<title>Closed Port Error</title>", r.data)
        r = self.get("/", sid="nosuchsandbox0000000")
        self.assertEqual(r.status, 502)
        self.assertEqual(json.loads(r.data)["message"], "The sandbox was not found")
        # envd itself stays envd on its own port.
        r = self.get("/health", port=49983)
        self.assertEqual(r.status, 204)


if __name__ == "__main__":
    main()
