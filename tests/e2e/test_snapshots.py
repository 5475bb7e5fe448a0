"""Snapshots and fork: a sandbox's files frozen into a layer, sandboxes made
from it by id or name, forks that start from the same state, and all of it
surviving a restart; other orgs see none of it."""
import time

from harness import OCI, ServerTest, eventually, main


class SnapTest(ServerTest):
    def sandbox(self, template="base", key="default", **fields):
        r = self.server.request("POST", "/sandboxes", {"templateID": template, **fields}, key=key)
        self.assertStatus(r, 201)
        sid = r.json["sandboxID"]
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{sid}", key=key)
        return sid

    def sh(self, sid, script, user="user", key="default"):
        r = self.server.request("POST", f"/sandboxes/{sid}/processes",
                                {"cmd": "sh", "args": ["-c", script], "user": user}, key=key)
        self.assertStatus(r, 200)
        return r.json

    def snapshot(self, sid, name=None, want=201):
        body = {"name": name} if name is not None else {}
        r = self.server.request("POST", f"/sandboxes/{sid}/snapshots", body)
        self.assertStatus(r, want)
        return r.json

    def prepare(self, sid):
        self.sh(sid, "echo kept > /home/user/data.txt && mkdir -p /home/user/dir/sub")
        self.sh(sid, "rm /etc/issue && echo changed > /etc/motd", user="root")


class Snapshots(SnapTest):
    def test_snapshot_then_create_from_it_by_id_or_name(self):
        src = self.sandbox(metadata={"who": "src"})
        self.prepare(src)
        t0 = time.time()
        snap = self.snapshot(src, "snap-a")
        took = time.time() - t0
        print(f"\n  snapshot of a running base sandbox: {took * 1000:.0f} ms")
        self.assertEqual(snap, {"snapshotID": "snap-a:default", "names": ["snap-a:default"]})
        # The source runs on, untouched.
        self.assertEqual(self.server.request("GET", f"/sandboxes/{src}").json["state"], "running")
        self.assertEqual(self.sh(src, "cat /home/user/data.txt")["stdout"], "kept\n")
        for ref in ["snap-a:default", "snap-a"]:
            with self.subTest(ref=ref):
                t0 = time.time()
                new = self.sandbox(ref)
                print(f"  create from snapshot: {(time.time() - t0) * 1000:.0f} ms")
                got = self.server.request("GET", f"/sandboxes/{new}").json
                self.assertEqual(got["alias"], "snap-a:default")
                out = self.sh(new, "cat /home/user/data.txt; test -d /home/user/dir/sub && echo dir;"
                                   " test -e /etc/issue || echo deleted; cat /etc/motd")
                self.assertEqual(out["stdout"], "kept\ndir\ndeleted\nchanged\n")
                # Writes of the new sandbox stay its own.
                self.sh(new, "echo mine > /home/user/data.txt")
                self.assertEqual(self.sh(src, "cat /home/user/data.txt")["stdout"], "kept\n")
        # An unnamed snapshot is referred to by its id.
        anon = self.snapshot(src)
        self.assertEqual(anon["names"], [])
        self.assertTrue(anon["snapshotID"].endswith(":default"))
        self.sandbox(anon["snapshotID"])
        self.sandbox(anon["snapshotID"].split(":")[0])

    def test_snapshots_stack_and_a_paused_sandbox_stays_paused(self):
        a = self.sandbox()
        self.sh(a, "echo one > /home/user/one")
        self.assertStatus(self.server.request("POST", f"/sandboxes/{a}/pause"), 204)
        s1 = self.snapshot(a, "layer-one")
        self.assertEqual(self.server.request("GET", f"/sandboxes/{a}").json["state"], "paused")
        b = self.sandbox(s1["snapshotID"])
        self.sh(b, "echo two > /home/user/two; rm /home/user/one")
        s2 = self.snapshot(b, "layer-two")
        c = self.sandbox(s2["snapshotID"])
        self.assertEqual(self.sh(c, "ls /home/user")["stdout"], "two\n")

    def test_listing_filters_and_pages(self):
        a, b = self.sandbox(), self.sandbox()
        made = [self.snapshot(a, "list-a1"), self.snapshot(a), self.snapshot(b, "list-b1")]
        r = self.server.request("GET", f"/snapshots?sandboxID={a}")
        self.assertStatus(r, 200)
        self.assertEqual(r.json, [made[1], made[0]])  # newest first
        self.assertEqual(self.server.request("GET", "/snapshots?name=list-b1").json, [made[2]])
        self.assertEqual(self.server.request("GET", "/snapshots?name=list-b1:default").json, [made[2]])
        seen, token = [], None
        while True:
            r = self.server.request("GET", "/snapshots?limit=1" + (f"&nextToken={token}" if token else ""))
            self.assertStatus(r, 200)
            seen += r.json
            token = r.headers.get("X-Next-Token")
            if not token:
                break
        for m in made:
            self.assertIn(m, seen)
        self.assertEqual(len(seen), len({s["snapshotID"] for s in seen}))
        # A newer snapshot of the same name takes the name over.
        self.sh(a, "echo newer > /home/user/which")
        self.snapshot(a, "list-a1")
        self.assertEqual(self.sh(self.sandbox("list-a1"), "cat /home/user/which")["stdout"], "newer\n")

    def test_bad_requests_and_other_orgs(self):
        a = self.sandbox()
        for name in ["a/b", "a:b", "x" * 129, "white space", 5]:
            with self.subTest(name=name):
                r = self.server.request("POST", f"/sandboxes/{a}/snapshots", {"name": name})
                self.assertError(r, 400)
        self.assertError(self.server.request("POST", "/sandboxes/nosuchsandbox0000000/snapshots", {}), 404)
        self.assertError(self.server.request("GET", "/snapshots?limit=0"), 400)
        snap = self.snapshot(a, "private-one")
        other = self.server.new_key("snapshots-other")
        self.assertError(self.server.request("POST", f"/sandboxes/{a}/snapshots", {}, key=other), 404)
        self.assertEqual(self.server.request("GET", "/snapshots", key=other).json, [])
        r = self.server.request("POST", "/sandboxes", {"templateID": snap["snapshotID"]}, key=other)
        self.assertError(r, 400, "unknown template")
        self.assertError(self.server.request("POST", f"/sandboxes/{a}/fork", {}, key=other), 404)


