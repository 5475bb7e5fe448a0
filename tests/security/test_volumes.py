"""Volumes are the one filesystem sandboxes share: hostile code in one may
try to use it against the host or against the sandboxes that share it. These
tests act as root inside real sandboxes and look at the result from the host
and from the other sandbox: setuid files, device nodes, hard links out of
the volume, symlinks, filling it up, and another org's volume."""
import os
import stat

from harness import Server, ServerTest, main


def mountinfo_options(path):
    """The per-mount options of the mount at `path` (host's view)."""
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            if parts[4] == real:
                return parts[5].split(",")
    raise AssertionError(f"{real} is not a mount point")


class HostileVolumeTest(ServerTest):
    @classmethod
    def setUpClass(cls):
        cls.server = Server(["--volume-size-mb", "32"])
        cls.addClassCleanup(cls.server.cleanup)

    def setUp(self):
        r = self.server.request("POST", "/volumes", {"name": f"hostile-{self._testMethodName[-20:]}"})
        self.assertStatus(r, 201)
        self.vol = r.json
        self.addCleanup(self.server.request, "DELETE", f"/volumes/{self.vol['volumeID']}")

    def sandbox(self, path="/mnt/v"):
        r = self.server.request("POST", "/sandboxes", {
            "templateID": "base", "volumeMounts": [{"name": self.vol["name"], "path": path}]})
        self.assertStatus(r, 201)
        sid = r.json["sandboxID"]
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{sid}")
        return sid

    def root(self, sid, script):
        r = self.server.run(sid, "sh", "-c", script, user="root")
        self.assertStatus(r, 200)
        return r.json

    def host_dir(self):
        return os.path.join(self.server.dir, "volumes", self.vol["volumeID"], "disk")

    def test_setuid_root_file_gives_nobody_root(self):
        a, b = self.sandbox(), self.sandbox("/srv/v")
        out = self.root(a, "cp /bin/sh /mnt/v/rootsh && chown 0:0 /mnt/v/rootsh && chmod 4755 /mnt/v/rootsh"
                           " && stat -c %a /mnt/v/rootsh")
        self.assertEqual(out["stdout"].strip(), "4755")
        # `user` in the other sandbox runs it: nosuid, no root there.
        out = self.server.sh(b, "/srv/v/rootsh -p -c 'id -u; id -g'")
        self.assertEqual(out["stdout"].split(), ["1000", "1000"])
        # On the host: the raw file is a root-owned setuid file, unreachable
        # for any host user (the volumes dir is root's alone) and on a
        # nosuid, nodev mount.
        raw = os.stat(os.path.join(self.host_dir(), "rootsh"))
        self.assertEqual(raw.st_uid, 0)
        self.assertTrue(raw.st_mode & stat.S_ISUID)
        vols = os.stat(os.path.join(self.server.dir, "volumes"))
        self.assertEqual(vols.st_mode & 0o777, 0o700)
        self.assertEqual(vols.st_uid, 0)
        opts = mountinfo_options(self.host_dir())
        self.assertIn("nosuid", opts)
        self.assertIn("nodev", opts)

    def test_no_device_nodes_no_hard_links_out(self):
        a = self.sandbox()
        out = self.server.run(a, "sh", "-c", "mknod /mnt/v/mem c 1 1 2>&1; echo rc=$?", user="root").json
        self.assertIn("rc=1", out["stdout"])
        self.assertFalse(os.path.exists(os.path.join(self.host_dir(), "mem")))
        # A hard link to a file outside the volume cannot be made (another filesystem).
        out = self.server.run(a, "sh", "-c", "ln /etc/passwd /mnt/v/h 2>&1; echo rc=$?", user="root").json
        self.assertIn("rc=1", out["stdout"])
        self.assertIn("cross-device", out["stdout"].lower())

    def test_symlinks_resolve_inside_each_sandbox(self):
        a, b = self.sandbox(), self.sandbox("/srv/v")
        secret = os.path.join(self.server.dir, "host-secret")
        with open(secret, "w") as f:
            f.write("host only\n")
        self.addCleanup(os.remove, secret)
        self.root(a, f"ln -s / /mnt/v/root && ln -s {secret} /mnt/v/secret && ln -s ../../.. /mnt/v/up")
        # Through the other sandbox, every link points into that sandbox.
        out = self.server.run(b, "sh", "-c", "cat /srv/v/secret 2>&1; ls /srv/v/root/.sandboxd").json
        self.assertNotIn("host only", out["stdout"])
        self.assertIn("agent", out["stdout"])
        # The host's raw view holds the links as links, never followed.
        self.assertTrue(os.path.islink(os.path.join(self.host_dir(), "root")))
        with open(secret) as f:
            self.assertEqual(f.read(), "host only\n")

    def test_filling_it_stays_inside(self):
        a = self.sandbox()
        st = os.statvfs(self.server.dir)
        before = st.f_bavail * st.f_frsize
        out = self.server.run(a, "sh", "-c",
                              "dd if=/dev/zero of=/mnt/v/fill bs=1M count=200 2>&1; echo rc=$?").json
        self.assertIn("No space left", out["stdout"])
        used = self.server.sh(a, "du -sm /mnt/v/fill | cut -f1")["stdout"].strip()
        self.assertLessEqual(int(used), 32)
        st = os.statvfs(self.server.dir)
        # Sparse image: at most its size, never what was asked for.
        self.assertGreater(st.f_bavail * st.f_frsize, before - (48 << 20))
        self.server.sh(a, "rm /mnt/v/fill")

    def test_another_org_cannot_mount_or_delete_it(self):
        other = self.server.new_key("hostile-volume-org")
        r = self.server.request("POST", "/sandboxes", {
            "templateID": "base", "volumeMounts": [{"name": self.vol["name"], "path": "/mnt/v"}]},
            key=other)
        self.assertError(r, 400, "does not exist")
        self.assertError(self.server.request("DELETE", f"/volumes/{self.vol['volumeID']}", key=other), 404)
        self.assertStatus(self.server.request("GET", f"/volumes/{self.vol['volumeID']}"), 200)


if __name__ == "__main__":
    main()
