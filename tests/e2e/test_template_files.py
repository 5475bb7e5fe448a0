"""PUT /template-files/<templateID>/<hash> on the envd listener: where the
SDK's Template.build uploads the tar of a copy() step. Real PUTs against the
real server, no sandbox involved: a signed upload lands byte-exact at its
per-org path; a bad, foreign or expired signature, a malformed URL and a body
over the cap are refused (the cap before a byte of the body is sent) and
leave nothing behind, nor does a client that hangs up half-way or a server
stopped mid-upload.

The URLs are signed here, in Python, with the server secret (read from the
store by the test-only tool tests/tools/store_secret, as `sandboxd audit`
reads the store beside a running server): the signature scheme is checked
from outside rather than by the code that implements it."""
import hashlib
import hmac
import http.client
import json
import os
import socket
import subprocess
import time
from urllib.parse import quote

from harness import BIN, ServerTest, eventually, main

STORE_SECRET = os.environ.get("SANDBOXD_STORE_SECRET") or os.path.join(
    os.path.dirname(BIN), "tests", "store_secret")
CAP = 512 << 20
TEMPLATE = "abcdefghij0123456789"


def files_hash(n):
    return hashlib.sha256(f"files {n}".encode()).hexdigest()


class TemplateFiles(ServerTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        out = subprocess.run([STORE_SECRET, os.path.join(cls.server.dir, "db")],
                             capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"store_secret: {out.stderr}")
        cls.secret = out.stdout.strip()

    # -- helpers ---------------------------------------------------------------

    def org_dir(self, org="default"):
        return os.path.join(self.server.dir, "template-files",
                            hashlib.sha256(org.encode()).hexdigest()[:16])

    def final_path(self, h, org="default"):
        return os.path.join(self.org_dir(org), h + ".tar")

    def temp_files(self, org="default"):
        d = self.org_dir(org)
        return [n for n in os.listdir(d) if n.startswith(".upload-")] if os.path.isdir(d) else []

    def url(self, h, org="default", template=TEMPLATE, expires=None, signature=None,
            signed_org=None):
        expires = int(time.time()) + 600 if expires is None else expires
        if signature is None:
            msg = f"template-files:{signed_org or org}:{template}:{h}:{expires}"
            signature = hmac.new(self.secret.encode(), msg.encode(), hashlib.sha256).hexdigest()
        return (f"/template-files/{template}/{h}?org={quote(org, safe='')}"
                f"&expires={expires}&signature={signature}")

    def conn(self, timeout=60):
        return http.client.HTTPConnection("127.0.0.1", self.server.envd_port, timeout=timeout)

    def put(self, path, body, method="PUT"):
        c = self.conn()
        try:
            c.request(method, path, body=body,
                      headers={"Content-Type": "application/octet-stream"})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def assertRefused(self, got, status, words=None):
        code, raw = got
        self.assertEqual(code, status, f"{raw!r}\n--- server log ---\n{self.server.log()[-2000:]}")
        body = json.loads(raw)
        self.assertEqual(body["code"], status)
        if words:
            self.assertIn(words, body["message"])

    # -- tests -----------------------------------------------------------------

    def test_signed_upload_lands_byte_exact_and_a_new_one_replaces_it(self):
        h = files_hash(1)
        data = os.urandom(3 << 20)
        code, raw = self.put(self.url(h), data)
        self.assertEqual(code, 200, raw)
        self.assertEqual(json.loads(raw), {})
        path = self.final_path(h)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), data)
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        self.assertEqual(os.stat(self.org_dir()).st_mode & 0o777, 0o700)
        self.assertEqual(self.temp_files(), [])
        again = os.urandom(1 << 20)
        self.assertEqual(self.put(self.url(h), again)[0], 200)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), again)
        # Another org's upload of the same hash is its own file.
        other = os.urandom(1000)
        self.assertEqual(self.put(self.url(h, org="other org"), other)[0], 200)
        with open(self.final_path(h, "other org"), "rb") as f:
            self.assertEqual(f.read(), other)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), again)

    def test_bad_foreign_or_missing_signature_is_403_and_writes_nothing(self):
        h = files_hash(2)
        self.assertRefused(self.put(self.url(h, signature="0" * 64), b"x" * 1000), 403,
                           "invalid signature")
        # Signed for org "default", presented for org "victim".
        self.assertRefused(self.put(self.url(h, org="victim", signed_org="default"), b"x"), 403)
        self.assertRefused(self.put(self.url(h).split("&signature=")[0], b"x"), 403,
                           "missing signature")
        # Signed for another template or hash.
        good = self.url(h)
        self.assertRefused(self.put(good.replace(TEMPLATE, "zzzzzzzzzz0123456789"), b"x"), 403)
        self.assertRefused(self.put(good.replace(h, files_hash(3), 1), b"x"), 403)
        for org in ("default", "victim"):
            self.assertFalse(os.path.exists(self.final_path(h, org)))
            self.assertEqual(self.temp_files(org), [])
        self.assertFalse(os.path.exists(self.final_path(files_hash(3))))

    def test_expired_url_is_403(self):
        h = files_hash(4)
        self.assertRefused(self.put(self.url(h, expires=int(time.time()) - 5), b"x"), 403,
                           "expired")
        self.assertFalse(os.path.exists(self.final_path(h)))

    def test_malformed_urls_are_400(self):
        h = files_hash(5)
        for path in (self.url(h.upper()), self.url(h[:63]), self.url(h + "0"),
                     self.url("../../" + h[6:]),
                     self.url(h, template="short"), self.url(h, template="ABCDEFGHIJ0123456789"),
                     self.url(h).replace("org=default&", ""),
                     self.url(h).replace("expires=", "expires=-"),
                     f"/template-files/{TEMPLATE}",
                     f"/template-files/{TEMPLATE}/{h}/extra?org=default&expires=1&signature=0"):
            with self.subTest(path=path):
                self.assertRefused(self.put(path, b"x"), 400)
        self.assertRefused(self.put(self.url(h), None, method="GET"), 405)

    def test_content_length_over_the_cap_is_413_before_the_body(self):
        h = files_hash(6)
        c = self.conn(timeout=15)
        try:
            c.putrequest("PUT", self.url(h))
            c.putheader("Content-Length", str(600 << 20))
            c.endheaders()  # the head only: not a byte of the body
            r = c.getresponse()
            code, raw = r.status, r.read()
        finally:
            c.close()
        self.assertRefused((code, raw), 413, "larger than 512 MiB")
        self.assertEqual(self.temp_files(), [])
        self.assertFalse(os.path.exists(self.final_path(h)))

    def test_chunked_body_over_the_cap_is_413_and_leaves_no_file(self):
        h = files_hash(7)
        piece = os.urandom(1 << 20)
        seen_temp = []

        def body():
            for i in range(CAP // len(piece)):
                if i == 8:  # the upload is under way: its temporary file exists
                    seen_temp.extend(self.temp_files())
                yield piece
            yield piece[:64 << 10]  # past the cap, well within what is drained

        c = self.conn(timeout=120)
        try:
            c.request("PUT", self.url(h), body=body(), encode_chunked=True,
                      headers={"Transfer-Encoding": "chunked"})
            r = c.getresponse()
            got = (r.status, r.read())
        finally:
            c.close()
        self.assertRefused(got, 413)
        self.assertEqual(len(seen_temp), 1, seen_temp)
        self.assertTrue(eventually(lambda: self.temp_files() == []), self.temp_files())
        self.assertFalse(os.path.exists(self.final_path(h)))

    def test_client_hanging_up_half_way_leaves_no_temporary_file(self):
        h = files_hash(8)
        s = socket.create_connection(("127.0.0.1", self.server.envd_port), timeout=30)
        try:
            s.sendall((f"PUT {self.url(h)} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       f"Content-Length: {3 << 20}\r\n\r\n").encode())
            s.sendall(os.urandom(1 << 20))
            self.assertTrue(eventually(lambda: len(self.temp_files()) == 1), "no temporary file")
        finally:
            s.close()
        self.assertTrue(eventually(lambda: self.temp_files() == []), self.temp_files())
        self.assertFalse(os.path.exists(self.final_path(h)))

    def test_zz_restart_removes_what_an_interrupted_upload_left(self):
        # A file as a crash mid-upload leaves it (the server was killed, so
        # its own cleanup never ran), and a complete one that must stay.
        done = files_hash(9)
        self.assertEqual(self.put(self.url(done), b"complete")[0], 200)
        left = os.path.join(self.org_dir(), f".upload-{files_hash(10)}-0123456789abcdef.part")
        with open(left, "wb") as f:
            f.write(b"half")
        unrelated = os.path.join(self.org_dir(), "keep-me")
        with open(unrelated, "wb") as f:
            f.write(b"not ours to remove")
        self.server.crash()
        self.server.start()
        self.assertFalse(os.path.exists(left))
        self.assertTrue(os.path.exists(unrelated))
        with open(self.final_path(done), "rb") as f:
            self.assertEqual(f.read(), b"complete")


if __name__ == "__main__":
    main()
