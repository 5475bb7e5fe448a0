"""The E2B control plane and SandBase additions against real crun sandboxes."""
import base64
import os
import socket
import time
import uuid

from harness import ServerTest, eventually, main


class Lifecycle(ServerTest):
    def test_python_prints_two(self):
        sid = self.server.create()
        r = self.server.run(sid, "python3", "-c", "print(1+1)")
        self.assertStatus(r, 200)
        self.assertEqual(r.json["stdout"], "2\n")
        self.assertEqual(r.json["exitCode"], 0)
        self.assertEqual(r.json["stderr"], "")

    def test_create_response_has_e2b_shape(self):
        r = self.server.request("POST", "/v2/sandboxes",
                                {"templateID": "base", "metadata": {"team": "a"},
                                 "envVars": {"GREETING": "hi"}, "timeout": 120})
        self.assertStatus(r, 201)
        s = r.json
        for k in ["sandboxID", "templateID", "alias", "clientID", "envdVersion",
                  "envdAccessToken", "domain", "metadata", "startedAt", "endAt",
                  "status", "state", "cpuCount", "memoryMB", "diskSizeMB"]:
            self.assertIn(k, s)
        self.assertEqual(s["envdVersion"], "0.6.13")
        self.assertEqual(s["state"], "running")
        self.assertEqual(s["cpuCount"], 2)
        self.assertEqual(s["memoryMB"], 512)
        self.assertEqual(s["metadata"], {"team": "a"})
        self.assertIsNone(s["domain"])
        got = self.server.request("GET", f"/sandboxes/{s['sandboxID']}").json
        self.assertEqual(got["sandboxID"], s["sandboxID"])
        envs = self.server.request("GET", f"/sandboxes/{s['sandboxID']}/envs")
        self.assertStatus(envs, 200)
        self.assertEqual(envs.json["GREETING"], "hi")
        out = self.server.sh(s["sandboxID"], "echo $GREETING")
        self.assertEqual(out["stdout"], "hi\n")

    def test_chunked_create(self):
        conn = socket.create_connection(("127.0.0.1", self.server.port))
        body = b'{"templateID":"base"}'
        req = (b"POST /v2/sandboxes HTTP/1.1\r\nHost: x\r\nX-API-Key: " + self.server.key.encode()
               + b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"%x\r\n" % 10 + body[:10] + b"\r\n" + b"%x\r\n" % (len(body) - 10)
               + body[10:] + b"\r\n0\r\n\r\n")
        conn.sendall(req)
        data = b""
        conn.settimeout(30)
        while b"\r\n\r\n" not in data:
            data += conn.recv(4096)
        conn.close()
        self.assertTrue(data.startswith(b"HTTP/1.1 201"), data[:200])

    def test_pause_keeps_memory_and_stops_time(self):
        sid = self.server.create()
        # A counter that lives only in the process's memory, written out each tick.
        self.server.sh(sid, "nohup sh -c 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done' >/dev/null 2>&1 &")
        time.sleep(1)
        before = int(self.server.sh(sid, "cat /tmp/count")["stdout"])
        self.assertStatus(self.server.request("POST", f"/sandboxes/{sid}/pause"), 204)
        self.assertError(self.server.request("POST", f"/sandboxes/{sid}/pause"), 409, "already paused")
        self.assertError(self.server.run(sid, "true"), 409, "paused")
        self.assertEqual(self.server.request("GET", f"/sandboxes/{sid}").json["state"], "paused")
        listed = self.server.request("GET", "/sandboxes?status=paused").json
        self.assertIn(sid, [s["sandboxID"] for s in listed])
        time.sleep(2)
        r = self.server.request("POST", f"/sandboxes/{sid}/connect", {"timeout": 60})
        self.assertStatus(r, 201)
        self.assertEqual(r.json["state"], "running")
        after = int(self.server.sh(sid, "cat /tmp/count")["stdout"])
        # Frozen for 2 s: it would have counted ~20 more had it run.
        self.assertLess(after - before, 10, (before, after))
        time.sleep(1)
        later = int(self.server.sh(sid, "cat /tmp/count")["stdout"])
        self.assertGreater(later, after)
        # Connecting to a running sandbox answers 200.
        self.assertStatus(self.server.request("POST", f"/v2/sandboxes/{sid}/connect", {"timeout": 120}), 200)
        types = [e["type"] for e in self.server.events(sid)]
        self.assertEqual(types[:3], ["sandbox.lifecycle.created", "sandbox.lifecycle.paused",
                                     "sandbox.lifecycle.resumed"])

    def test_timeout_kills_with_an_event(self):
        sid = self.server.create(timeout=2)
        time.sleep(3)
        self.assertError(self.server.request("GET", f"/sandboxes/{sid}"), 404, "sandbox not found")
        stopped = self.server.request("GET", "/sandboxes?status=stopped").json
        self.assertIn(sid, [s["sandboxID"] for s in stopped])
        running = self.server.request("GET", "/sandboxes").json
        self.assertNotIn(sid, [s["sandboxID"] for s in running])
        killed = [e for e in self.server.events(sid) if e["type"] == "sandbox.lifecycle.killed"]
        self.assertEqual(len(killed), 1)
        self.assertEqual(killed[0]["eventData"]["kill_reason"], "timeout")
        self.assertIn("execution", killed[0]["eventData"])
        self.assertTrue(eventually(
            lambda: not os.path.exists(os.path.join(self.server.dir, "sandboxes", sid))))

    def test_set_timeout_and_refresh(self):
        sid = self.server.create(timeout=2)
        self.assertStatus(self.server.request("POST", f"/sandboxes/{sid}/timeout", {"timeout": 30}), 204)
        self.assertStatus(self.server.request("POST", f"/sandboxes/{sid}/refreshes", {"duration": 30}), 204)
        time.sleep(3)
        self.assertStatus(self.server.request("GET", f"/sandboxes/{sid}"), 200)
        updated = [e for e in self.server.events(sid) if e["type"] == "sandbox.lifecycle.updated"]
        self.assertEqual(len(updated), 2)
        self.assertIn("set_timeout", updated[0]["eventData"])
        self.assertError(self.server.request("POST", f"/sandboxes/{sid}/timeout", {"timeout": -5}), 400)
        self.assertError(self.server.request("POST", f"/sandboxes/{sid}/timeout", {}), 400, "timeout is required")

    def test_kill(self):
        sid = self.server.create()
        self.assertStatus(self.server.request("DELETE", f"/sandboxes/{sid}"), 204)
        self.assertError(self.server.request("DELETE", f"/sandboxes/{sid}"), 404, "sandbox not found")
        self.assertError(self.server.run(sid, "true"), 404)
        killed = [e for e in self.server.events(sid) if e["type"] == "sandbox.lifecycle.killed"]
        self.assertEqual(killed[0]["eventData"]["kill_reason"], "request")


