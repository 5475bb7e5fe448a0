"""E2B's lifecycle options: autoPause (on timeout pause instead of kill),
autoResume (the data plane wakes a paused sandbox), how they show in
SandboxDetail.lifecycle, and every way to ask for them wrongly."""
import subprocess
import threading
import os
import time

from harness import Envd, ServerTest, eventually, main

T = "sandbox.lifecycle."


class Lifecycle(ServerTest):
    def make(self, **fields):
        r = self.server.request("POST", "/sandboxes", {"templateID": "base", **fields})
        self.assertStatus(r, 201)
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{r.json['sandboxID']}")
        return r.json

    def detail(self, sid):
        r = self.server.request("GET", f"/sandboxes/{sid}")
        self.assertStatus(r, 200)
        return r.json

    def wait_state(self, sid, state, within=10.0):
        deadline = time.time() + within
        while True:
            got = self.detail(sid)
            if got["state"] == state or time.time() >= deadline:
                return got
            time.sleep(0.2)

    def types(self, sid):
        return [e["type"][len(T):] for e in self.server.events(sid)]

    def test_default_is_kill_on_timeout(self):
        sb = self.make(timeout=1)
        self.assertEqual(self.detail(sb["sandboxID"])["lifecycle"], {"onTimeout": "kill", "autoResume": False})
        time.sleep(2.5)
        self.assertEqual(self.server.request("GET", f"/sandboxes/{sb['sandboxID']}").status, 404)
        self.assertEqual(self.types(sb["sandboxID"]), ["created", "killed"])

    def test_auto_pause_pauses_on_timeout_and_connect_resumes(self):
        sid = self.make(timeout=1, autoPause=True)["sandboxID"]
        self.assertEqual(self.detail(sid)["lifecycle"], {"onTimeout": "pause", "autoResume": False})
        self.assertEqual(self.wait_state(sid, "paused")["state"], "paused")
        self.assertEqual(self.types(sid), ["created", "paused"])
        # No autoResume: the data plane finds it not running.
        envd = Envd(self.server, self.detail(sid))
        r = envd.unary("filesystem.Filesystem/Stat", {"path": "/"})
        self.assertIn(r.status, (502, 503), r)  # Connect's "unavailable"
        self.assertIn("paused", r.json["message"])
        self.assertEqual(self.detail(sid)["state"], "paused")
        r = self.server.request("POST", f"/sandboxes/{sid}/connect", {"timeout": 60})
        self.assertStatus(r, 201)
        self.assertEqual(self.detail(sid)["state"], "running")
        self.assertEqual(self.types(sid), ["created", "paused", "resumed"])

    def test_auto_resume_wakes_a_paused_sandbox_on_use(self):
        sid = self.make(timeout=1, autoPause=True, autoResume={"enabled": True})["sandboxID"]
        self.assertEqual(self.detail(sid)["lifecycle"], {"onTimeout": "pause", "autoResume": True})
        # A file written before the pause is still there after the wake-up.
        envd = Envd(self.server, self.detail(sid))
        self.assertEqual(envd.unary("filesystem.Filesystem/MakeDir", {"path": "/home/user/kept"}).status, 200)
        self.wait_state(sid, "paused")
        r = envd.unary("filesystem.Filesystem/Stat", {"path": "/home/user/kept"})
        self.assertEqual(r.status, 200, r)
        got = self.detail(sid)
        self.assertEqual(got["state"], "running")
        self.assertEqual(self.types(sid), ["created", "paused", "resumed"])
        # And when its timeout passes again it pauses again, not dies.
        self.wait_state(sid, "paused", within=5)
        self.assertEqual(self.types(sid), ["created", "paused", "resumed", "paused"])
        # An explicit pause is woken the same way.
        r = envd.unary("filesystem.Filesystem/Stat", {"path": "/"})
        self.assertEqual(r.status, 200, r)

    def cgroup_exists(self, sid):
        import os
        return os.path.exists(f"/sys/fs/cgroup/memory/sandboxd/{sid}")

    def test_a_container_crun_lost_track_of_leaves_no_cgroup(self):
        import glob
        import os
        import shutil
        sid = self.make(timeout=300)["sandboxID"]
        self.assertTrue(self.cgroup_exists(sid))
        # What a `crun run` killed mid-start leaves: the container's processes
        # gone, its cgroups in place, and no crun state that names them.
        with open(f"/sys/fs/cgroup/unified/sandboxd/{sid}/cgroup.kill", "w") as f:
            f.write("1")
        deadline = time.time() + 10
        while time.time() < deadline:
            with open(f"/sys/fs/cgroup/pids/sandboxd/{sid}/cgroup.procs") as f:
                if not f.read().strip():
                    break
            time.sleep(0.05)
        shutil.rmtree(os.path.join(self.server.dir, "runtime", "state", sid))
        try:
            self.assertStatus(self.server.request("DELETE", f"/sandboxes/{sid}"), 204)
            eventually(lambda: not glob.glob(f"/sys/fs/cgroup/*/sandboxd/{sid}"))
            self.assertEqual(glob.glob(f"/sys/fs/cgroup/*/sandboxd/{sid}"), [])
        finally:
            for left in glob.glob(f"/sys/fs/cgroup/*/sandboxd/{sid}"):
                os.rmdir(left)  # what a failure left: this test's own, empty

    def sh(self, sid, script):
        r = self.server.request("POST", f"/sandboxes/{sid}/processes", {"cmd": "sh", "args": ["-c", script]})
        self.assertStatus(r, 200)
        return r.json["stdout"]

    def procs_of(self, sid):
        """Pids in the sandbox's cgroup; [] once it is gone."""
        try:
            with open(f"/sys/fs/cgroup/pids/sandboxd/{sid}/cgroup.procs") as f:
                return f.read().split()
        except FileNotFoundError:
            return []

    def test_kill_answers_once_every_process_is_gone_frozen_or_not(self):
        # Processes that ignore every signal they can, fork, and detach; one
        # sandbox left running, one frozen by a pause that keeps memory (a
        # frozen task dies only once thawed). The kill answers after the
        # processes are gone; what they leave is removed just after.
        import glob
        script = ("trap '' TERM INT HUP; for i in 1 2 3; do setsid sh -c "
                  "'trap \"\" TERM; sleep 1000' >/dev/null 2>&1 </dev/null & done; "
                  "setsid sh -c 'while :; do :; done' >/dev/null 2>&1 </dev/null &")
        running = self.make(timeout=300)["sandboxID"]
        frozen = self.make(timeout=300)["sandboxID"]
        for sid in (running, frozen):
            self.sh(sid, script)
            self.assertGreaterEqual(len(self.procs_of(sid)), 5)
        self.assertStatus(self.server.request("POST", f"/sandboxes/{frozen}/pause"), 204)
        with open(f"/sys/fs/cgroup/freezer/sandboxd/{frozen}/freezer.state") as f:
            self.assertEqual(f.read().strip(), "FROZEN")
        for sid in (running, frozen):
            self.assertStatus(self.server.request("DELETE", f"/sandboxes/{sid}"), 204)
            self.assertEqual(self.procs_of(sid), [], "a process outlived the kill")
            self.assertEqual(self.types(sid)[-1], "killed")
        for sid in (running, frozen):
            self.assertTrue(eventually(lambda: not glob.glob(f"/sys/fs/cgroup/*/sandboxd/{sid}")))
            self.assertTrue(eventually(
                lambda: not os.path.exists(os.path.join(self.server.dir, "sandboxes", sid))))
            with open("/proc/mounts") as f:
                self.assertNotIn(sid, f.read())
            self.assertFalse(os.path.exists(os.path.join(self.server.dir, "runtime", "state", sid)))

    def test_pause_without_memory_frees_it_and_resume_boots_on_the_files(self):
        sid = self.make(timeout=300)["sandboxID"]
        self.sh(sid, "echo kept > /home/user/file; setsid sleep 1000 >/dev/null 2>&1 < /dev/null &")
        self.assertIn("sleep 1000", self.sh(sid, "ps -eo args"))
        self.assertTrue(self.cgroup_exists(sid))
        r = self.server.request("POST", f"/sandboxes/{sid}/pause", {"memory": False})
        self.assertStatus(r, 204)
        self.assertEqual(self.detail(sid)["state"], "paused")
        self.assertFalse(self.cgroup_exists(sid), "a cold pause keeps no container")
        self.assertError(self.server.request("POST", f"/sandboxes/{sid}/pause", {"memory": False}), 409)
        r = self.server.request("POST", f"/sandboxes/{sid}/connect", {"timeout": 300})
        self.assertStatus(r, 201)
        self.assertEqual(self.sh(sid, "cat /home/user/file"), "kept\n")
        self.assertNotIn("sleep 1000", self.sh(sid, "ps -eo args"), "booted fresh")
        self.assertEqual(self.types(sid), ["created", "paused", "resumed"])
        self.assertError(self.server.request("POST", f"/sandboxes/{sid}/pause", {"memory": "no"}), 400, "memory")

    def test_cold_resume_never_mounts_a_disk_whose_filesystem_is_still_alive(self):
        # A mount namespace copied while the disk was mounted (any container
        # being set up at that moment, the warm pool's refills included) holds
        # its filesystem after the cold pause unmounted it. A second live ext4
        # on the same image would miss what the first still holds and be
        # corrupted by its late writes: the resume waits for the first to go.
        sid = self.make(timeout=300)["sandboxID"]
        self.sh(sid, "head -c 300000 /dev/urandom | base64 > /home/user/data; sha256sum /home/user/data")
        digest = self.sh(sid, "sha256sum < /home/user/data")
        holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sleep", "60"])
        try:
            time.sleep(0.3)  # the copy of the host's mounts exists
            self.assertStatus(self.server.request("POST", f"/sandboxes/{sid}/pause", {"memory": False}), 204)
            # Held for longer than a resume waits: refused with the reason.
            r = self.server.request("POST", f"/sandboxes/{sid}/connect", {"timeout": 300})
            self.assertError(r, 503, "still in use")
            self.assertEqual(self.detail(sid)["state"], "paused")
            # Released while a resume waits: it boots on everything written.
            threading.Timer(1.0, holder.kill).start()
            r = self.server.request("POST", f"/sandboxes/{sid}/connect", {"timeout": 300})
            self.assertStatus(r, 201)
            self.assertEqual(self.sh(sid, "sha256sum < /home/user/data"), digest)
        finally:
            holder.kill()
            holder.wait()

    def test_auto_pause_without_memory_and_a_restart_in_between(self):
        sid = self.make(timeout=1, autoPause=True, autoPauseMemory=False)["sandboxID"]
        self.sh(sid, "echo kept > /home/user/file")
        self.assertEqual(self.wait_state(sid, "paused")["state"], "paused")
        self.assertFalse(self.cgroup_exists(sid))
        self.server.crash()
        self.server.start()
        self.assertEqual(self.detail(sid)["state"], "paused", "still paused after a restart, not orphaned")
        self.assertStatus(self.server.request("POST", f"/sandboxes/{sid}/connect", {"timeout": 300}), 201)
        self.assertEqual(self.sh(sid, "cat /home/user/file"), "kept\n")

    def test_bad_lifecycle_requests(self):
        before = self.server.request("GET", "/sandboxes").json
        cases = [
            ({"autoPause": "yes"}, "autoPause"),
            ({"autoPause": 1}, "autoPause"),
            ({"autoPauseMemory": "no"}, "autoPauseMemory"),
            ({"autoResume": True}, "autoResume"),
            ({"autoResume": {"enabled": "true"}}, "autoResume"),
            ({"autoResume": {"enabled": True}}, "autoPause"),
            ({"autoPause": True, "autoPauseMemory": False, "autoResume": {"enabled": True}}, "autoPauseMemory"),
        ]
        for fields, word in cases:
            with self.subTest(fields=fields):
                r = self.server.request("POST", "/sandboxes", {"templateID": "base", **fields})
                self.assertError(r, 400, word)
        self.assertEqual(self.server.request("GET", "/sandboxes").json, before)



