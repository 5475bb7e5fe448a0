"""Issue 10 §2: root inside a sandbox is not root outside.

Every sandbox runs in a user namespace of its own: its ids 0..65535 are a
host range no other sandbox holds, templates stay one shared read-only tree
shown to each sandbox through a detached idmapped tree, and the sandbox's own disk
keeps the ids it has inside. These tests act as root inside real sandboxes
and look at the result from the host: processes, files, setuid binaries,
ranges of two sandboxes and across a server restart; then check that root
and `user` still work for commands, files, snapshots, fork and a pause that
frees memory."""
import glob
import os
import stat
import subprocess

from harness import ServerTest, main

RANGE = 65536
TEMPLATE_CACHE = "/var/cache/sandboxd/templates"


def init_pid(server, sid):
    with open(os.path.join(server.dir, "sandboxes", sid, "init.pid")) as f:
        return int(f.read())


def uid_map(pid):
    """[(inside, outside, count)] of a host process, read from the host."""
    with open(f"/proc/{pid}/uid_map") as f:
        return [tuple(int(x) for x in line.split()) for line in f]


def host_uids(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return [int(x) for x in line.split()[1:]]
    raise AssertionError(f"no Uid line for {pid}")


def mount_entry(path):
    """The mountinfo line of the mount at `path` (the topmost one)."""
    found = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == path:
                found = fields
    return found


class UserNamespaceTest(ServerTest):

    def sandbox(self, **fields):
        sid = self.server.create(**fields)
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{sid}")
        return sid

    def base_of(self, sid):
        [(inside, outside, count)] = uid_map(init_pid(self.server, sid))
        self.assertEqual((inside, count), (0, RANGE))
        return outside

    def rootfs(self, sid, path=""):
        """The sandbox's root seen from the host: through its init, the one
        way there (it is mounted in no host mount table)."""
        return os.path.join(f"/proc/{init_pid(self.server, sid)}/root", path.lstrip("/"))

    def test_root_processes_run_as_an_unprivileged_host_uid(self):
        sid = self.sandbox()
        base = self.base_of(sid)
        # The data dir stays private (as under /root): a sandbox's root never
        # needs to pass through it.
        self.assertEqual(stat.S_IMODE(os.stat(self.server.dir).st_mode), 0o700)
        self.assertGreaterEqual(base, RANGE)
        # Inside, root is uid 0 with the whole range mapped...
        out = self.server.sh(sid, "id -u; cat /proc/self/uid_map", user="root")
        lines = out["stdout"].split("\n")
        self.assertEqual(lines[0], "0")
        self.assertEqual(lines[1].split(), ["0", str(base), str(RANGE)])
        # ...and every process of the sandbox, seen from the host, is in it.
        self.server.sh(sid, "setsid -f sleep 60 >/dev/null 2>&1;"
                            " setsid -f su user -c 'exec sleep 60' >/dev/null 2>&1; sleep 0.5",
                       user="root")
        procs = os.path.join("/sys/fs/cgroup/pids/sandboxd", sid, "cgroup.procs")
        with open(procs) as f:
            pids = [int(p) for p in f.read().split()]
        self.assertGreaterEqual(len(pids), 3)
        seen = set()
        for pid in pids:
            try:
                uids = host_uids(pid)
            except FileNotFoundError:
                continue
            for uid in uids:
                self.assertTrue(base <= uid < base + RANGE, f"pid {pid} runs as host uid {uid}")
            seen.add(uids[0] - base)
        self.assertIn(0, seen)
        self.assertIn(1000, seen)

    def test_sudo_gives_user_the_ranges_root_not_the_hosts(self):
        sid = self.sandbox()
        base = self.base_of(sid)
        # As on E2B, `user` has passwordless sudo...
        out = self.server.sh(sid, "id -u; sudo -n id -u")
        self.assertEqual(out["stdout"].split(), ["1000", "0"], out)
        # ...and what it gets is the sandbox's root: seen from the host, the
        # range's first id, with the same seccomp filter.
        self.server.sh(sid, "sudo -n setsid -f sleep 61 >/dev/null 2>&1; sleep 0.5")
        procs = os.path.join("/sys/fs/cgroup/pids/sandboxd", sid, "cgroup.procs")
        with open(procs) as f:
            pids = [int(p) for p in f.read().split()]
        found = False
        for pid in pids:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().split(b"\0")
                uids = host_uids(pid)
                with open(f"/proc/{pid}/status") as f:
                    seccomp = [l.split()[1] for l in f if l.startswith("Seccomp:")]
            except FileNotFoundError:
                continue
            if cmd[:2] == [b"sleep", b"61"]:
                found = True
                self.assertEqual(set(uids), {base})
                self.assertEqual(seccomp, ["2"])
        self.assertTrue(found, "the sudo'd sleep runs")

    def test_files_and_setuid_binaries_of_root_inside_are_not_host_roots(self):
        sid = self.sandbox()
        base = self.base_of(sid)
        # The attack: root inside makes a setuid-root shell and root-owned files.
        self.server.sh(sid, "cp /bin/sh /tmp/rootsh && chmod 4755 /tmp/rootsh"
                            " && echo secret > /root/owned && chmod 600 /root/owned",
                       user="root")
        self.server.sh(sid, "echo mine > /home/user/mine")
        st = os.lstat(self.rootfs(sid, "/tmp/rootsh"))
        self.assertTrue(st.st_mode & stat.S_ISUID)
        self.assertEqual((st.st_uid, st.st_gid), (base, base))
        self.assertEqual(os.lstat(self.rootfs(sid, "/root/owned")).st_uid, base)
        self.assertEqual(os.lstat(self.rootfs(sid, "/home/user/mine")).st_uid, base + 1000)
        # Run from the host (only root gets there, below), the setuid shell
        # changes nobody's ids: a mount of another namespace never honours
        # setuid. It runs with the caller's own ids, never the file owner's.
        r = subprocess.run([self.rootfs(sid, "/tmp/rootsh"), "-p", "-c",
                            "cat /proc/self/status"], capture_output=True, text=True, timeout=30)
        uids = [line.split()[1:] for line in r.stdout.splitlines() if line.startswith("Uid:")]
        self.assertEqual(uids, [["0", "0", "0", "0"]])
        # No other host user even reaches the sandbox's files: the merged
        # root is mounted only in the container's own namespace, at a path
        # under /run (its root resolves that path itself while it starts)
        # below a directory only its range's root group may pass; nothing is
        # mounted at that path on the host.
        root = os.readlink(os.path.join(self.server.dir, "sandboxes", sid, "rootfs"))
        self.assertTrue(root.startswith("/run/sandboxd/roots/"), root)
        self.assertIsNone(mount_entry(root), "the sandbox's root is in no host mount table")
        gate = os.stat(os.path.dirname(root))
        self.assertEqual((gate.st_uid, gate.st_gid, stat.S_IMODE(gate.st_mode)), (0, base, 0o710))
        for path in (os.path.join(root, "tmp"), self.rootfs(sid, "tmp/rootsh")):
            r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                "stat", path], capture_output=True, text=True, timeout=30)
            self.assertNotEqual(r.returncode, 0, path)
            self.assertIn("Permission denied", r.stderr)

    def test_the_template_is_shared_read_only_and_never_chowned(self):
        a, b = self.sandbox(), self.sandbox()
        # The template reaches each overlay as a detached idmapped tree: no
        # path in the host's mount table leads into it (nothing to write or
        # remove through); each sandbox has there only its disk, and its root
        # is an overlay in its own namespace.
        with open("/proc/self/mountinfo") as f:
            targets = [line.split()[4] for line in f]
        for sid in (a, b):
            d = os.path.join(self.server.dir, "sandboxes", sid)
            root = os.readlink(os.path.join(d, "rootfs"))
            mine = sorted(t for t in targets if t.startswith(d + "/") or t.startswith(root))
            self.assertEqual(mine, [os.path.join(d, "disk")])
            with open(f"/proc/{init_pid(self.server, sid)}/mountinfo") as f:
                inside = [line.split() for line in f if line.split()[4] == "/"]
            self.assertEqual(inside[-1][inside[-1].index("-") + 1], "overlay")
        # Same inode in both sandboxes as in the template on disk: one tree,
        # no copy per sandbox, shown as each sandbox's range, never chowned.
        fa = os.stat(self.rootfs(a, "/etc/os-release"))
        fb = os.stat(self.rootfs(b, "/etc/os-release"))
        self.assertEqual(fa.st_ino, fb.st_ino)
        templates = glob.glob(os.path.join(TEMPLATE_CACHE, "base-*", "rootfs", "etc", "os-release"))
        on_disk = [os.stat(t) for t in templates if os.stat(t).st_ino == fa.st_ino]
        self.assertEqual(len(on_disk), 1, templates)
        self.assertEqual(on_disk[0].st_uid, 0)
        self.assertEqual(fa.st_uid, self.base_of(a))
        self.assertEqual(fb.st_uid, self.base_of(b))
        # Root inside cannot change the template for the other sandbox.
        self.server.sh(a, "echo changed >> /etc/os-release", user="root")
        out = self.server.sh(b, "tail -n1 /etc/os-release")
        self.assertNotEqual(out["stdout"].strip(), "changed")
        with open(templates[0]) as f:
            self.assertNotIn("changed", f.read())

    def test_two_sandboxes_and_a_restart_never_share_a_range(self):
        a, b = self.sandbox(), self.sandbox()
        ranges = {self.base_of(a), self.base_of(b)}
        self.assertEqual(len(ranges), 2)
        self.assertGreaterEqual(abs(self.base_of(a) - self.base_of(b)), RANGE)
        # After kill -9 and a restart, a live sandbox keeps its range and a
        # new sandbox gets another one.
        self.server.crash()
        self.server.start()
        c = self.sandbox()
        self.assertNotIn(self.base_of(c), ranges)
        self.assertEqual(self.server.sh(a, "echo alive")["stdout"].strip(), "alive")

    def test_root_and_user_work_through_snapshots_and_a_pause_without_memory(self):
        sid = self.sandbox()
        self.server.sh(sid, "mkdir -p /opt/tool && echo r > /opt/tool/r && chown user /opt/tool",
                       user="root")
        self.server.sh(sid, "echo u > /home/user/u && echo x > /opt/tool/u")
        owners = "stat -c '%U %G %n' /opt/tool /opt/tool/r /opt/tool/u /home/user/u"
        want = ("user root /opt/tool\nroot root /opt/tool/r\nuser user /opt/tool/u\n"
                "user user /home/user/u")
        self.assertEqual(self.server.sh(sid, owners)["stdout"].strip(), want)
        # A snapshot opens in another sandbox's range with the same owners.
        r = self.server.request("POST", f"/sandboxes/{sid}/snapshots", {"name": "userns-snap"})
        self.assertStatus(r, 201)
        copy = self.sandbox(template=r.json["snapshotID"])
        self.assertNotEqual(self.base_of(copy), self.base_of(sid))
        self.assertEqual(self.server.sh(copy, owners)["stdout"].strip(), want)
        self.server.sh(copy, "echo more >> /opt/tool/u && rm /opt/tool/r")
        # Fork and switching users work as root inside.
        out = self.server.sh(copy, "for i in 1 2 3; do (echo $i) & done; wait; su user -c id",
                             user="root")
        self.assertIn("uid=1000(user)", out["stdout"])
        # A pause that frees memory boots again on the kept files, maybe in
        # another range: owners inside do not change.
        self.assertStatus(self.server.request("POST", f"/sandboxes/{sid}/pause",
                                              {"memory": False}), 204)
        self.assertStatus(self.server.request("POST", f"/sandboxes/{sid}/resume", {}), 201)
        self.assertEqual(self.server.sh(sid, owners)["stdout"].strip(), want)
        self.server.sh(sid, "echo again >> /home/user/u")
        self.assertEqual(self.server.sh(sid, "cat /home/user/u")["stdout"], "u\nagain\n")


if __name__ == "__main__":
    main()
