"""Issue 14: a template build is hostile code with a hostile archive.

A build runs the org's steps and unpacks the org's uploaded archive; both
come from whoever holds the key. The steps run inside a sandbox and the
archive is unpacked there, never on the host: an archive whose entries climb
out with `../`, absolute paths or symlinks to host paths, and a step that
writes everywhere it can, change nothing on the host. Another org can neither
use an org's upload link nor its uploaded files."""
import io
import json
import os
import tarfile
import time
import http.client
from urllib.parse import urlparse

from harness import ServerTest, eventually, main

MARK = f"sandboxd-build-escape-{os.getpid()}"


def hostile_archive(kind):
    """An archive with an ordinary file and entries of `kind`: "absolute"
    paths, entries that "climb" out with ../, or "symlink"s to host paths
    with entries written through them."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        def add(name, data=b"x", kind=tarfile.REGTYPE, link=""):
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = link
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
        add("ctx/ok.txt", b"fine\n")
        if kind == "absolute":
            add(f"/tmp/{MARK}-abs", b"absolute\n")
        elif kind == "climb":
            add(f"../../../../../../tmp/{MARK}-climb", b"climbed\n")
        else:
            add("ctx/etc-link", kind=tarfile.SYMTYPE, link="/etc")
            add(f"ctx/etc-link/{MARK}-via-link", b"via link\n")
            add("ctx/root-link", kind=tarfile.SYMTYPE, link="/")
            add(f"ctx/root-link/tmp/{MARK}-via-root", b"via root\n")
    return buf.getvalue()


class HostileBuilds(ServerTest):
    def build(self, name, steps, key="default"):
        r = self.server.request("POST", "/v3/templates", {"name": name}, key=key)
        self.assertStatus(r, 202)
        tid, bid = r.json["templateID"], r.json["buildID"]
        return tid, bid

    def upload(self, tid, digest, data, key="default"):
        r = self.server.request("GET", f"/templates/{tid}/files/{digest}", key=key)
        self.assertStatus(r, 200)
        if r.json["present"]:
            return r.json
        url = urlparse(r.json["url"])
        c = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        c.request("PUT", url.path + "?" + url.query, body=data,
                  headers={"Content-Length": str(len(data))})
        resp = c.getresponse()
        resp.read()
        c.close()
        self.assertEqual(resp.status, 200)
        return r.json

    def start_and_wait(self, tid, bid, body, key="default"):
        r = self.server.request("POST", f"/v2/templates/{tid}/builds/{bid}", body, key=key)
        self.assertStatus(r, 202)
        status = None
        deadline = time.time() + 300
        while time.time() < deadline:
            s = self.server.request("GET", f"/templates/{tid}/builds/{bid}/status", key=key)
            self.assertStatus(s, 200)
            status = s.json
            if status["status"] in ("ready", "error"):
                return status
            time.sleep(0.5)
        self.fail(f"build did not end: {status}")

    def host_untouched(self):
        for path in [f"/tmp/{MARK}-climb", f"/tmp/{MARK}-abs", f"/etc/{MARK}-via-link",
                     f"/tmp/{MARK}-via-root", f"/{MARK}-step", f"/tmp/{MARK}-step"]:
            self.assertFalse(os.path.lexists(path), f"the build reached the host: {path}")

    def hostile_build(self, name, digest, archive):
        tid, bid = self.build(name, [])
        self.upload(tid, digest, archive)
        try:
            return self.start_and_wait(tid, bid, {
                "fromTemplate": "base",
                "steps": [
                    {"type": "COPY", "args": ["ctx", "/srv/ctx/", "", ""], "filesHash": digest},
                    # Writes wherever root inside the sandbox can.
                    {"type": "RUN", "args": [
                        f"touch /{MARK}-step /tmp/{MARK}-step /etc/{MARK}-step; "
                        "ls /srv/ctx > /srv/listing", "root"]},
                ],
            })
        finally:
            self.host_untouched()

    def test_absolute_entries_land_inside_the_build_sandbox(self):
        status = self.hostile_build("absolute", "ab" * 32, hostile_archive("absolute"))
        self.assertEqual(status["status"], "ready", status)
        sid = self.server.create("absolute")
        try:
            out = self.server.sh(sid, f"cat /srv/ctx/ok.txt; cat /srv/listing; ls /etc/{MARK}-step")
            self.assertEqual(out["stdout"], f"fine\nok.txt\n/etc/{MARK}-step\n")
        finally:
            self.server.request("DELETE", f"/sandboxes/{sid}")
        self.host_untouched()

    def test_entries_that_climb_out_fail_the_build_and_reach_nothing(self):
        # tar inside the sandbox refuses a member name with '..': the build
        # fails with its words, and the host has nothing.
        status = self.hostile_build("climbing", "cd" * 32, hostile_archive("climb"))
        self.assertEqual(status["status"], "error", status)
        self.assertIn("contains '..'", status["reason"]["message"])
        self.assertEqual(status["reason"]["step"], "1")

    def test_symlinks_in_the_archive_reach_nothing_on_the_host(self):
        # tar refuses to write through the archive's own symlinks.
        status = self.hostile_build("linking", "ef" * 32, hostile_archive("symlink"))
        self.assertEqual(status["status"], "error", status)
        self.assertIn("COPY", status["reason"]["message"])
        self.assertEqual(status["reason"]["step"], "1")

    def test_another_org_can_use_neither_the_link_nor_the_files(self):
        digest = "0a" * 32
        tid, bid = self.build("mine", [])
        link = self.server.request("GET", f"/templates/{tid}/files/{digest}").json
        self.assertFalse(link["present"])
        other = self.server.new_key("intruder")
        # Its template id is not the other org's to ask about.
        r = self.server.request("GET", f"/templates/{tid}/files/{digest}", key=other)
        self.assertError(r, 404)
        # The link signed for the first org does not serve another org's id.
        url = urlparse(link["url"])
        forged = url.query.replace("org=", "org=intruder-")
        c = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        c.request("PUT", url.path + "?" + forged, body=b"x", headers={"Content-Length": "1"})
        resp = c.getresponse()
        body = json.loads(resp.read())
        c.close()
        self.assertEqual(resp.status, 403)
        self.assertEqual(body["code"], 403)
        # Files the first org uploaded are not present for the second.
        self.upload(tid, digest, hostile_archive("absolute"))
        otid, obid = self.build("theirs", [], key=other)
        r = self.server.request("GET", f"/templates/{otid}/files/{digest}", key=other)
        self.assertFalse(r.json["present"])
        # A build of the second org that names the hash without uploading it fails
        # with a reason, and reads nothing of the first org's.
        status = self.start_and_wait(otid, obid, {
            "fromTemplate": "base",
            "steps": [{"type": "COPY", "args": ["ctx", "/srv/"], "filesHash": digest}],
        }, key=other)
        self.assertEqual(status["status"], "error")
        self.assertIn("never uploaded", status["reason"]["message"])
        self.assertEqual(status["reason"]["step"], "1")


if __name__ == "__main__":
    main()
