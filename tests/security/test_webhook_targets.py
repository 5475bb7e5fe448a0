"""Webhooks cannot be aimed inside.

An org's API key registers webhook URLs; sandboxd then POSTs to them from the
host. A URL aimed inside (the API itself on loopback, RFC 1918 hosts, cloud
metadata, ...) would make sandboxd a request-forgery proxy. Attacks:

* DefaultPolicy: every spelling of an inside address (decimal, hex, octal and
  short IPv4, IPv4-mapped and -compatible IPv6, [::], 0.0.0.0, localhost and
  *.localhost, RFC 1918, CGNAT, unique-local, link-local, both metadata
  addresses, multicast, broadcast, reserved) is refused with 400 naming the
  address class, by POST and by PATCH. Then lifecycle events happen, and the
  loopback listener those URLs point at has received zero bytes.
* StoredUrlAfterPolicyTightened: a webhook stored while the flag was on,
  whose URL reaches loopback, gets nothing once the server runs without it:
  the connect-time check (the one a DNS answer that changes after
  registration meets) refuses the attempt and records why.
* FlagOpensLoopback: with --allow-private-webhooks true a receiver on
  loopback does get deliveries, and a receiver answering 302 towards another
  loopback receiver is not followed: the second gets nothing and the attempt
  is recorded as failed.
"""
import os
import select
import socket
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlencode

from harness import Server, ServerTest, main
from webhook_receiver import Receiver

T = "sandbox.lifecycle."
PRIVATE = ("--allow-private-webhooks", "true")


class Target:
    """Raw TCP listeners on 127.0.0.1 and ::1 (one port): the place the
    refused URLs point at. Counts connections and bytes; answers nothing."""

    def __init__(self):
        self.connections = 0
        self.bytes = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        s4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s4.bind(("127.0.0.1", 0))
        self.port = s4.getsockname()[1]
        self.listeners = [s4]
        try:
            s6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s6.bind(("::1", self.port))
            self.listeners.append(s6)
        except OSError:
            pass  # no IPv6 loopback here: [::1] URLs reach nothing anyway
        for s in self.listeners:
            s.listen(64)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        conns = []
        while not self.stopping.is_set():
            ready, _, _ = select.select(self.listeners + conns, [], [], 0.1)
            for s in ready:
                if s in self.listeners:
                    c, _ = s.accept()
                    conns.append(c)
                    with self.lock:
                        self.connections += 1
                    continue
                data = s.recv(65536)
                with self.lock:
                    self.bytes += len(data)
                if not data:
                    conns.remove(s)
                    s.close()
        for s in conns + self.listeners:
            s.close()

    def seen(self):
        with self.lock:
            return self.connections, self.bytes

    def stop(self):
        self.stopping.set()
        self.thread.join(5)


