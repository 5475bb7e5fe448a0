"""POST /sandboxes/:id/files/links: a signed envd /files URL made by the
server for a client holding an API key (the console moves large files with
it). A read link downloads with no header at all, a write link uploads, each
only what it was signed for, until it expires; envd lets any origin read the
answers of signed requests (and only of those)."""
import hashlib
import os
import time
import urllib.error
import urllib.request

from harness import ServerTest, main


class FileLinks(ServerTest):
    def sandbox(self):
        sid = self.server.create()
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{sid}")
        return sid

    def link(self, sid, path, operation, status=201, key="default", **more):
        r = self.server.request("POST", f"/sandboxes/{sid}/files/links",
                                {"path": path, "operation": operation, **more}, key=key)
        self.assertStatus(r, status)
        return r.json

    def fetch(self, url, data=None, origin="http://elsewhere.example"):
        req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET",
                                     headers={"Origin": origin, "Content-Type": "application/octet-stream"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, r.read(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read(), dict(e.headers)

    def test_a_large_file_up_and_down_with_no_header(self):
        sid = self.sandbox()
        blob = os.urandom(3 << 20)
        up = self.link(sid, "/home/user/big.bin", "write")
        self.assertTrue(up["url"].startswith(f"http://127.0.0.1:{self.server.envd_port}/files?path=/home/user/big.bin&"))
        status, body, headers = self.fetch(up["url"], data=blob)
        self.assertEqual(status, 200, body)
        self.assertEqual(headers.get("Access-Control-Allow-Origin"), "*")
        digest = self.server.sh(sid, "sha256sum /home/user/big.bin")["stdout"].split()[0]
        self.assertEqual(digest, hashlib.sha256(blob).hexdigest())
        down = self.link(sid, "/home/user/big.bin", "read")
        status, body, headers = self.fetch(down["url"])
        self.assertEqual(status, 200)
        self.assertEqual(body, blob)
        self.assertEqual(headers.get("Access-Control-Allow-Origin"), "*")
        self.assertIn("attachment", headers.get("Content-Disposition", ""))

    def test_a_link_grants_only_what_it_was_signed_for(self):
        sid = self.sandbox()
        self.server.sh(sid, "echo secret > /home/user/a.txt && echo other > /home/user/b.txt")
        read = self.link(sid, "/home/user/a.txt", "read")["url"]
        # Not a write, not another path.
        status, body, headers = self.fetch(read, data=b"overwritten")
        self.assertEqual(status, 401, body)
        self.assertEqual(headers.get("Access-Control-Allow-Origin"), "*")
        status, _, _ = self.fetch(read.replace("a.txt", "b.txt"))
        self.assertEqual(status, 401)
        self.assertEqual(self.server.sh(sid, "cat /home/user/a.txt")["stdout"], "secret\n")
        # It expires.
        short = self.link(sid, "/home/user/a.txt", "read", expiresIn=1)["url"]
        self.assertEqual(self.fetch(short)[0], 200)
        time.sleep(2.2)
        status, body, _ = self.fetch(short)
        self.assertEqual(status, 401)
        self.assertIn(b"expired", body)
        # An unsigned request gets no CORS header: only signed URLs are open to pages.
        c = self.server.connection(self.server.envd_port)
        c.request("GET", "/files?path=/home/user/a.txt", headers={"E2b-Sandbox-Id": sid, "Origin": "http://x"})
        r = c.getresponse()
        r.read()
        c.close()
        self.assertEqual(r.status, 401)
        self.assertIsNone(r.getheader("Access-Control-Allow-Origin"))

    def test_bad_requests_and_other_orgs(self):
        sid = self.sandbox()
        self.link(sid, "/home/user/a", "delete", status=400)
        self.link(sid, "", "read", status=400)
        self.link(sid, "/home/user/a", "read", status=400, expiresIn=0)
        self.link(sid, "/home/user/a", "read", status=400, expiresIn=3601)
        self.link(sid, "/home/user/a", "read", status=400, user="")
        other = self.server.new_key("file-links-other")
        self.link(sid, "/home/user/a", "read", status=404, key=other)
        self.link("nosuchsandbox0000000", "/home/user/a", "read", status=404)


if __name__ == "__main__":
    main()