def loops_backing(prefix):
    """Loop devices whose backing file lies under `prefix`."""
    found = []
    for dev in os.listdir("/sys/block"):
        try:
            with open(f"/sys/block/{dev}/loop/backing_file") as f:
                if f.read().strip().startswith(prefix):
                    found.append(dev)
        except OSError:
            pass
    return found


class ReadyDisks(ServerTest):
    """Sandbox disks made ahead: a create moves one into place instead of
    copying, attaching and mounting a new one; they sit in no mount table and
    die with the server."""
    server_args = ("--warm-pool", "0", "--sandbox-disk-mb", "256")

    def ready_disks(self):
        for line in self.server.request("GET", "/metrics", key=None).raw.decode().splitlines():
            if line.startswith("sandboxd_ready_disks "):
                return int(line.split()[1])
        return -1

    def ready_images(self):
        d = os.path.join(self.server.dir, "runtime", "disks", "ready")
        return {os.stat(os.path.join(d, n)).st_ino: n for n in os.listdir(d)} if os.path.isdir(d) else {}

    def test_a_create_takes_a_disk_made_ahead_and_the_server_makes_the_next(self):
        self.assertTrue(eventually(lambda: self.ready_disks() == 4, within=20), self.ready_disks())
        ready = self.ready_images()
        self.assertEqual(len(ready), 4)
        with open("/proc/self/mountinfo") as f:
            self.assertNotIn("/disks/ready", f.read(), "a disk made ahead is in no mount table")
        sid = self.server.create(timeout=300)
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{sid}")
        sdir = os.path.join(self.server.dir, "sandboxes", sid)
        self.assertIn(os.stat(os.path.join(sdir, "disk.img")).st_ino, ready,
                      "the sandbox's image is one made ahead, moved")
        with open("/proc/self/mounts") as f:
            mounts = [line.split() for line in f]
        disk = [m for m in mounts if m[1] == os.path.join(sdir, "disk")]
        self.assertEqual(len(disk), 1, "its disk is mounted where a fresh one would be")
        self.assertEqual(disk[0][2], "ext4")
        # No background zeroing or bitmap reads by the kernel for it.
        self.assertTrue({"nosuid", "nodev", "noinit_itable", "no_prefetch_block_bitmaps"}
                        <= set(disk[0][3].split(",")), disk[0][3])
        self.assertEqual(os.stat(os.path.join(sdir, "disk")).st_mode & 0o777, 0o700)
        # A blank disk is a few hundred KB on the host (no reserved group
        # descriptors to copy), whatever its size inside.
        self.assertLess(os.stat(os.path.join(sdir, "disk.img")).st_blocks * 512, 1 << 20)
        # It is the sandbox's own disk, of the size asked for, and writable.
        out = self.server.sh(sid, "echo kept > /home/user/f && cat /home/user/f && df -m / | tail -1")["stdout"]
        self.assertTrue(out.startswith("kept\n"), out)
        self.assertIn(int(out.split()[2]), range(128, 257), out)  # of 256 MB: ext4 keeps some
        # The next create finds one again.
        self.assertTrue(eventually(lambda: self.ready_disks() == 4, within=20), self.ready_disks())
        # A cold pause unmounts it and a resume mounts the same image again.
        self.assertStatus(self.server.request("POST", f"/sandboxes/{sid}/pause", {"memory": False}), 204)
        self.assertStatus(self.server.request("POST", f"/sandboxes/{sid}/connect", {"timeout": 300}), 201)
        self.assertEqual(self.server.sh(sid, "cat /home/user/f")["stdout"], "kept\n")
        with open("/proc/self/mounts") as f:
            disk = [line.split() for line in f if line.split()[1] == os.path.join(sdir, "disk")]
        self.assertEqual(len(disk), 1)
        self.assertIn("noinit_itable", disk[0][3].split(","), "mounted again the same way")

    def test_disks_made_ahead_die_with_the_server_and_a_restart_removes_their_images(self):
        self.assertTrue(eventually(lambda: self.ready_disks() == 4, within=20))
        before = self.ready_images()
        prefix = os.path.join(self.server.dir, "runtime", "disks", "ready") + "/"
        self.assertEqual(len(loops_backing(prefix)), 4)
        self.server.crash()
        self.assertTrue(eventually(lambda: not loops_backing(prefix), within=10),
                        f"loop devices outlived the server: {loops_backing(prefix)}")
        self.server.start()
        self.assertTrue(eventually(lambda: self.ready_disks() == 4, within=20))
        after = self.ready_images()
        self.assertEqual(len(after), 4)
        self.assertFalse(set(before.values()) & set(after.values()), "the dead server's images are gone")
        self.server.stop()
        self.assertTrue(eventually(lambda: not loops_backing(prefix), within=10))
        self.server.start()


if __name__ == "__main__":
    main()
