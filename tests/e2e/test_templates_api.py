"""Templates over the API, for real: the catalogue listed for every org
(GET /templates, /v2/templates, aliases), an org's own template built from a
declarative spec (base + the Debian package jq, env, a start command) with
its progress visible through the build status route, sandboxes made from it
(and from a snapshot of one), a build that fails on an unknown package, a
rebuild interrupted by a restart, a template of env only (its parent's files
linked, no build), delete, and another org that sees none of it.

Two real builds (mmdebstrap, ~30-60 s each with the shared apt cache), both
queued when the class starts; a third is started only to be interrupted.
The built root filesystems live in the server's own data dir
(<data>/templates), removed with it; the shared template cache gets nothing
but the .debs apt downloads (its apt-archives).
"""
import os
import subprocess
import time

from harness import ServerTest, main

TEMPLATE_KEYS = {"templateID", "buildID", "cpuCount", "memoryMB", "diskSizeMB", "public",
                 "aliases", "names", "createdAt", "updatedAt", "createdBy", "lastSpawnedAt",
                 "spawnCount", "buildCount", "buildStatus", "envdVersion"}

START_CMD = ('printf "%s|%s|%s\\n" "$GREETING" "$(id -un)" "$(pwd)" > /workspace/started.txt;'
             ' sleep 1000')