class Fork(SnapTest):
    def test_fork_makes_count_sandboxes_from_the_current_state(self):
        src = self.sandbox(metadata={"team": "blue"}, envVars={"FROM": "src"})
        self.prepare(src)
        before = self.server.request("GET", f"/sandboxes/{src}").json
        t0 = time.time()
        r = self.server.request("POST", f"/sandboxes/{src}/fork", {"count": 3, "timeout": 120})
        print(f"\n  fork x3: {(time.time() - t0) * 1000:.0f} ms")
        self.assertStatus(r, 201)
        self.assertEqual(len(r.json), 3)
        forks = []
        for item in r.json:
            self.assertEqual(set(item), {"sandbox"}, item)
            fid = item["sandbox"]["sandboxID"]
            forks.append(fid)
            self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{fid}")
        self.assertEqual(len(set(forks) | {src}), 4)
        for fid in forks:
            got = self.server.request("GET", f"/sandboxes/{fid}").json
            self.assertEqual(got["metadata"], {"team": "blue"})
            out = self.sh(fid, "cat /home/user/data.txt; echo $FROM")
            self.assertEqual(out["stdout"], "kept\nsrc\n")
        after = self.server.request("GET", f"/sandboxes/{src}").json
        self.assertEqual((after["state"], after["endAt"]), ("running", before["endAt"]))
        # Fork snapshots are not listed.
        self.assertEqual(self.server.request("GET", f"/snapshots?sandboxID={src}").json, [])

    def test_fork_bounds_and_partial_failure(self):
        src = self.sandbox()
        for body in [{"count": 0}, {"count": 101}, {"count": "2"}, {"timeout": -1}]:
            with self.subTest(body=body):
                self.assertError(self.server.request("POST", f"/sandboxes/{src}/fork", body), 400)
        self.assertError(self.server.request("POST", "/sandboxes/nosuchsandbox0000000/fork", {}), 404)


class ForkAtCapacity(SnapTest):
    # Room for the source and two forks: the third fails on its own.
    server_args = ("--max-sandboxes", "3")

    def test_each_fork_reports_its_own_outcome(self):
        src = self.sandbox()
        r = self.server.request("POST", f"/sandboxes/{src}/fork", {"count": 3})
        self.assertStatus(r, 201)
        for item in r.json:
            if "sandbox" in item:
                self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{item['sandbox']['sandboxID']}")
        ok = [x for x in r.json if "sandbox" in x]
        failed = [x for x in r.json if "error" in x]
        self.assertEqual((len(ok), len(failed)), (2, 1), r.json)
        self.assertEqual(failed[0]["error"]["code"], 429)


