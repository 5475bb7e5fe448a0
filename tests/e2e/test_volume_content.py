"""E2B's volume-content API (/volumecontent/<volumeID>/(path|dir|file)) on the
envd listener, against the real server: the volume's token is the authority
(401 without it or with another's, 404 for an unknown volume), files are
written, read, listed, stat'ed, chown'ed/chmod'ed and removed in the volume's
own filesystem, uploads and downloads stream (20 MB through, an upload past
the volume's size fails with 507 and leaves nothing), and symlinks hostile
code planted in the volume from inside a real sandbox (to /etc, to /, climbing,
swapped in a loop during the requests) never lead the host out of the volume:
nothing outside it is written, read, changed or removed."""
import hashlib
import http.client
import json
import os
import socket
import time
from urllib.parse import urlencode

from harness import Server, ServerTest, eventually, main

HOST_WATCHED = ["/etc/passwd", "/etc/shadow", "/etc/hostname", "/etc/hosts"]


def host_state():
    """What the host's watched files are (content hash, mode, owner, times)
    and what / and /etc hold."""
    out = {}
    for p in HOST_WATCHED:
        if os.path.exists(p):
            st = os.lstat(p)
            with open(p, "rb") as f:
                out[p] = (hashlib.sha256(f.read()).hexdigest(), st.st_mode, st.st_uid,
                          st.st_gid, st.st_mtime_ns, st.st_ctime_ns)
    out["/"] = sorted(os.listdir("/"))
    out["/etc"] = sorted(os.listdir("/etc"))
    st = os.lstat("/etc")
    out["/etc stat"] = (st.st_mode, st.st_uid, st.st_mtime_ns)
    return out


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class VolumeContentTest(ServerTest):
    @classmethod
    def setUpClass(cls):
        cls.server = Server(["--volume-size-mb", "64"])
        cls.addClassCleanup(cls.server.cleanup)

    def setUp(self):
        r = self.server.request("POST", "/volumes", {"name": f"vc-{self._testMethodName[-40:]}"})
        self.assertStatus(r, 201)
        self.vol = r.json
        self.vid = self.vol["volumeID"]
        self.addCleanup(self.server.request, "DELETE", f"/volumes/{self.vid}")

    # -- helpers ---------------------------------------------------------------

    def call(self, method, what, query=None, body=None, token="default", vid=None,
             headers=None, timeout=120):
        """One request to the content API; body bytes or an iterable of them
        (sent chunked as it is produced)."""
        hdrs = dict(headers or {})
        if token == "default":
            token = self.vol["token"]
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        url = f"/volumecontent/{vid or self.vid}/{what}"
        if query is not None:
            url += "?" + urlencode(query)
        c = http.client.HTTPConnection("127.0.0.1", self.server.envd_port, timeout=timeout)
        try:
            if body is not None and not isinstance(body, (bytes, str)):
                hdrs["Transfer-Encoding"] = "chunked"
                c.request(method, url, body=body, headers=hdrs, encode_chunked=True)
            else:
                c.request(method, url, body=body, headers=hdrs)
            r = c.getresponse()
            return type("R", (), {"status": r.status, "raw": r.read(), "headers": dict(r.getheaders()),
                                  "json": property(lambda s: json.loads(s.raw) if s.raw else None),
                                  "__repr__": lambda s: f"<{s.status} {s.raw[:300]!r}>"})()
        finally:
            c.close()

    def put(self, path, data, **query):
        return self.call("PUT", "file", {"path": path, **query}, body=data,
                         headers={"Content-Type": "application/octet-stream"})

    def get(self, path):
        return self.call("GET", "file", {"path": path})

    def assertVolError(self, resp, status, words=None):
        self.assertStatus(resp, status)
        body = resp.json
        self.assertEqual(body["code"], str(status))  # the spec's Error: code is a string
        self.assertIsInstance(body["message"], str)
        if words is not None:
            self.assertIn(words, body["message"])

    def host_dir(self):
        return os.path.join(self.server.dir, "volumes", self.vid, "disk")

    def sandbox(self, path="/mnt/data"):
        r = self.server.request("POST", "/sandboxes", {
            "templateID": "base", "volumeMounts": [{"name": self.vol["name"], "path": path}]})
        self.assertStatus(r, 201)
        sid = r.json["sandboxID"]
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{sid}")
        return sid

    def root_sh(self, sid, script):
        r = self.server.run(sid, "sh", "-c", script, user="root")
        self.assertStatus(r, 200)
        return r.json

    # -- the API ---------------------------------------------------------------

    def test_write_read_list_stat_patch_delete(self):
        w = self.put("/hello.txt", b"hello volume")
        self.assertStatus(w, 201)
        self.assertEqual(w.json["name"], "hello.txt")
        self.assertEqual(w.json["path"], "/hello.txt")
        self.assertEqual(w.json["type"], "file")
        self.assertEqual(w.json["size"], 12)
        self.assertEqual((w.json["uid"], w.json["gid"], w.json["mode"]), (1000, 1000, 0o644))
        for k in ("atime", "mtime", "ctime"):
            self.assertTrue(w.json[k].endswith("Z"), w.json)
        r = self.get("hello.txt")
        self.assertStatus(r, 200)
        self.assertEqual(r.raw, b"hello volume")
        self.assertEqual(r.headers.get("Content-Type"), "application/octet-stream")

        # Existing file: 409 unless force; force overwrites.
        self.assertVolError(self.put("hello.txt", b"again"), 409, "already exists")
        self.assertStatus(self.put("hello.txt", b"again", force="true"), 201)
        self.assertEqual(self.get("/hello.txt").raw, b"again")
        # Missing parent: 404, whatever force says; mkdir force makes parents.
        self.assertVolError(self.put("/a/b/c.txt", b"x", force="true"), 404)
        self.assertVolError(self.call("POST", "dir", {"path": "/a/b"}), 404)
        d = self.call("POST", "dir", {"path": "/a/b", "force": "true", "mode": 0o750, "uid": 1001})
        self.assertStatus(d, 201)
        self.assertEqual((d.json["type"], d.json["path"], d.json["mode"], d.json["uid"]),
                         ("directory", "/a/b", 0o750, 1001))
        self.assertVolError(self.call("POST", "dir", {"path": "/a/b"}), 409)
        self.assertStatus(self.call("POST", "dir", {"path": "/a/b", "force": "true"}), 201)
        self.assertStatus(self.put("/a/b/c.txt", b"deep", uid=1002, gid=1003, mode=0o600), 201)
        self.assertVolError(self.put("/a", b"x", force="true"), 409, "directory")

        # Listing: depth 1 by default, deeper on request.
        l1 = self.call("GET", "dir", {"path": "/"})
        self.assertStatus(l1, 200)
        self.assertEqual(sorted(e["path"] for e in l1.json), ["/a", "/hello.txt"])
        l3 = self.call("GET", "dir", {"path": "/", "depth": 3})
        self.assertEqual(sorted(e["path"] for e in l3.json),
                         ["/a", "/a/b", "/a/b/c.txt", "/hello.txt"])
        self.assertVolError(self.call("GET", "dir", {"path": "/", "depth": 17}), 400)
        self.assertVolError(self.call("GET", "dir", {"path": "/nope"}), 404)
        self.assertVolError(self.call("GET", "dir", {"path": "/hello.txt"}), 400)

        # Stat and metadata.
        s = self.call("GET", "path", {"path": "a/b/c.txt"})
        self.assertStatus(s, 200)
        self.assertEqual((s.json["uid"], s.json["gid"], s.json["mode"], s.json["size"]),
                         (1002, 1003, 0o600, 4))
        p = self.call("PATCH", "path", {"path": "/a/b/c.txt"}, body=json.dumps({"mode": 0o640, "gid": 1000}),
                      headers={"Content-Type": "application/json"})
        self.assertStatus(p, 200)
        self.assertEqual((p.json["uid"], p.json["gid"], p.json["mode"]), (1002, 1000, 0o640))
        st = os.stat(os.path.join(self.host_dir(), "a/b/c.txt"))
        self.assertEqual((st.st_uid, st.st_gid, st.st_mode & 0o7777), (1002, 1000, 0o640))
        for bad in ({"mode": 0o4755}, {"mode": 0o2755}, {"mode": 0o10000}, {"uid": 65536},
                    {"uid": -1}, {"mode": "755"}):
            self.assertVolError(self.call("PATCH", "path", {"path": "/a/b/c.txt"},
                                          body=json.dumps(bad)), 400)
        self.assertVolError(self.call("PATCH", "path", {"path": "/a"}, body="not json"), 400)
        self.assertVolError(self.call("PATCH", "path", {"path": "/nope"}, body="{}"), 404)
        self.assertVolError(self.put("/s", b"x", mode=0o4755), 400, "setuid")
        self.assertVolError(self.put("/s", b"x", uid="x"), 400)
        self.assertVolError(self.put("/s", b"x", force="maybe"), 400)

        # Delete: a file, then a whole tree; then they are gone.
        self.assertStatus(self.call("DELETE", "path", {"path": "/hello.txt"}), 204)
        self.assertVolError(self.get("/hello.txt"), 404)
        self.assertStatus(self.call("DELETE", "path", {"path": "/a"}), 204)
        self.assertVolError(self.call("GET", "path", {"path": "/a"}), 404)
        self.assertVolError(self.call("DELETE", "path", {"path": "/a"}), 404)
        self.assertVolError(self.call("DELETE", "path", {"path": "/"}), 400)
        self.assertEqual(self.call("GET", "dir", {"path": "/"}).json, [])
        # The path parameter is required.
        self.assertVolError(self.call("GET", "path", {}), 400)
        self.assertVolError(self.call("GET", "path", {"path": ""}), 400)

    def test_tokens_and_routes(self):
        self.assertStatus(self.put("/f", b"x"), 201)
        self.assertVolError(self.call("GET", "path", {"path": "/f"}, token=None), 401)
        self.assertVolError(self.call("GET", "path", {"path": "/f"}, token="0" * 64), 401)
        # Another volume's token opens only that volume.
        other = self.server.request("POST", "/volumes", {"name": "vc-other"}).json
        self.addCleanup(self.server.request, "DELETE", f"/volumes/{other['volumeID']}")
        self.assertVolError(self.call("GET", "path", {"path": "/f"}, token=other["token"]), 401)
        # Nothing was written by a refused upload.
        self.assertVolError(self.call("PUT", "file", {"path": "/g"}, body=b"x", token=other["token"]), 401)
        self.assertFalse(os.path.exists(os.path.join(self.host_dir(), "g")))
        # Unknown or malformed volume ids.
        for vid in ("vol-00000000000000000000", "..", "vol-x", "%2e%2e"):
            self.assertVolError(self.call("GET", "path", {"path": "/f"}, vid=vid), 404)
        # Unknown routes and methods.
        self.assertVolError(self.call("GET", "nope", {"path": "/f"}), 404)
        self.assertVolError(self.call("POST", "file", {"path": "/f"}, body=b"x"), 405)
        self.assertVolError(self.call("PUT", "path", {"path": "/f"}, body=b"x"), 405)
        # An API key is no volume token.
        self.assertVolError(self.call("GET", "path", {"path": "/f"}, token=self.server.key), 401)

    def test_twenty_megabytes_stream_both_ways(self):
        size = 20 << 20
        chunk = os.urandom(1 << 20)
        digest = hashlib.sha256(chunk * 20).hexdigest()
        before = peak_rss_kib(self.server.proc.pid)
        r = self.put("/big.bin", (chunk for _ in range(20)))  # chunked, as produced
        self.assertStatus(r, 201)
        self.assertEqual(r.json["size"], size)
        grown = peak_rss_kib(self.server.proc.pid) - before
        self.assertLess(grown, 12 << 10, "the upload was buffered, not streamed")
        with open(os.path.join(self.host_dir(), "big.bin"), "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), digest)
        g = self.get("/big.bin")
        self.assertStatus(g, 200)
        self.assertEqual(g.headers.get("Content-Length"), str(size))
        self.assertEqual(hashlib.sha256(g.raw).hexdigest(), digest)
        # With a Content-Length too.
        self.assertStatus(self.put("/big2.bin", chunk * 5), 201)
        self.assertEqual(os.path.getsize(os.path.join(self.host_dir(), "big2.bin")), 5 << 20)

    def test_an_upload_past_the_volume_size_fails_and_leaves_nothing(self):
        chunk = b"\xab" * (1 << 20)
        r = self.put("/huge.bin", (chunk for _ in range(80)))  # the volume holds 64 MB
        self.assertVolError(r, 507, "full")
        names = os.listdir(self.host_dir())
        self.assertEqual(names, [], names)
        # And the volume works afterwards.
        self.assertStatus(self.put("/after", b"ok"), 201)
        self.assertEqual(self.get("/after").raw, b"ok")

    def test_a_client_that_hangs_up_mid_upload_leaves_nothing(self):
        self.assertStatus(self.put("/kept", b"old"), 201)
        for path in ("/kept", "/new"):
            s = socket.create_connection(("127.0.0.1", self.server.envd_port), timeout=30)
            head = (f"PUT /volumecontent/{self.vid}/file?{urlencode({'path': path, 'force': 'true'})} HTTP/1.1\r\n"
                    f"Host: x\r\nAuthorization: Bearer {self.vol['token']}\r\n"
                    f"Content-Type: application/octet-stream\r\nContent-Length: {10 << 20}\r\n\r\n")
            s.sendall(head.encode() + b"\xcd" * (1 << 20))
            # Mid-body: the bytes are in a temporary file beside the target.
            self.assertTrue(eventually(lambda: any(n.startswith(".sandboxd-upload-")
                                                   for n in os.listdir(self.host_dir())), within=10))
            s.close()
        self.assertTrue(eventually(lambda: sorted(os.listdir(self.host_dir())) == ["kept"], within=10),
                        os.listdir(self.host_dir()))
        self.assertEqual(self.get("/kept").raw, b"old")

    # -- hostile volumes -------------------------------------------------------

    def test_symlinks_planted_in_a_sandbox_never_lead_out(self):
        sid = self.sandbox()
        before = host_state()
        self.root_sh(sid, "ln -s /etc /mnt/data/evil && ln -s / /mnt/data/root"
                          " && ln -s ../../../../.. /mnt/data/up"
                          " && mkdir /mnt/data/d && ln -s /etc /mnt/data/d/etc"
                          " && ln -s /etc/shadow /mnt/data/shadow")

        # Stat shows the links themselves.
        s = self.call("GET", "path", {"path": "/evil"})
        self.assertStatus(s, 200)
        self.assertEqual((s.json["type"], s.json["target"]), ("symlink", "/etc"))
        # Through them: the volume's own /etc, which does not exist.
        self.assertVolError(self.put("evil/x", b"pwned", force="true"), 404)
        self.assertVolError(self.put("root/etc/x", b"pwned", force="true"), 404)
        self.assertVolError(self.put("up/etc/x", b"pwned", force="true"), 404)
        for path in ("root/etc/shadow", "evil/shadow", "up/etc/passwd", "shadow", "d/etc/passwd",
                     "../../../../etc/shadow", "/root/../../etc/hostname"):
            self.assertVolError(self.get(path), 404)
        self.assertVolError(self.call("PATCH", "path", {"path": "root/etc/passwd"},
                                      body=json.dumps({"mode": 0o777, "uid": 0})), 404)
        self.assertVolError(self.call("DELETE", "path", {"path": "root/etc/hostname"}), 404)
        self.assertVolError(self.call("DELETE", "path", {"path": "evil/hosts"}), 404)
        # A mode on a link is refused; an owner is the link's own.
        self.assertVolError(self.call("PATCH", "path", {"path": "evil"}, body=json.dumps({"mode": 0o777})), 400)
        p = self.call("PATCH", "path", {"path": "evil"}, body=json.dumps({"uid": 1234}))
        self.assertStatus(p, 200)
        self.assertEqual((p.json["type"], p.json["uid"]), ("symlink", 1234))
        # Listing through "root" (-> /) lists the volume, not the host.
        l = self.call("GET", "dir", {"path": "root", "depth": 2})
        self.assertStatus(l, 200)
        self.assertEqual(sorted(e["name"] for e in l.json),
                         ["d", "etc", "evil", "root", "shadow", "up"])
        # Removing a directory holding a link to /etc removes the link only.
        self.assertStatus(self.call("DELETE", "path", {"path": "d"}), 204)
        # Removing the link to / removes the link.
        self.assertStatus(self.call("DELETE", "path", {"path": "root"}), 204)

        # With an etc of its own, the volume's links name it, as in the sandbox
        # (mkdir's force makes the parents: the volume's etc, through "up").
        self.assertStatus(self.call("POST", "dir", {"path": "up/etc/newdir", "force": "true"}), 201)
        self.assertTrue(os.path.isdir(os.path.join(self.host_dir(), "etc", "newdir")))
        self.assertStatus(self.put("evil/x", b"inside"), 201)
        out = self.server.sh(sid, "cat /mnt/data/etc/x")
        self.assertEqual(out["stdout"], "inside")
        self.assertEqual(host_state(), before)
        self.assertFalse(os.path.exists("/etc/x"))

    def test_entries_swapped_for_symlinks_during_requests(self):
        """A sandbox flips `race` between a directory and a symlink to /etc
        (and `race2` to /) as fast as it can while the API writes, reads,
        lists and removes through them: nothing lands outside."""
        sid = self.sandbox()
        before = host_state()
        self.root_sh(sid, "cd /mnt/data && (timeout 25 sh -c 'while true; do"
                          " mkdir race 2>/dev/null; echo in > race/passwd 2>/dev/null; rm -rf race;"
                          " ln -s /etc race; rm -f race;"
                          " ln -s / race2; rm -f race2; mkdir -p race2/etc; rm -rf race2;"
                          " done' >/dev/null 2>&1 &)")
        statuses = set()
        deadline = time.time() + 15
        n = 0
        while time.time() < deadline and n < 400:
            n += 1
            for r in (self.put("race/passwd", b"pwned", force="true"),
                      self.put("race/x", b"pwned", force="true"),
                      self.put("race2/etc/x", b"pwned", force="true"),
                      self.call("POST", "dir", {"path": "race2/etc/newdir", "force": "true"}),
                      self.get("race/passwd"),
                      self.get("race2/etc/shadow"),
                      self.call("GET", "dir", {"path": "race", "depth": 2}),
                      self.call("PATCH", "path", {"path": "race/passwd"}, body=json.dumps({"mode": 0o777})),
                      self.call("DELETE", "path", {"path": "race/passwd"})):
                statuses.add(r.status)
                self.assertLess(r.status, 500, r)
                if r.status == 200 and r.raw:
                    self.assertNotIn(b"root:", r.raw)  # never the host's passwd or shadow
        self.assertGreater(n, 5)
        # The race was on: some requests met the directory, some the links.
        self.assertIn(201, statuses)
        self.assertIn(404, statuses)
        self.root_sh(sid, "pkill -f 'while true' || true")
        self.assertEqual(host_state(), before)
        for p in ("/etc/x", "/etc/newdir"):
            self.assertFalse(os.path.exists(p), p)
        # No temporary upload file was left in the volume.
        leftovers = [os.path.join(d, n) for d, _, names in os.walk(self.host_dir())
                     for n in names if n.startswith(".sandboxd-upload-")]
        self.assertEqual(leftovers, [])


if __name__ == "__main__":
    main()
