"""Volumes (E2B's /volumes): an org's filesystem that outlives sandboxes,
mounted read-write at create, shared between sandboxes, kept across a server
restart, refused deletion while mounted, its life in the event log."""
import os
import unittest

from harness import Server, ServerTest, eventually, main


class VolumeTest(ServerTest):
    @classmethod
    def setUpClass(cls):
        cls.server = Server(["--volume-size-mb", "64", "--max-volumes-per-org", "3"])
        cls.addClassCleanup(cls.server.cleanup)

    def make(self, name):
        r = self.server.request("POST", "/volumes", {"name": name})
        self.assertStatus(r, 201)
        self.addCleanup(self.server.request, "DELETE", f"/volumes/{r.json['volumeID']}")
        return r.json

    def mounted(self, name, path="/mnt/data", **fields):
        r = self.server.request("POST", "/sandboxes", {"templateID": "base",
                                                       "volumeMounts": [{"name": name, "path": path}],
                                                       **fields})
        self.assertStatus(r, 201)
        sid = r.json["sandboxID"]
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{sid}")
        return sid, r.json

    def test_crud_in_e2b_shapes(self):
        v = self.make("crud-vol")
        self.assertTrue(v["volumeID"].startswith("vol-"))
        self.assertEqual(v["name"], "crud-vol")
        self.assertEqual(len(v["token"]), 64)
        got = self.server.request("GET", f"/volumes/{v['volumeID']}")
        self.assertStatus(got, 200)
        self.assertEqual(got.json, v)
        listed = self.server.request("GET", "/volumes").json
        self.assertIn({"volumeID": v["volumeID"], "name": "crud-vol"}, listed)
        self.assertError(self.server.request("POST", "/volumes", {"name": "crud-vol"}), 409,
                         "already exists")
        for bad in ["", "-x", "a/b", "x" * 64, "../etc", 7]:
            self.assertError(self.server.request("POST", "/volumes", {"name": bad}), 400)
        self.assertError(self.server.request("GET", "/volumes/vol-00000000000000000000"), 404)
        self.assertError(self.server.request("GET", "/volumes/..%2F..%2Fetc"), 404)
        # Another org sees none of it.
        other = self.server.new_key("volumes-other-org")
        self.assertError(self.server.request("GET", f"/volumes/{v['volumeID']}", key=other), 404)
        self.assertEqual(self.server.request("GET", "/volumes", key=other).json, [])
        self.assertError(self.server.request("DELETE", f"/volumes/{v['volumeID']}", key=other), 404)
        r = self.server.request("POST", "/sandboxes", {"templateID": "base",
                                                       "volumeMounts": [{"name": "crud-vol", "path": "/data"}]},
                            key=other)
        self.assertError(r, 400, "does not exist")
        self.assertStatus(self.server.request("DELETE", f"/volumes/{v['volumeID']}"), 204)
        self.assertError(self.server.request("GET", f"/volumes/{v['volumeID']}"), 404)
        self.assertError(self.server.request("DELETE", f"/volumes/{v['volumeID']}"), 404)

    def test_limit_per_org(self):
        key = self.server.new_key("volumes-limit-org")
        made = []
        try:
            for i in range(3):
                r = self.server.request("POST", "/volumes", {"name": f"lim{i}"}, key=key)
                self.assertStatus(r, 201)
                made.append(r.json["volumeID"])
            self.assertError(self.server.request("POST", "/volumes", {"name": "lim3"}, key=key), 429,
                             "3 volumes per org")
        finally:
            for vid in made:
                self.server.request("DELETE", f"/volumes/{vid}", key=key)

    def test_bad_mounts_are_refused(self):
        self.make("badmounts")
        for path, words in [("relative", "absolute"), ("/", "root"), ("/proc/x", "reserved"),
                            ("/etc", "reserved"), ("/a/../b", "normalised"),
                            ("/usr/local", "reserved"), ("/" + "x" * 300, "255")]:
            r = self.server.request("POST", "/sandboxes", {
                "templateID": "base", "volumeMounts": [{"name": "badmounts", "path": path}]})
            self.assertError(r, 400, words)
        r = self.server.request("POST", "/sandboxes", {
            "templateID": "base", "volumeMounts": [{"name": "badmounts", "path": "/a"},
                                                   {"name": "badmounts", "path": "/a/b"}]})
        self.assertError(r, 400, "overlap")
        r = self.server.request("POST", "/sandboxes", {
            "templateID": "base", "volumeMounts": [{"name": "nope", "path": "/a"}]})
        self.assertError(r, 400, "does not exist")

    def test_shared_between_sandboxes_and_kept(self):
        v = self.make("shared")
        a, info = self.mounted("shared")
        self.assertEqual(info["volumeMounts"], [{"name": "shared", "path": "/mnt/data"}])
        got = self.server.request("GET", f"/sandboxes/{a}").json
        self.assertEqual(got["volumeMounts"], [{"name": "shared", "path": "/mnt/data"}])
        b, _ = self.mounted("shared", path="/home/user/shared")
        # `user` writes by default (the volume's root is theirs).
        out = self.server.sh(a, "id -u; stat -c '%u:%g %a' /mnt/data; echo hello > /mnt/data/f; ls -A /mnt/data")
        self.assertEqual(out["stdout"].split("\n")[:3], ["1000", "1000:1000 755", "f"])
        # The other sandbox sees it at once: one filesystem.
        self.assertEqual(self.server.sh(b, "cat /home/user/shared/f")["stdout"], "hello\n")
        self.server.sh(b, "echo back > /home/user/shared/g")
        self.assertEqual(self.server.sh(a, "cat /mnt/data/g")["stdout"], "back\n")
        # Root inside owns what it makes as root inside, as anywhere.
        self.server.run(a, "sh", "-c", "touch /mnt/data/r", user="root")
        self.assertEqual(self.server.sh(b, "stat -c %u /home/user/shared/r")["stdout"], "0\n")
        # Its size bounds it: a write past it fails inside.
        out = self.server.run(a, "sh", "-c", "dd if=/dev/zero of=/mnt/data/big bs=1M count=100 2>&1")
        self.assertNotEqual(out.json["exitCode"], 0)
        self.assertIn("No space left", out.json["stdout"])
        self.server.sh(a, "rm /mnt/data/big")
        # Mounted: deletion refused, naming a sandbox.
        self.assertError(self.server.request("DELETE", f"/volumes/{v['volumeID']}"), 409, "mounted")
        # Paused still holds it.
        self.assertStatus(self.server.request("POST", f"/sandboxes/{a}/pause"), 204)
        self.assertStatus(self.server.request("DELETE", f"/sandboxes/{b}"), 204)
        self.assertError(self.server.request("DELETE", f"/volumes/{v['volumeID']}"), 409, a)
        # A cold resume mounts it again.
        r = self.server.request("POST", f"/sandboxes/{a}/connect", {"timeout": 60})
        self.assertIn(r.status, (200, 201))
        self.assertEqual(self.server.sh(a, "cat /mnt/data/f /mnt/data/g")["stdout"], "hello\nback\n")
        self.assertStatus(self.server.request("DELETE", f"/sandboxes/{a}"), 204)
        # A later sandbox finds the files.
        c, _ = self.mounted("shared", path="/data")
        self.assertEqual(self.server.sh(c, "cat /data/f")["stdout"], "hello\n")
        self.assertStatus(self.server.request("DELETE", f"/sandboxes/{c}"), 204)
        # Nothing of it shows on the host's side outside the data dir.
        vol_dir = os.path.join(self.server.dir, "volumes")
        self.assertEqual(os.stat(vol_dir).st_mode & 0o777, 0o700)

    def test_kept_across_restart_and_logged(self):
        v = self.make("durable")
        a, _ = self.mounted("durable")
        self.server.sh(a, "echo kept > /mnt/data/k")
        # `a` keeps running across the restart with the volume mounted.
        self.server.stop()
        self.server.start()
        b, _ = self.mounted("durable")
        self.assertEqual(self.server.sh(b, "cat /mnt/data/k")["stdout"], "kept\n")
        # Still one filesystem for both: the restart took the mount up again.
        self.server.sh(b, "echo after > /mnt/data/after")
        self.assertEqual(self.server.sh(a, "cat /mnt/data/after")["stdout"], "after\n")
        self.assertStatus(self.server.request("DELETE", f"/sandboxes/{a}"), 204)
        self.assertStatus(self.server.request("DELETE", f"/sandboxes/{b}"), 204)
        self.assertStatus(self.server.request("DELETE", f"/volumes/{v['volumeID']}"), 204)
        self.assertFalse(os.path.exists(os.path.join(self.server.dir, "volumes", v["volumeID"])))
        # Both ends of its life are in the org's event log.
        evs = self.server.request(
            "GET", "/events/sandboxes?limit=100&orderAsc=true"
                   "&types=volume.lifecycle.created,volume.lifecycle.deleted").json
        mine = [e for e in evs if e["eventData"].get("volume_id") == v["volumeID"]]
        self.assertEqual([e["type"] for e in mine],
                         ["volume.lifecycle.created", "volume.lifecycle.deleted"])
        self.assertEqual(mine[0]["eventData"]["volume_name"], "durable")
        # The chain still verifies with them in it.
        head = self.server.request("GET", "/events/audit/head")
        self.assertStatus(head, 200)


if __name__ == "__main__":
    main()