class Redirector:
    """Answers every request 302 to `location`, and counts them."""

    def __init__(self, location):
        self.hits = 0
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.hits += 1
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def inside_urls(api_port, port):
    """(url, words the 400 must name). Loopback ones aim at `port`."""
    p = port
    return [
        (f"http://127.0.0.1:{api_port}/events/webhooks", "loopback"),  # the API itself
        (f"http://127.0.0.1:{p}/", "loopback"),
        (f"http://127.1:{p}/", "loopback"),
        (f"http://127.0.1:{p}/", "loopback"),
        (f"http://2130706433:{p}/", "loopback"),
        (f"http://0x7f000001:{p}/", "loopback"),
        (f"http://0x7f.1:{p}/", "loopback"),
        (f"http://0177.0.0.1:{p}/", "loopback"),
        (f"http://[::1]:{p}/", "loopback"),
        (f"http://[0:0:0:0:0:0:0:1]:{p}/", "loopback"),
        (f"http://[::ffff:127.0.0.1]:{p}/", "loopback"),
        (f"http://[::ffff:7f00:1]:{p}/", "loopback"),
        (f"http://[::127.0.0.1]:{p}/", "loopback"),
        (f"http://localhost:{p}/", "loopback"),
        (f"http://LocalHost.:{p}/", "loopback"),
        (f"http://hooks.localhost:{p}/", "loopback"),
        (f"http://user:pw@127.0.0.1:{p}/", "loopback"),
        (f"HTTPS://127.0.0.1:{p}/", "loopback"),
        (f"http://0.0.0.0:{p}/", "unspecified"),
        (f"http://0:{p}/", "unspecified"),
        (f"http://[::]:{p}/", "unspecified"),
        (f"http://[::ffff:0.0.0.0]:{p}/", "unspecified"),
        ("http://10.0.0.1/", "private (RFC 1918)"),
        ("http://167772161/", "private (RFC 1918)"),
        ("http://172.16.0.1/", "private (RFC 1918)"),
        ("http://172.31.255.254:8080/", "private (RFC 1918)"),
        ("http://192.168.1.1/", "private (RFC 1918)"),
        ("http://[::ffff:192.168.1.1]/", "private (RFC 1918)"),
        ("http://100.64.0.1/", "carrier-grade NAT"),
        ("http://[fd12:3456::1]/", "unique-local"),
        ("http://[fd00:ec02::254]/", "unique-local"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http://0xa9fea9fe/", "cloud metadata"),
        ("http://2852039166/", "cloud metadata"),
        ("http://[::ffff:169.254.169.254]/", "cloud metadata"),
        ("http://[::ffff:a9fe:a9fe]/", "cloud metadata"),
        ("http://[fd00:ec2::254]/", "cloud metadata"),
        ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
        ("http://169.254.1.1/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[fe80::1%25lo]/", "link-local"),
        ("http://224.0.0.1/", "multicast"),
        ("http://[ff02::1]/", "multicast"),
        ("http://255.255.255.255/", "broadcast"),
        ("http://192.0.2.1/", "reserved"),
        ("http://240.0.0.1/", "reserved"),
        ("http://[2001:db8::1]/", "reserved"),
    ]


class Base:
    server = None

    def assertStatus(self, resp, status):
        self.assertEqual(resp.status, status, f"{resp}\n--- server log ---\n{self.server.log()[-2000:]}")

    def create_hook(self, url, events=(T + "created",), **fields):
        body = {"name": "t-" + os.urandom(3).hex(), "url": url, "events": list(events),
                "signatureSecret": "s3cret-value", **fields}
        r = self.server.request("POST", "/events/webhooks", body)
        if r.status == 201:
            wid = r.json["id"]
            self.addCleanup(lambda: self.server.request("DELETE", f"/events/webhooks/{wid}",
                                                        timeout=30))
        return r

    def sandbox_events(self):
        """Creates a sandbox and kills it: lifecycle events for every webhook."""
        sid = self.server.create()
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{sid}", timeout=30)
        self.assertStatus(self.server.request("DELETE", f"/sandboxes/{sid}"), 204)
        return sid, self.server.events(sid)

    def attempts(self, wid):
        r = self.server.request("GET", f"/events/webhooks/{wid}/deliveries?{urlencode({'limit': 100})}")
        self.assertStatus(r, 200)
        return [a for d in r.json["data"] for a in d["attempts"]]

    def wait_attempts(self, wid, predicate, timeout=20):
        deadline = time.time() + timeout
        while True:
            got = self.attempts(wid)
            if predicate(got) or time.time() > deadline:
                return got
            time.sleep(0.2)


class DefaultPolicy(Base, ServerTest):
    PUBLIC = "http://93.184.215.14/hook"  # disabled below: never sent to

    def setUp(self):
        self.target = Target()
        self.addCleanup(self.target.stop)

    def test_every_inside_spelling_is_refused_and_nothing_reaches_the_target(self):
        s = self.server
        before = {w["id"] for w in s.request("GET", "/events/webhooks").json}
        urls = inside_urls(s.port, self.target.port)
        aimed_here = f":{self.target.port}/"
        for url, words in urls:
            with self.subTest(create=url):
                r = self.create_hook(url, events=[T + "created", T + "killed"])
                if r.status == 201 and aimed_here not in url:
                    # A regression must not make this test send off the host:
                    # only the ones aimed at our loopback target stay.
                    s.request("DELETE", f"/events/webhooks/{r.json['id']}")
                self.assertStatus(r, 400)
                self.assertEqual(r.json["code"], 400)
                self.assertIn(words, r.json["message"], url)
        # PATCH is held to the same rule; the stored URL stays as it was.
        r = self.create_hook(self.PUBLIC, enabled=False)
        self.assertStatus(r, 201)
        wid = r.json["id"]
        for url, words in urls:
            with self.subTest(patch=url):
                p = s.request("PATCH", f"/events/webhooks/{wid}", {"url": url, "enabled": True})
                if p.status == 200:  # a regression: put it back, disabled
                    s.request("PATCH", f"/events/webhooks/{wid}", {"url": self.PUBLIC, "enabled": False})
                self.assertStatus(p, 400)
                self.assertIn(words, p.json["message"], url)
        got = s.request("GET", f"/events/webhooks/{wid}").json
        self.assertEqual((got["url"], got["enabled"]), (self.PUBLIC, False))
        after = {w["id"] for w in s.request("GET", "/events/webhooks").json}
        self.assertEqual(after - before, {wid}, "a refused webhook was stored")
        # Events that the refused webhooks would have delivered: nothing
        # arrives at the target, not even a connection.
        self.sandbox_events()
        time.sleep(2.0)
        self.assertEqual(self.target.seen(), (0, 0), "the loopback target was reached")
        self.assertEqual(self.attempts(wid), [], "a disabled webhook was attempted")

    def test_the_message_names_the_address_and_the_way_out(self):
        r = self.create_hook(f"http://0x7f000001:{self.target.port}/")
        self.assertStatus(r, 400)
        self.assertIn("127.0.0.1", r.json["message"])
        self.assertIn("--allow-private-webhooks true", r.json["message"])


class StoredUrlAfterPolicyTightened(Base, unittest.TestCase):
    """A server of its own: it is restarted without the flag."""

    def setUp(self):
        self.server = Server(PRIVATE)
        self.addCleanup(self.server.cleanup)
        self.target = Target()
        self.addCleanup(self.target.stop)

    def test_connect_time_check_refuses_a_stored_loopback_url(self):
        s = self.server
        urls = [f"http://127.0.0.1:{self.target.port}/hook", f"http://localhost:{self.target.port}/hook"]
        wids = []
        for url in urls:
            r = self.create_hook(url)
            self.assertStatus(r, 201)   # allowed while the flag is on
            wids.append(r.json["id"])
        s.stop()
        s.extra_args = []
        s.start()
        self.sandbox_events()
        for wid, url in zip(wids, urls):
            got = self.wait_attempts(wid, lambda a: len(a) >= 1)
            self.assertTrue(got, f"no attempt recorded for {url}\n{s.log()[-2000:]}")
            for a in got:
                self.assertEqual((a["status"], a["errorClass"], a["responseHttpStatusCode"]),
                                 ("failed", "refused_address", None), a)
                self.assertIn("loopback", a["errorMessage"], a)
        self.assertEqual(self.target.seen(), (0, 0), "a refused address was connected to")


class FlagOpensLoopback(Base, ServerTest):
    server_args = PRIVATE

    def test_loopback_is_delivered_and_redirects_are_not_followed(self):
        good = Receiver("s3cret-value").start()
        self.addCleanup(good.stop)
        second = Receiver("s3cret-value").start()
        self.addCleanup(second.stop)
        redirect = Redirector(second.url)
        self.addCleanup(redirect.stop)
        # Inside spellings are accepted with the flag (disabled: sent nothing).
        for url in ["http://localhost:9/", "http://169.254.169.254/", "http://[::ffff:10.0.0.1]/"]:
            with self.subTest(url):
                self.assertStatus(self.create_hook(url, enabled=False), 201)
        r = self.create_hook(good.url)
        self.assertStatus(r, 201)
        r = self.create_hook(redirect.url)
        self.assertStatus(r, 201)
        redirect_id = r.json["id"]
        _, events = self.sandbox_events()
        created = events[0]
        self.assertEqual(created["type"], T + "created")
        self.assertTrue(good.wait_events([created["id"]], 20), good.snapshot())
        got = self.wait_attempts(redirect_id, lambda a: len(a) >= 1)
        self.assertTrue(got, self.server.log()[-2000:])
        a = got[-1]
        self.assertEqual((a["status"], a["responseHttpStatusCode"], a["errorClass"]),
                         ("failed", 302, "http_error"), a)
        self.assertIn("redirects are not followed", a["errorMessage"], a)
        self.assertGreaterEqual(redirect.hits, 1)
        time.sleep(1.0)
        self.assertEqual(second.snapshot(), [], "the redirect was followed")


if __name__ == "__main__":
    main()