class TemplatesApi(ServerTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        s = cls.server
        cls.addClassCleanup(cls.no_build_left)
        cls.t0 = time.time()
        r = s.request("POST", "/templates", {
            "name": "jq-tools", "extends": "base", "packages": ["jq"],
            "env": {"GREETING": "hello from the template", "LANG": "C"},
            "startCmd": START_CMD, "cpuCount": 1, "memoryMB": 384})
        assert r.status == 202, r
        cls.good = r.json
        # Right after the POST the first build has not finished: no sandbox yet.
        cls.early = s.request("POST", "/sandboxes", {"templateID": "jq-tools"})
        r = s.request("POST", "/templates", {"name": "broken",
                                             "packages": ["jq", "sandboxd-no-such-package"]})
        assert r.status == 202, r
        cls.bad = r.json
        cls.polls = {}

    @classmethod
    def no_build_left(cls):
        """Before the harness removes the data dir: no build may still run in
        it and nothing may be mounted inside it."""
        deadline = time.time() + 120
        while time.time() < deadline:
            busy = subprocess.run(["pgrep", "-f", f"mmdebstrap.*{cls.server.dir}"],
                                  capture_output=True).returncode == 0
            if not busy:
                break
            time.sleep(1)
        with open("/proc/self/mounts") as f:
            for line in f:
                target = line.split()[1]
                if target.startswith(cls.server.dir + "/templates"):
                    subprocess.run(["umount", "-l", target], capture_output=True)

    # -- helpers ----------------------------------------------------------------

    def status(self, tid, bid, key="default", **query):
        from urllib.parse import urlencode
        return self.server.request("GET", f"/templates/{tid}/builds/{bid}/status?{urlencode(query)}",
                                   key=key)

    def wait_build(self, created, timeout=600):
        """Polls the status route as the SDK does (logsOffset += entries);
        returns (final status body, every entry, status seen, entries per poll)."""
        tid, bid = created["templateID"], created["buildID"]
        if bid in self.polls:
            return self.polls[bid]
        entries, seen, sizes = [], [], []
        deadline = time.time() + timeout
        while True:
            r = self.status(tid, bid, logsOffset=len(entries))
            self.assertStatus(r, 200)
            body = r.json
            self.assertEqual(set(body) - {"reason"}, {"templateID", "buildID", "status",
                                                      "logEntries", "logs"})
            self.assertEqual((body["templateID"], body["buildID"]), (tid, bid))
            entries += body["logEntries"]
            sizes.append(len(entries))
            if not seen or seen[-1] != body["status"]:
                seen.append(body["status"])
            if body["status"] in ("ready", "error"):
                # The SDK reads on until a page comes back empty.
                tail = self.status(tid, bid, logsOffset=len(entries)).json
                entries += tail["logEntries"]
                self.polls[bid] = (body, entries, seen, sizes)
                return self.polls[bid]
            self.assertLess(time.time(), deadline, f"build {bid} still {body['status']}")
            time.sleep(1)

    def sandbox(self, template, key="default"):
        r = self.server.request("POST", "/sandboxes", {"templateID": template}, key=key)
        self.assertStatus(r, 201)
        sid = r.json["sandboxID"]
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{sid}", key=key)
        return r.json

    def sh(self, sid, script):
        r = self.server.request("POST", f"/sandboxes/{sid}/processes",
                                {"cmd": "sh", "args": ["-c", script]})
        self.assertStatus(r, 200)
        return r.json

    # -- the catalogue ------------------------------------------------------------

    def test_catalogue_is_listed_for_every_org(self):
        r = self.server.request("GET", "/templates")
        self.assertStatus(r, 200)
        by_id = {t["templateID"]: t for t in r.json}
        base = by_id["base"]
        self.assertEqual(set(base), TEMPLATE_KEYS)
        self.assertEqual(base["public"], True)
        self.assertEqual(base["buildStatus"], "ready")
        self.assertEqual(base["aliases"], ["standard"])
        self.assertEqual(base["names"], ["base", "standard"])
        self.assertEqual((base["cpuCount"], base["memoryMB"]), (2, 512))
        self.assertIsNone(base["createdBy"])
        self.assertEqual(base["envdVersion"], "0.6.13")
        for name in ["code_interpreter", "agent", "browser", "cua", "canvas"]:
            self.assertIn(name, by_id)
        # The catalogue's templates are the same for a brand-new org.
        other = self.server.new_key("templates-fresh-org")
        theirs = self.server.request("GET", "/templates", key=other).json
        self.assertEqual({t["templateID"] for t in theirs if t["public"]},
                         {t["templateID"] for t in r.json if t["public"]})
        self.assertEqual([t for t in theirs if not t["public"]], [])
        # A catalogue template's one build.
        st = self.status("base", base["buildID"])
        self.assertStatus(st, 200)
        self.assertEqual(st.json["status"], "ready")
        self.assertError(self.status("base", "nosuchbuild"), 404)
        full = self.server.request("GET", "/templates/standard").json
        self.assertEqual(full["templateID"], "base")
        self.assertEqual([b["buildID"] for b in full["builds"]], [base["buildID"]])

    def test_v2_listing_pages_with_a_cursor(self):
        all_ = self.server.request("GET", "/v2/templates").json
        seen, token, pages = [], None, 0
        while True:
            r = self.server.request("GET", "/v2/templates?limit=2" + (f"&nextToken={token}" if token else ""))
            self.assertStatus(r, 200)
            self.assertLessEqual(len(r.json), 2)
            seen += [t["templateID"] for t in r.json]
            pages += 1
            token = r.headers.get("X-Next-Token")
            if not token:
                break
        self.assertEqual(seen, [t["templateID"] for t in all_])
        self.assertGreaterEqual(pages, 3)
        self.assertError(self.server.request("GET", "/v2/templates?nextToken=garbage"), 400)
        self.assertError(self.server.request("GET", "/v2/templates?limit=0"), 400)

    def test_alias_lookup(self):
        for alias, tid in [("base", "base"), ("standard", "base"), ("canvas", "canvas")]:
            r = self.server.request("GET", f"/templates/aliases/{alias}")
            self.assertStatus(r, 200)
            self.assertEqual(r.json, {"templateID": tid, "public": True})
        self.assertError(self.server.request("GET", "/templates/aliases/no-such-template"), 404)
        r = self.server.request("GET", "/templates/aliases/jq-tools")
        self.assertStatus(r, 200)
        self.assertEqual(r.json, {"templateID": self.good["templateID"], "public": False})

    # -- an org's own template ------------------------------------------------------

    def test_update_keeps_an_orgs_template_its_own(self):
        tid = self.good["templateID"]
        for path in (f"/templates/{tid}", "/v2/templates/jq-tools"):
            with self.subTest(path=path):
                r = self.server.request("PATCH", path, {"public": False})
                self.assertStatus(r, 200)
                self.assertEqual(r.json, {"names": ["jq-tools"]})
                self.assertError(self.server.request("PATCH", path, {"public": True}), 400,
                                 "not offered")
                self.assertError(self.server.request("PATCH", path, {"aliases": ["x"]}), 400,
                                 "unknown field")
                self.assertError(self.server.request("PATCH", path, {"public": "yes"}), 400)
        self.assertError(self.server.request("PATCH", "/v2/templates/base", {"public": False}), 403)
        self.assertError(self.server.request("PATCH", "/v2/templates/nope", {}), 404)
        other = self.server.new_key("templates-patch-other-org")
        self.assertError(self.server.request("PATCH", f"/v2/templates/{tid}", {}, key=other), 404)
        listed = self.server.request("GET", f"/templates/{tid}").json
        self.assertFalse(listed["public"])

    def test_create_answers_with_the_new_build(self):
        self.assertEqual(set(self.good), {"templateID", "buildID", "names", "aliases", "public", "tags"})
        self.assertEqual(self.good["names"], ["jq-tools"])
        self.assertEqual(self.good["aliases"], ["jq-tools"])
        self.assertEqual(self.good["public"], False)
        self.assertEqual(self.good["tags"], [])
        self.assertRegex(self.good["templateID"], r"^[a-z0-9]{20}$")
        self.assertError(self.early, 409, "still building")

    def test_bad_specs_are_refused(self):
        cases = [
            ({}, 400, "name is required"),
            ({"name": "Bad Name"}, 400, "name must be"),
            ({"name": "x", "packages": ["jq; rm -rf /"]}, 400, "not a Debian package name"),
            ({"name": "x", "packages": "jq"}, 400, "packages must be a list"),
            ({"name": "x", "run": ["curl evil | sh"]}, 400, "Debian packages only"),
            ({"name": "x", "steps": [{"type": "RUN", "args": ["id"]}]}, 400, "Debian packages only"),
            ({"name": "x", "dockerfile": "FROM x"}, 400, "Debian packages only"),
            ({"name": "x", "colour": 1}, 400, "unknown field"),
            ({"name": "x", "env": {"E2B_SANDBOX_ID": "spoof"}}, 400, "reserved"),
            ({"name": "x", "env": {"A": 1}}, 400, "must be a string"),
            ({"name": "x", "cpuCount": 9}, 400, "cpuCount must be an integer from 1 to 8"),
            ({"name": "x", "memoryMB": 64}, 400, "memoryMB must be an integer from 128 to 16384"),
            ({"name": "x", "startCmd": 5}, 400, "startCmd"),
            ({"name": "x", "extends": "nosuch"}, 400, "extends: unknown template nosuch"),
            ({"name": "base"}, 409, "taken by the catalogue template base"),
            ({"name": "standard"}, 409, "taken by the catalogue template base"),
        ]
        for body, code, message in cases:
            with self.subTest(body=body):
                self.assertError(self.server.request("POST", "/templates", body), code, message)
        self.assertError(self.server.request("POST", "/templates", raw=b"not json"), 400)
        # The org's own template while it builds: no second build of it.
        if self.server.request("GET", "/templates/jq-tools").json["builds"][0]["status"] in ("waiting", "building"):
            self.assertError(self.server.request("POST", "/templates", {"name": "jq-tools"}),
                             409, "already building")

    def test_a_build_shows_progress_then_sandboxes_use_it(self):
        body, entries, seen, sizes = self.wait_build(self.good)
        print(f"\n  jq-tools: {seen} in {time.time() - self.t0:.0f} s since the POST, "
              f"{len(entries)} log entries, growing {sizes[:12]}...")
        self.assertEqual(body["status"], "ready", body)
        self.assertIn("building", seen)
        self.assertNotIn("error", seen)
        self.assertGreater(len(entries), 5)
        self.assertGreater(len(set(sizes)), 2, "the entries did not grow while it built")
        for e in entries:
            self.assertLessEqual(set(e), {"timestamp", "level", "step", "message"})
            self.assertIn(e["level"], ("debug", "info", "warn", "error"))
        self.assertTrue(any("I: success" in e["message"] for e in entries))
        self.assertIn("ready", entries[-1]["message"])
        # Paging by hand: offset and limit, and the level filter.
        page = self.status(self.good["templateID"], self.good["buildID"], logsOffset=2, limit=3).json
        self.assertEqual(page["logEntries"], entries[2:5])
        warn = self.status(self.good["templateID"], self.good["buildID"], level="warn").json
        self.assertTrue(all(e["level"] in ("warn", "error") for e in warn["logEntries"]))

        listed = {t["templateID"]: t for t in self.server.request("GET", "/templates").json}
        mine = listed[self.good["templateID"]]
        self.assertEqual(set(mine), TEMPLATE_KEYS)
        self.assertEqual((mine["public"], mine["buildStatus"], mine["buildID"]),
                         (False, "ready", self.good["buildID"]))
        self.assertEqual((mine["cpuCount"], mine["memoryMB"]), (1, 384))
        self.assertEqual((mine["names"], mine["aliases"]), (["jq-tools"], ["jq-tools"]))

        # By name and by id: jq, the env, the resources, the start command.
        for ref in ["jq-tools", self.good["templateID"]]:
            with self.subTest(ref=ref):
                sb = self.sandbox(ref)
                self.assertEqual(sb["templateID"], self.good["templateID"])
                self.assertEqual(sb["alias"], "jq-tools")
                self.assertEqual((sb["cpuCount"], sb["memoryMB"]), (1, 384))
                sid = sb["sandboxID"]
                out = self.sh(sid, "echo '{\"a\": [1, 2]}' | jq -c '.a | add'; echo \"$GREETING\"; echo $LANG")
                self.assertEqual(out["stdout"], "3\nhello from the template\nC\n", out)
                deadline = time.time() + 30
                while True:
                    out = self.sh(sid, "cat /workspace/started.txt 2>/dev/null")
                    if out["stdout"] or time.time() > deadline:
                        break
                    time.sleep(0.3)
                self.assertEqual(out["stdout"], "hello from the template|user|/workspace\n")
                # The start command runs on in the background.
                self.assertIn("sleep 1000", self.sh(sid, "ps -eo args")["stdout"])
        # A pause without memory ends it; the resumed sandbox boots and runs it again.
        self.assertStatus(self.server.request("POST", f"/sandboxes/{sid}/pause", {"memory": False}), 204)
        self.assertStatus(self.server.request("POST", f"/sandboxes/{sid}/connect", {"timeout": 120}), 201)
        deadline = time.time() + 30
        while "sleep 1000" not in self.sh(sid, "ps -eo args")["stdout"] and time.time() < deadline:
            time.sleep(0.3)
        self.assertIn("sleep 1000", self.sh(sid, "ps -eo args")["stdout"])
        got = self.server.request("GET", f"/templates/{self.good['templateID']}").json
        self.assertEqual(got["spawnCount"], 2)
        self.assertIsNotNone(got["lastSpawnedAt"])
        self.assertEqual([b["status"] for b in got["builds"]], ["ready"])

    def test_an_unknown_package_fails_the_build_with_the_reason(self):
        body, entries, seen, _ = self.wait_build(self.bad)
        print(f"\n  broken: {seen}, reason: {body.get('reason', {}).get('message', '')[:120]}")
        self.assertEqual(body["status"], "error")
        self.assertIn("Unable to locate package sandboxd-no-such-package", body["reason"]["message"])
        self.assertTrue(any(e["level"] == "error" and "sandboxd-no-such-package" in e["message"]
                            for e in body["reason"]["logEntries"]))
        self.assertEqual(entries[-1]["level"], "error")
        r = self.server.request("POST", "/sandboxes", {"templateID": "broken"})
        self.assertError(r, 409, "has no successful build")
        listed = {t["templateID"]: t for t in self.server.request("GET", "/templates").json}
        self.assertEqual(listed[self.bad["templateID"]]["buildStatus"], "error")
        # Nothing of it is left on disk.
        left = [d for d in os.listdir(os.path.join(self.server.dir, "templates"))
                if d.startswith(self.bad["templateID"])]
        self.assertEqual(left, [])

    def test_other_orgs_see_nothing(self):
        other = self.server.new_key("templates-other-org")
        tid, bid = self.good["templateID"], self.good["buildID"]
        listed = self.server.request("GET", "/templates", key=other).json
        self.assertNotIn(tid, [t["templateID"] for t in listed])
        self.assertEqual([t for t in listed if not t["public"]], [])
        self.assertNotIn(tid, [t["templateID"] for t in self.server.request("GET", "/v2/templates", key=other).json])
        for path in [f"/templates/aliases/jq-tools", f"/templates/aliases/{tid}", f"/templates/{tid}",
                     "/templates/jq-tools", f"/templates/{tid}/builds/{bid}/status"]:
            with self.subTest(path=path):
                self.assertError(self.server.request("GET", path, key=other), 404)
        self.assertError(self.server.request("DELETE", f"/templates/{tid}", key=other), 404)
        for ref in ["jq-tools", tid]:
            r = self.server.request("POST", "/sandboxes", {"templateID": ref}, key=other)
            self.assertError(r, 400, "unknown template")
        self.assertError(self.server.request("GET", "/templates", key="e2b_" + "0" * 40), 401)

    def test_z_rebuild_restart_and_delete(self):
        """Last: a rebuild of the same spec (cached: ready at once), a rebuild
        that a restart interrupts, the template still serving its last good
        build, a snapshot resting on it, then delete."""
        body, _, _, _ = self.wait_build(self.good)
        self.assertEqual(body["status"], "ready")
        tid = self.good["templateID"]
        spec = {"name": "jq-tools", "packages": ["jq"], "env": {"GREETING": "hello again"},
                "startCmd": START_CMD, "cpuCount": 1, "memoryMB": 384}
        r = self.server.request("POST", "/templates", spec)
        self.assertStatus(r, 202)
        self.assertEqual(r.json["templateID"], tid)
        self.assertNotEqual(r.json["buildID"], self.good["buildID"])
        again, entries, _, _ = self.wait_build(r.json, timeout=60)
        self.assertEqual(again["status"], "ready")
        self.assertTrue(any("is cached" in e["message"] for e in entries))
        sb = self.sandbox("jq-tools")
        self.assertEqual(self.sh(sb["sandboxID"], "echo $GREETING")["stdout"], "hello again\n")

        # A rebuild with one more package, interrupted by a restart.
        r = self.server.request("POST", "/templates", {**spec, "packages": ["jq", "tree"]})
        self.assertStatus(r, 202)
        cut = r.json
        deadline = time.time() + 60
        while self.status(tid, cut["buildID"]).json["status"] != "building":
            self.assertLess(time.time(), deadline)
            time.sleep(0.2)
        time.sleep(2)
        self.server.stop()
        self.server.start()
        st = self.status(tid, cut["buildID"]).json
        self.assertEqual(st["status"], "error")
        self.assertIn("interrupted by a restart", st["reason"]["message"])
        # What it left is removed once its mmdebstrap (SIGTERMed when the
        # server went) has stopped.
        deadline = time.time() + 120
        while [d for d in os.listdir(os.path.join(self.server.dir, "templates"))
               if d.endswith(".building")]:
            self.assertLess(time.time(), deadline, "the interrupted build's directory stays")
            time.sleep(0.5)
        listed = {t["templateID"]: t for t in self.server.request("GET", "/templates").json}
        self.assertEqual(listed[tid]["buildStatus"], "error")
        self.assertEqual(listed[tid]["buildCount"], 3)
        builds = self.server.request("GET", f"/templates/{tid}").json["builds"]
        self.assertEqual([b["status"] for b in builds], ["error", "ready", "ready"])
        # Sandboxes still start from the last good build.
        sb = self.sandbox("jq-tools")
        out = self.sh(sb["sandboxID"], "jq --version >/dev/null && echo ok; command -v tree || echo no-tree")
        self.assertEqual(out["stdout"], "ok\nno-tree\n")

        # A snapshot of a sandbox of it rests on its files: sandboxes start
        # from the snapshot, and the template cannot be deleted.
        r = self.server.request("POST", f"/sandboxes/{sb['sandboxID']}/snapshots", {"name": "jq-snap"})
        self.assertStatus(r, 201)
        snap = self.sandbox("jq-snap")
        self.assertEqual(self.sh(snap["sandboxID"], "jq -n 1+1")["stdout"], "2\n")
        self.assertError(self.server.request("DELETE", f"/templates/{tid}"), 409, "snapshot jq-snap:default")

        # A template with no packages of its own links its parent's files
        # (no mmdebstrap); delete is refused while a sandbox uses it.
        r = self.server.request("POST", "/templates", {"name": "env-only", "env": {"ONLY": "env"}})
        self.assertStatus(r, 202)
        linked, entries, _, _ = self.wait_build(r.json, timeout=60)
        self.assertEqual(linked["status"], "ready")
        self.assertTrue(any("linking its files" in e["message"] for e in entries))
        eid = r.json["templateID"]
        sb = self.sandbox("env-only")
        self.assertEqual(self.sh(sb["sandboxID"], "echo $ONLY")["stdout"], "env\n")
        self.assertError(self.server.request("DELETE", "/templates/env-only"), 409, "in use by sandbox")
        self.assertError(self.server.request("DELETE", "/templates/base"), 403)
        self.assertStatus(self.server.request("DELETE", f"/sandboxes/{sb['sandboxID']}"), 204)
        self.assertStatus(self.server.request("DELETE", "/templates/env-only"), 204)
        self.assertError(self.server.request("GET", f"/templates/{eid}"), 404)
        self.assertError(self.server.request("GET", "/templates/aliases/env-only"), 404)
        self.assertError(self.server.request("POST", "/sandboxes", {"templateID": "env-only"}), 400)
        self.assertEqual([d for d in os.listdir(os.path.join(self.server.dir, "templates"))
                          if d.startswith(eid)], [])
        self.assertStatus(self.server.request("DELETE", f"/templates/{self.bad['templateID']}"), 204)
        self.assertEqual([t["templateID"] for t in self.server.request("GET", "/templates").json
                          if not t["public"]], [tid])

if __name__ == "__main__":
    main()