class Capacity(ServerTest):
    server_args = ("--max-sandboxes", "2")

    def test_limit_refuses_with_429_and_frees_on_kill(self):
        a = self.server.create()
        self.server.create()
        r = self.server.request("POST", "/sandboxes", {"templateID": "base"})
        self.assertError(r, 429, "sandbox limit reached")
        self.assertStatus(self.server.request("DELETE", f"/sandboxes/{a}"), 204)
        self.assertStatus(self.server.request("POST", "/sandboxes", {"templateID": "base"}), 201)


class Listing(ServerTest):
    def test_v2_list_filters_orders_and_pages(self):
        ids = [self.server.create(metadata={"k y": "a b&c=d/é", "i": str(i)}) for i in range(5)]
        self.server.request("POST", f"/sandboxes/{ids[0]}/pause")
        seen, token, pages = [], None, 0
        while True:
            q = "/v2/sandboxes?limit=2" + (f"&nextToken={token}" if token else "")
            r = self.server.request("GET", q)
            self.assertStatus(r, 200)
            if pages == 0:
                running = self.server.request("GET", "/sandboxes?status=running").json
                self.assertEqual(r.headers.get("X-Total-Running"), str(len(running)))
            seen += [s["sandboxID"] for s in r.json]
            pages += 1
            token = r.headers.get("X-Next-Token")
            if not token:
                break
            # A sandbox created, or one of a later page killed, between pages
            # does not disturb the walk.
            if pages == 1:
                self.server.create(metadata={"i": "late"})
                extra = self.server.create(metadata={"i": "doomed"})
                self.assertStatus(self.server.request("DELETE", f"/sandboxes/{extra}"), 204)
        # Other tests' sandboxes share this server: look at ours only.
        self.assertEqual(len(seen), len(set(seen)))
        self.assertEqual([x for x in seen if x in ids], list(reversed(ids)))
        asc = [s["sandboxID"] for s in self.server.request("GET", "/v2/sandboxes?order=asc").json]
        self.assertEqual([x for x in asc if x in ids], ids)
        paused = self.server.request("GET", "/v2/sandboxes?state=paused").json
        self.assertEqual([s["sandboxID"] for s in paused], [ids[0]])
        # The SDK encodes metadata three times over.
        md = "k%252520y%3Da%252520b%252526c%25253Dd%25252F%2525C3%2525A9%26i%3D3"
        hit = self.server.request("GET", f"/v2/sandboxes?metadata={md}").json
        self.assertEqual([s["sandboxID"] for s in hit], [ids[3]])
        self.assertError(self.server.request("GET", "/v2/sandboxes?limit=101"), 400, "limit")
        self.assertError(self.server.request("GET", "/v2/sandboxes?order=up"), 400, "order")
        self.assertError(self.server.request("GET", "/v2/sandboxes?state=gone"), 400, "unknown state")
        self.assertError(self.server.request("GET", "/v2/sandboxes?state=stopped"), 400, "running, paused")
        self.assertError(self.server.request("GET", "/v2/sandboxes?nextToken=garbage"), 400, "nextToken")
        # Template (name or alias) and start time filters.
        base = [s["sandboxID"] for s in self.server.request("GET", "/v2/sandboxes?template=base").json]
        self.assertTrue(set(ids) <= set(base))
        self.assertEqual(self.server.request("GET", "/v2/sandboxes?template=code_interpreter").json, [])
        third = self.server.request("GET", f"/sandboxes/{ids[2]}").json["startedAt"]
        after = [s["sandboxID"] for s in self.server.request(
            "GET", f"/v2/sandboxes?order=asc&startedAfter={third}").json]
        # Inclusive, as E2B: the sandbox started exactly then is in.
        self.assertEqual([x for x in after if x in ids], ids[2:])
        self.assertError(self.server.request("GET", "/v2/sandboxes?startedAfter=yesterday"), 400, "startedAfter")

    def test_listings_show_each_change_as_the_detail_does(self):
        # Listings are served from renderings kept per sandbox: each change
        # (pause, resume, a new timeout, a network update, a kill) must show
        # at once, and a listed sandbox reads exactly as its detail.
        sid = self.server.create(timeout=600, metadata={"case": "cache"})

        def listed(path):
            return {s["sandboxID"]: s for s in self.server.request("GET", path).json}

        def check(state):
            detail = self.server.request("GET", f"/sandboxes/{sid}").json
            self.assertEqual(detail["state"], state)
            for path in ("/sandboxes", "/v2/sandboxes", "/v2/sandboxes?metadata=case%3Dcache"):
                self.assertEqual(listed(path)[sid], detail, path)
        check("running")
        self.assertStatus(self.server.request("POST", f"/sandboxes/{sid}/timeout", {"timeout": 1200}), 204)
        check("running")
        self.assertStatus(self.server.request("PUT", f"/sandboxes/{sid}/network",
                                              {"allowOut": ["10.1.2.3"], "denyOut": ["0.0.0.0/0"]}), 204)
        check("running")
        self.assertStatus(self.server.request("POST", f"/sandboxes/{sid}/pause"), 204)
        check("paused")
        self.assertNotIn(sid, listed("/v2/sandboxes?state=running"))
        self.assertStatus(self.server.request("POST", f"/sandboxes/{sid}/connect", {"timeout": 600}), 201)
        check("running")
        self.assertStatus(self.server.request("DELETE", f"/sandboxes/{sid}"), 204)
        self.assertNotIn(sid, listed("/sandboxes"))
        self.assertNotIn(sid, listed("/v2/sandboxes"))

    def test_connect_only_extends_a_running_sandbox(self):
        sid = self.server.create(timeout=600)
        end = self.server.request("GET", f"/sandboxes/{sid}").json["endAt"]
        r = self.server.request("POST", f"/v2/sandboxes/{sid}/connect", {"timeout": 10})
        self.assertStatus(r, 200)
        self.assertEqual(r.json["endAt"], end)
        r = self.server.request("POST", f"/v2/sandboxes/{sid}/connect", {"timeout": 1200})
        self.assertGreater(r.json["endAt"], end)