class AcrossRestart(SnapTest):
    def test_snapshots_and_their_sandboxes_survive_kill_9(self):
        src = self.sandbox()
        self.prepare(src)
        snap = self.snapshot(src, "durable")
        child = self.sandbox("durable")
        self.server.crash()
        self.server.start()
        self.assertEqual(self.sh(child, "cat /home/user/data.txt")["stdout"], "kept\n")
        self.assertEqual(self.server.request("GET", "/snapshots?name=durable").json, [snap])
        later = self.sandbox("durable")
        self.assertEqual(self.sh(later, "cat /etc/motd")["stdout"], "changed\n")


class Deletion(SnapTest):
    """E2B's Sandbox.deleteSnapshot: DELETE /templates/{snapshotID}."""

    def layers(self):
        import os
        d = os.path.join(self.server.dir, "snapshots")
        return set(os.listdir(d)) if os.path.isdir(d) else set()

    def delete(self, ref, key="default"):
        from urllib.parse import quote
        return self.server.request("DELETE", "/templates/" + quote(ref, safe=""), key=key)

    def test_a_snapshot_is_deleted_once_nothing_rests_on_it(self):
        before = self.layers()
        src = self.sandbox()
        self.prepare(src)
        snap = self.snapshot(src, "del-a")["snapshotID"]
        self.assertEqual(len(self.layers() - before), 1)
        on_it = self.sandbox(snap)
        # A sandbox made from it, then a snapshot stacked on it, hold it.
        self.assertError(self.delete(snap), 409, on_it)
        stacked = self.snapshot(on_it, "del-b")["snapshotID"]
        self.assertStatus(self.server.request("DELETE", f"/sandboxes/{on_it}"), 204)
        self.assertError(self.delete(snap), 409, "del-b")
        # Another org does not even see it.
        other = self.server.new_key("snap-deleter")
        self.assertError(self.delete(snap, key=other), 404)
        self.assertStatus(self.delete(stacked), 204)
        self.assertStatus(self.server.request("DELETE", f"/templates/{snap}"), 204)
        # Gone: its files, its listing, sandboxes from it, a second delete.
        self.assertEqual(self.layers(), before)
        self.assertEqual(self.server.request("GET", "/snapshots?name=del-a").json, [])
        r = self.server.request("POST", "/sandboxes", {"templateID": snap})
        self.assertEqual(r.status, 400, r)
        self.assertError(self.delete(snap), 404)
        # The sandbox it was taken from is not touched.
        self.assertEqual(self.sh(src, "cat /home/user/data.txt")["stdout"], "kept\n")

    def test_a_forks_snapshot_goes_with_its_last_fork(self):
        before = self.layers()
        src = self.sandbox()
        r = self.server.request("POST", f"/sandboxes/{src}/fork", {"count": 2})
        self.assertStatus(r, 201)
        forks = [x["sandbox"] for x in r.json]
        for f in forks:
            self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{f['sandboxID']}")
        self.assertEqual(len(self.layers() - before), 1)
        # Deleted by its forks' templateID: refused while they live.
        self.assertError(self.delete(forks[0]["templateID"]), 409, "is in use by sandbox")
        self.assertStatus(self.server.request("DELETE", f"/sandboxes/{forks[0]['sandboxID']}"), 204)
        time.sleep(0.5)
        self.assertEqual(len(self.layers() - before), 1, "the other fork still rests on it")
        self.assertStatus(self.server.request("DELETE", f"/sandboxes/{forks[1]['sandboxID']}"), 204)
        self.assertTrue(eventually(lambda: self.layers() == before))
        self.assertError(self.delete(forks[1]["templateID"]), 404)
        # The catalogue is the operator's.
        self.assertError(self.delete("base"), 403)


