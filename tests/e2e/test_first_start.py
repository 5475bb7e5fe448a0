"""Issue 15 §4: a fast first start. `serve --build-templates background` (what
./ops/run uses) serves at once and builds the catalogue templates it lacks
while it serves, one at a time: GET /templates (and `sandboxd sandbox
templates`) shows how far each is, a create for one not built yet answers 409
saying so (503 once its build failed), and once built it serves sandboxes.
The catalogue is base plus two probes of the test's own: one that cannot be
built (a package Debian does not have) and one like base with a step of its
own, so a real build (~1 min with the cached packages) runs; what they leave
in the template cache is removed."""
import glob
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest
import uuid

from harness import BIN, Server, main

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CACHE = "/var/cache/sandboxd/templates"
PROBES = ("firststart-probe", "broken-probe")


def remove_probes():
    for name in PROBES:
        for d in glob.glob(os.path.join(CACHE, name + "-*")):
            subprocess.run(["umount", "-R", d + "/rootfs"], capture_output=True)
            shutil.rmtree(d, ignore_errors=True)


class FirstStart(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        remove_probes()  # what an earlier run cut short left
        cls.addClassCleanup(remove_probes)
        with open(os.path.join(ROOT, "ops", "templates.json")) as f:
            catalogue = json.load(f)
        base = next(t for t in catalogue["templates"] if t["name"] == "base")
        broken = dict(base, name="broken-probe", aliases=[],
                      packages=base["packages"] + ["sandboxd-no-such-package"])
        probe = dict(base, name="firststart-probe", aliases=[],
                     run=base["run"] + [f"echo {uuid.uuid4().hex} > /etc/firststart-probe"])
        catalogue["templates"] = [base, broken, probe]
        cls.dir = tempfile.mkdtemp(prefix="sandboxd-firststart-")
        cls.addClassCleanup(shutil.rmtree, cls.dir, True)
        cls.catalogue = os.path.join(cls.dir, "templates.json")
        with open(cls.catalogue, "w") as f:
            json.dump(catalogue, f)
        started = time.monotonic()
        cls.server = Server(("--templates", cls.catalogue, "--build-templates", "background",
                             "--warm-pool", "0"))
        cls.addClassCleanup(cls.server.cleanup)
        cls.time_to_serve = time.monotonic() - started

    def templates(self):
        r = self.server.request("GET", "/templates")
        self.assertEqual(r.status, 200, r)
        return {t["templateID"]: t for t in r.json}

    def wait_status(self, name, statuses, within):
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            t = self.templates()[name]
            if t["buildStatus"] in statuses:
                return t
            time.sleep(0.5)
        self.fail(f"{name} never reached {statuses}: {self.templates()[name]}\n{self.server.log()}")

    def create(self, template):
        return self.server.request("POST", "/sandboxes", {"templateID": template})

    def test_serves_at_once_and_builds_the_rest_as_it_serves(self):
        self.assertLess(self.time_to_serve, 30)
        listed = self.templates()
        self.assertEqual(listed["base"]["buildStatus"], "ready")
        self.assertNotIn("buildProgress", listed["base"])
        self.assertIn(listed["firststart-probe"]["buildStatus"], ("waiting", "building"))
        # base serves right away.
        r = self.create("base")
        self.assertEqual(r.status, 201, r)
        self.server.request("DELETE", f"/sandboxes/{r.json['sandboxID']}")

        # Not built yet: told so, with how far it is.
        early = self.create("firststart-probe")
        self.assertEqual(early.status, 409, early)
        self.assertEqual(early.json["code"], 409)
        self.assertRegex(early.json["message"],
                         r"template firststart-probe is (waiting to be built|being built)")

        # A build that fails: 503 with its reason.
        failed = self.wait_status("broken-probe", ("error",), 300)
        self.assertIn("error", failed["buildProgress"])
        r = self.create("broken-probe")
        self.assertEqual(r.status, 503, r)
        self.assertIn("template broken-probe could not be built", r.json["message"])

        # The real build: its progress shows, through the CLI too.
        building = self.wait_status("firststart-probe", ("building", "ready"), 120)
        if building["buildStatus"] == "building":
            r = self.create("firststart-probe")
            self.assertEqual(r.status, 409, r)
            self.assertRegex(r.json["message"], r"is being built \(for \d+ s, \d+ steps so far")
            self.assertIn("startedAt", building["buildProgress"])
            env = dict(os.environ, E2B_API_URL=f"http://127.0.0.1:{self.server.port}",
                       E2B_API_KEY=self.server.key)
            out = subprocess.run([BIN, "sandbox", "templates"], env=env, capture_output=True,
                                 text=True, timeout=60)
            self.assertEqual(out.returncode, 0, out)
            row = next(line for line in out.stdout.splitlines()
                       if line.startswith("firststart-probe"))
            self.assertRegex(row, r"firststart-probe\s+(building|ready)")
        started = time.monotonic()
        self.wait_status("firststart-probe", ("ready",), 900)
        print(f"\ntime to serve: {self.time_to_serve:.1f} s; probe template built "
              f"{time.monotonic() - started:.0f} s after it was seen building")
        r = self.create("firststart-probe")
        self.assertEqual(r.status, 201, r)
        sid = r.json["sandboxID"]
        try:
            out = self.server.run(sid, "cat", "/etc/firststart-probe")
            self.assertEqual(out.status, 200, out)
        finally:
            self.server.request("DELETE", f"/sandboxes/{sid}")


if __name__ == "__main__":
    main()