class Processes(ServerTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.sid = cls.server.create(timeout=600)

    def test_nonzero_exit_is_still_200(self):
        r = self.server.run(self.sid, "sh", "-c", "echo out; echo err >&2; exit 3")
        self.assertStatus(r, 200)
        self.assertEqual(r.json["exitCode"], 3)
        self.assertEqual(r.json["stdout"], "out\n")
        self.assertEqual(r.json["stderr"], "err\n")

    def test_missing_binary_is_502(self):
        self.assertError(self.server.run(self.sid, "/no/such/binary"), 502)

    def test_timeout_kills_the_process(self):
        t0 = time.time()
        r = self.server.run(self.sid, "sleep", "30", timeout=1)
        self.assertError(r, 502, "timed out")
        self.assertLess(time.time() - t0, 10)

    def test_runs_as_user_in_workspace_unless_asked(self):
        out = self.server.sh(self.sid, "id -un; pwd")
        self.assertEqual(out["stdout"], "user\n/workspace\n")
        out = self.server.sh(self.sid, "id -un", user="root")
        self.assertEqual(out["stdout"], "root\n")
        out = self.server.sh(self.sid, "pwd", cwd="/tmp")
        self.assertEqual(out["stdout"], "/tmp\n")
        out = self.server.sh(self.sid, "echo $X", envVars={"X": "42"})
        self.assertEqual(out["stdout"], "42\n")

    def test_isolation(self):
        out = self.server.sh(self.sid, "hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; ls /")
        lines = out["stdout"].splitlines()
        self.assertEqual(lines[0], self.sid)
        self.assertEqual(lines[1].strip(), "/.sandboxd/agent --listen-fd 3")
        # The host's own paths are not there.
        self.assertNotIn("work", lines[2:])
        self.assertEqual(self.server.sh(self.sid, "test -e /work; echo $?")["stdout"], "1\n")
        # Its own network namespace: loopback and its end of its veth pair.
        nets = self.server.sh(self.sid, "ls /sys/class/net")["stdout"].split()
        self.assertEqual(nets, ["eth0", "lo"])  # its own veth end, nothing of the host's
        # Root inside holds no dangerous capability and cannot mount.
        out = self.server.sh(self.sid, "grep CapEff /proc/self/status; mount -t tmpfs x /mnt 2>&1; echo rc=$?", user="root")
        self.assertNotIn("rc=0", out["stdout"])
        eff = int(out["stdout"].split()[1], 16)
        self.assertEqual(eff & (1 << 21), 0)  # CAP_SYS_ADMIN
        # Its own process tree only.
        pids = self.server.sh(self.sid, "ls /proc | grep -c '^[0-9]'")["stdout"]
        self.assertLess(int(pids), 10)

    def test_limits_are_enforced(self):
        sid = self.server.create()
        # 512 MiB of memory: touching 700 MiB gets the process killed.
        r = self.server.run(sid, "python3", "-c", "b = bytearray(700 << 20); print('survived')", timeout=60)
        self.assertStatus(r, 200)
        self.assertNotEqual(r.json["exitCode"], 0)
        self.assertNotIn("survived", r.json["stdout"])
        # 1024 tasks: forking 1100 children fails before the end.
        out = self.server.sh(sid, "python3 -c \"import os\nn=0\ntry:\n  while n < 1100:\n    "
                                  "pid=os.fork()\n    if pid==0:\n      import time; time.sleep(3); os._exit(0)\n    "
                                  "n+=1\nexcept OSError as e: print('fork failed at', n)\n\"", timeout=60)
        self.assertIn("fork failed at", out["stdout"])
        # 2 vCPU: a quota of 200 ms per 100 ms period on the sandbox's cgroup,
        # at most what all sandboxes together may use (the host keeps a quarter core).
        quota = int(open(f"/sys/fs/cgroup/cpu/sandboxd/{sid}/cpu.cfs_quota_us").read())
        self.assertEqual(quota, min(200000, os.cpu_count() * 100000 - 25000))

    def test_bad_process_requests(self):
        p = f"/sandboxes/{self.sid}/processes"
        self.assertError(self.server.request("POST", p, {}), 400, "cmd is required")
        self.assertError(self.server.request("POST", p, {"cmd": 5}), 400, "cmd must be a string")
        self.assertError(self.server.request("POST", p, {"cmd": "ls", "args": "x"}), 400, "args")
        self.assertError(self.server.request("POST", p, {"cmd": "ls", "timeout": 0}), 400, "timeout")
        self.assertError(self.server.request("POST", p, {"cmd": "ls", "envVars": {"A": 1}}), 400, "envVars.A")
        self.assertError(self.server.request("POST", p, {"cmd": "ls", "envVars": {"A=B": "1"}}), 400,
                         "envVars has an invalid name")


class Files(ServerTest):
    def test_round_trip_is_byte_exact_and_private(self):
        a = self.server.create()
        b = self.server.create()
        data = bytes(range(256)) * 64
        w = self.server.write(a, "/workspace/dir/blob.bin", data)
        self.assertStatus(w, 200)
        self.assertEqual(w.json["size"], len(data))
        self.assertEqual(w.json["owner"], "user")
        r = self.server.read(a, "/workspace/dir/blob.bin")
        self.assertStatus(r, 200)
        self.assertEqual(base64.b64decode(r.json["content"]), data)
        # Relative paths resolve against the user's home.
        self.assertStatus(self.server.write(a, "notes.txt", b"hello"), 200)
        self.assertEqual(self.server.sh(a, "cat /home/user/notes.txt")["stdout"], "hello")
        # Another sandbox does not see it.
        self.assertError(self.server.read(b, "/workspace/dir/blob.bin"), 404)
        listing = self.server.request("GET", f"/sandboxes/{a}/filesystem/list?path=/workspace/dir")
        self.assertStatus(listing, 200)
        self.assertEqual([e["name"] for e in listing.json["entries"]], ["blob.bin"])
        # The host sees it only inside this sandbox's own overlay directory.
        self.assertFalse(os.path.exists("/workspace/dir/blob.bin"))

    def test_paths_cannot_escape(self):
        sid = self.server.create()
        name = "sandboxd-escape-" + uuid.uuid4().hex
        self.assertStatus(self.server.write(sid, f"/workspace/../../../../../tmp/{name}", b"x"), 200)
        self.assertFalse(os.path.exists(f"/tmp/{name}"))
        self.server.sh(sid, "ln -s / /workspace/root-link")
        self.assertStatus(self.server.write(sid, f"/workspace/root-link/tmp/{name}-2", b"x"), 200)
        self.assertFalse(os.path.exists(f"/tmp/{name}-2"))
        self.assertEqual(self.server.sh(sid, f"cat /tmp/{name}-2")["stdout"], "x")
        # The host's secrets are not what the sandbox reads.
        r = self.server.read(sid, "/etc/hostname")
        self.assertError(r, 404)

    def test_file_errors(self):
        sid = self.server.create()
        self.assertError(self.server.read(sid, "/nope"), 404)
        self.assertError(self.server.request("GET", f"/sandboxes/{sid}/filesystem"), 400, "path is required")
        self.server.sh(sid, "head -c 1100000 /dev/zero > /workspace/big")
        self.assertError(self.server.read(sid, "/workspace/big"), 400, "larger")
        self.assertError(self.server.request("POST", f"/sandboxes/{sid}/filesystem",
                                             {"path": "/x", "content": "***"}), 400, "base64")
        self.assertError(self.server.request("POST", f"/sandboxes/{sid}/filesystem",
                                             {"content": ""}), 400, "path is required")
        self.assertError(self.server.request("GET", f"/sandboxes/{sid}/filesystem/list?path=/nope"), 404)
        self.assertStatus(self.server.write(sid, "/workspace/gone", b"1"), 200)
        self.assertStatus(self.server.request("DELETE", f"/sandboxes/{sid}/filesystem?path=/workspace/gone"), 204)
        self.assertError(self.server.read(sid, "/workspace/gone"), 404)
        self.assertError(self.server.request("DELETE", f"/sandboxes/{sid}/filesystem?path=/workspace/gone"), 404)

    def test_health_and_metrics(self):
        sid = self.server.create()
        self.assertStatus(self.server.request("GET", f"/sandboxes/{sid}/health"), 204)
        m = self.server.request("GET", f"/sandboxes/{sid}/metrics")
        self.assertStatus(m, 200)
        self.assertIsInstance(m.json, list)
        sample = m.json[0]
        for k in ["timestamp", "timestampUnix", "cpuCount", "cpuUsedPct", "memUsed",
                  "memTotal", "memCache", "diskUsed", "diskTotal"]:
            self.assertIn(k, sample)
        self.assertEqual(sample["memTotal"], 512 * 1024 * 1024)
        self.assertGreater(sample["memUsed"], 0)


class Templates(ServerTest):
    def test_code_interpreter_has_numpy(self):
        sid = self.server.create("code_interpreter")
        out = self.server.run(sid, "python3", "-c", "import numpy, pandas; print(numpy.arange(4).sum())")
        self.assertStatus(out, 200)
        self.assertEqual(out.json["stdout"], "6\n")

    def test_unknown_template(self):
        r = self.server.request("POST", "/sandboxes", {"templateID": "nope"})
        self.assertError(r, 400, "unknown template: nope")


class BadInput(ServerTest):
    def test_auth(self):
        self.assertError(self.server.request("GET", "/sandboxes", key=None), 401)
        self.assertError(self.server.request("GET", "/sandboxes", key="e2b_" + "0" * 40), 401, "invalid API key")
        r = self.server.request("GET", "/sandboxes", key=None,
                                headers={"Authorization": "Bearer " + self.server.key})
        self.assertStatus(r, 200)

    def test_orgs_never_see_each_other(self):
        other = self.server.new_key("other-org")
        self.assertRegex(other, r"^e2b_[0-9a-f]{40}$")
        mine = self.server.create()
        theirs = self.server.create(key=other)
        for method, path, body in [
            ("GET", f"/sandboxes/{mine}", None),
            ("DELETE", f"/sandboxes/{mine}", None),
            ("POST", f"/sandboxes/{mine}/pause", None),
            ("POST", f"/sandboxes/{mine}/connect", {"timeout": 10}),
            ("POST", f"/sandboxes/{mine}/timeout", {"timeout": 10}),
            ("POST", f"/sandboxes/{mine}/processes", {"cmd": "true"}),
            ("GET", f"/sandboxes/{mine}/filesystem?path=/etc/os-release", None),
            ("GET", f"/sandboxes/{mine}/metrics", None),
            ("GET", f"/sandboxes/{mine}/envs", None),
            ("GET", f"/sandboxes/{mine}/health", None),
        ]:
            r = self.server.request(method, path, body, key=other)
            self.assertError(r, 404, "sandbox not found")
        listed = [s["sandboxID"] for s in self.server.request("GET", "/sandboxes", key=other).json]
        self.assertEqual(listed, [theirs])
        self.assertEqual(self.server.request("GET", f"/events/sandboxes/{mine}", key=other).json, [])
        self.assertStatus(self.server.request("GET", f"/sandboxes/{mine}"), 200)

    def test_bad_bodies(self):
        r = self.server.request("POST", "/sandboxes", raw=b"{not json")
        self.assertError(r, 400, "not valid JSON")
        self.assertError(self.server.request("POST", "/sandboxes", raw=b"[1,2]"), 400, "JSON object")
        self.assertError(self.server.request("POST", "/sandboxes", {}), 400, "templateID is required")
        self.assertError(self.server.request("POST", "/sandboxes", {"templateID": 7}), 400, "must be a string")
        self.assertError(self.server.request("POST", "/sandboxes", {"templateID": "base", "timeout": -1}), 400, "timeout")
        self.assertError(self.server.request("POST", "/sandboxes", {"templateID": "base", "timeout": "5"}), 400, "integer")
        self.assertError(self.server.request("POST", "/sandboxes", {"templateID": "base", "metadata": [1]}), 400, "metadata")
        self.assertError(self.server.request("POST", "/sandboxes", {"templateID": "base", "envVars": {"A=B": "1"}}), 400, "envVars")
        self.assertError(self.server.request("GET", "/sandboxes?status=zombie"), 400, "unknown state")
        self.assertError(self.server.request("GET", "/events/sandboxes?limit=0"), 400, "limit")
        self.assertError(self.server.request("GET", "/nope"), 404, "no route")
        self.assertError(self.server.request("PUT", "/sandboxes"), 405)
        self.assertError(self.server.request("GET", "/sandboxes/doesnotexist"), 404, "sandbox not found")

    def test_huge_body_is_refused_and_server_survives(self):
        big = b'{"templateID":"' + b"a" * (17 * 1024 * 1024) + b'"}'
        try:
            r = self.server.request("POST", "/sandboxes", raw=big)
            self.assertEqual(r.status, 413)
        except (ConnectionError, OSError):
            pass  # the server may close the connection mid-upload
        self.assertStatus(self.server.request("GET", "/health", key=None), 200)


if __name__ == "__main__":
    main()