class ForkAcrossACrash(Deletion):
    """A fork's snapshot does not outlive its forks when the server was down
    as they ended, or was killed before it could remove the snapshot."""

    def test_a_fork_that_ended_while_the_server_was_down(self):
        import os
        import subprocess
        before = self.layers()
        src = self.sandbox()
        r = self.server.request("POST", f"/sandboxes/{src}/fork", {"count": 1})
        self.assertStatus(r, 201)
        fork = r.json[0]["sandbox"]["sandboxID"]
        self.assertEqual(len(self.layers() - before), 1)
        self.server.crash()
        subprocess.run([OCI, "--root", os.path.join(self.server.dir, "runtime", "state"),
                        "delete", "--force", fork], check=True, capture_output=True)
        self.server.start()
        self.assertTrue(eventually(lambda: self.layers() == before, within=30), self.layers())

    def test_a_crash_right_after_the_last_fork_ended(self):
        before = self.layers()
        src = self.sandbox()
        r = self.server.request("POST", f"/sandboxes/{src}/fork", {"count": 1})
        self.assertStatus(r, 201)
        fork = r.json[0]["sandbox"]["sandboxID"]
        self.assertStatus(self.server.request("DELETE", f"/sandboxes/{fork}"), 204)
        self.server.crash()  # before or after the removal: either way it goes
        self.server.start()
        self.assertTrue(eventually(lambda: self.layers() == before, within=30), self.layers())
        # The sandbox it was forked from is untouched.
        self.assertEqual(self.server.request("GET", f"/sandboxes/{src}").json["state"], "running")

    def test_a_layer_no_snapshot_owns_goes_at_start(self):
        # What a crash between a snapshot's removal from the store and its
        # files' leaves; a snapshot that is still stored keeps its layer.
        import os
        src = self.sandbox()
        kept = self.snapshot(src, "kept-across")["snapshotID"]
        layers = self.layers()
        self.server.crash()
        orphan = os.path.join(self.server.dir, "snapshots", "orphanlayer000000000")
        os.makedirs(os.path.join(orphan, "upper", "deep"))
        with open(os.path.join(orphan, "upper", "deep", "file"), "w") as f:
            f.write("left behind")
        self.server.start()
        self.assertTrue(eventually(lambda: not os.path.exists(orphan), within=30))
        self.assertEqual(self.layers(), layers)
        self.assertStatus(self.server.request("DELETE", f"/templates/{kept}"), 204)

    test_a_snapshot_is_deleted_once_nothing_rests_on_it = None
    test_a_forks_snapshot_goes_with_its_last_fork = None


class ForkWithNoRoom(Deletion):
    # Room for the source only: no fork starts, and its snapshot goes.
    server_args = ("--max-sandboxes", "1")

    def test_a_fork_that_started_nothing_leaves_nothing(self):
        before = self.layers()
        src = self.sandbox()
        r = self.server.request("POST", f"/sandboxes/{src}/fork", {"count": 2})
        self.assertStatus(r, 201)
        self.assertEqual([x["error"]["code"] for x in r.json], [429, 429], r.json)
        self.assertTrue(eventually(lambda: self.layers() == before))

    test_a_snapshot_is_deleted_once_nothing_rests_on_it = None
    test_a_forks_snapshot_goes_with_its_last_fork = None


class SnapshotLimit(Deletion):
    server_args = ("--max-snapshots-per-org", "2")

    def test_an_org_holds_so_many_snapshots(self):
        before = self.layers()
        src = self.sandbox()
        a = self.snapshot(src, "cap-a")["snapshotID"]
        self.snapshot(src, "cap-b")
        # Each is a copy of the sandbox's files: the third is refused, a
        # fork too (its snapshot would be the third), and nothing is copied.
        r = self.server.request("POST", f"/sandboxes/{src}/snapshots", {"name": "cap-c"})
        self.assertError(r, 429, "snapshot limit reached (2 per org")
        self.assertError(self.server.request("POST", f"/sandboxes/{src}/fork", {}), 429,
                         "snapshot limit")
        self.assertEqual(len(self.layers() - before), 2)
        # Another org counts its own.
        other = self.server.new_key("snap-counter")
        theirs = self.sandbox(key=other)
        r = self.server.request("POST", f"/sandboxes/{theirs}/snapshots", {}, key=other)
        self.assertStatus(r, 201)
        self.assertStatus(self.delete(r.json["snapshotID"], key=other), 204)
        # Room again once one is deleted.
        self.assertStatus(self.delete(a), 204)
        self.snapshot(src, "cap-c")

    test_a_snapshot_is_deleted_once_nothing_rests_on_it = None
    test_a_forks_snapshot_goes_with_its_last_fork = None


if __name__ == "__main__":
    main()
