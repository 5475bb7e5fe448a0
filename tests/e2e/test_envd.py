"""The envd data plane at the protocol level: Connect-JSON process and
filesystem services and /files, as the E2B SDKs speak them."""
import base64
import gzip
import hashlib
import os
import threading
import time

from harness import Envd, ServerTest, main, multipart


class EnvdTest(ServerTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        r = cls.server.request("POST", "/sandboxes", {"templateID": "base", "timeout": 900})
        assert r.status == 201, r
        cls.envd = Envd(cls.server, r.json)


class Auth(EnvdTest):
    def test_token_is_required_and_checked(self):
        r = self.envd.unary("process.Process/List", {}, token=None)
        self.assertEqual(r.status, 401)
        self.assertEqual(r.json["code"], "unauthenticated")
        r = self.envd.unary("process.Process/List", {}, token="0" * 48)
        self.assertEqual(r.status, 401)
        self.assertEqual(self.envd.unary("process.Process/List", {}).status, 200)

    def test_another_sandboxes_token_never_reaches_this_one(self):
        other_key = self.server.new_key("envd-other-org")
        other = self.server.request("POST", "/sandboxes", {"templateID": "base"}, key=other_key).json
        # The other org's token, presented for our sandbox.
        r = self.envd.unary("process.Process/List", {}, token=other["envdAccessToken"])
        self.assertEqual(r.status, 401)
        self.assertEqual(self.envd.files_get("/etc/hostname", token=other["envdAccessToken"]).status, 401)

    def test_unknown_or_paused_sandbox_is_502(self):
        s = self.server.request("POST", "/sandboxes", {"templateID": "base"}).json
        e = Envd(self.server, s)
        self.assertEqual(self.server.request("POST", f"/sandboxes/{s['sandboxID']}/pause").status, 204)
        r = e.unary("process.Process/List", {})
        self.assertEqual(r.status, 503)  # Connect "unavailable"
        self.assertIn("not running", r.json["message"])
        c = e.conn()
        c.request("GET", "/health", headers=e.headers())
        self.assertEqual(c.getresponse().status, 502)
        self.server.request("DELETE", f"/sandboxes/{s['sandboxID']}")

    def test_health_and_metrics_and_envs(self):
        c = self.envd.conn()
        c.request("GET", "/health", headers=self.envd.headers())
        self.assertEqual(c.getresponse().status, 204)
        c = self.envd.conn()
        c.request("GET", "/metrics", headers=self.envd.headers())
        r = c.getresponse()
        m = __import__("json").loads(r.read())
        for k in ["ts", "cpu_count", "cpu_used_pct", "mem_total", "mem_used", "mem_cache",
                  "mem_total_mib", "mem_used_mib", "disk_total", "disk_used"]:
            self.assertIn(k, m)
        c = self.envd.conn()
        c.request("GET", "/envs", headers=self.envd.headers())
        self.assertIn("PATH", __import__("json").loads(c.getresponse().read()))


class Process(EnvdTest):
    def test_start_streams_output_then_end(self):
        out, err, end, events = self.envd.run("echo hi; echo oops >&2; exit 3")
        self.assertEqual(out, "hi\n")
        self.assertEqual(err, "oops\n")
        self.assertEqual(end, {"exitCode": 3, "exited": True, "status": "exit status 3",
                               "error": "exit status 3"})
        self.assertIn("start", events[0][1]["event"])
        self.assertEqual(events[-1], (2, {}))

    def test_output_arrives_as_produced(self):
        t0 = time.time()
        times = []
        for flags, m in self.envd.stream("process.Process/Start",
                                         {"process": {"cmd": "/bin/sh", "args": ["-c", "echo a; sleep 1; echo b"]}}):
            if "data" in m.get("event", {}):
                times.append(time.time() - t0)
        self.assertEqual(len(times), 2)
        self.assertLess(times[0], 0.5)
        self.assertGreater(times[1], 0.9)

    def test_envs_cwd_and_user(self):
        out, _, _, _ = self.envd.run("echo $FOO; pwd; id -un", envs={"FOO": "bar"}, cwd="/tmp")
        self.assertEqual(out, "bar\n/tmp\nuser\n")
        # envd's default cwd is the user's home.
        self.assertEqual(self.envd.run("pwd")[0], "/home/user\n")
        out, _, _, _ = self.envd.run("id -un", user="root")
        self.assertEqual(out, "root\n")

    def test_keepalive_while_quiet(self):
        kinds = []
        for flags, m in self.envd.stream("process.Process/Start",
                                         {"process": {"cmd": "/bin/sleep", "args": ["2.5"]}},
                                         extra={"Keepalive-Ping-Interval": "1"}):
            kinds.extend(m.get("event", {}).keys())
        self.assertGreaterEqual(kinds.count("keepalive"), 1)
        self.assertEqual(kinds[0], "start")
        self.assertEqual(kinds[-1], "end")

    def test_connect_timeout_ends_the_stream_and_the_process(self):
        msgs = list(self.envd.stream("process.Process/Start",
                                     {"process": {"cmd": "/bin/sleep", "args": ["30"]}, "tag": "deadline"},
                                     extra={"Connect-Timeout-Ms": "800"}))
        self.assertEqual(msgs[-1][1]["error"]["code"], "deadline_exceeded")
        time.sleep(0.3)
        procs = self.envd.unary("process.Process/List", {}).json["processes"]
        self.assertNotIn("deadline", [p.get("tag") for p in procs])

    def test_background_process_survives_disconnect_and_reattaches(self):
        stream = self.envd.stream("process.Process/Start",
                                  {"process": {"cmd": "/bin/sh",
                                               "args": ["-c", "for i in 1 2 3 4 5 6; do echo $i; sleep 0.5; done"]},
                                   "tag": "bg-" + os.urandom(3).hex()})
        flags, first = next(stream)
        pid = first["event"]["start"]["pid"]
        stream.close()  # the client goes away
        time.sleep(0.5)
        procs = self.envd.unary("process.Process/List", {}).json["processes"]
        self.assertIn(pid, [p["pid"] for p in procs])
        info = [p for p in procs if p["pid"] == pid][0]
        self.assertEqual(info["config"]["cmd"], "/bin/sh")
        out = b""
        end = None
        for flags, m in self.envd.stream("process.Process/Connect", {"process": {"pid": pid}}):
            ev = m.get("event", {})
            out += base64.b64decode(ev.get("data", {}).get("stdout", ""))
            end = ev.get("end", end)
        self.assertEqual(end["exitCode"], 0)
        self.assertTrue(out.decode().endswith("6\n"), out)

    def test_stdin_input_and_close(self):
        tag = "cat-" + os.urandom(3).hex()
        result = {}

        def consume():
            out = b""
            for flags, m in self.envd.stream("process.Process/Start",
                                             {"process": {"cmd": "/bin/cat"}, "stdin": True, "tag": tag}):
                ev = m.get("event", {})
                out += base64.b64decode(ev.get("data", {}).get("stdout", ""))
                if "end" in ev:
                    result["end"] = ev["end"]
            result["out"] = out

        t = threading.Thread(target=consume)
        t.start()
        time.sleep(0.5)
        r = self.envd.unary("process.Process/SendInput",
                            {"process": {"tag": tag}, "input": {"stdin": base64.b64encode(b"hello\n").decode()}})
        self.assertEqual(r.status, 200, r)
        procs = self.envd.unary("process.Process/List", {}).json["processes"]
        pid = [p["pid"] for p in procs if p.get("tag") == tag][0]
        self.assertEqual(self.envd.unary("process.Process/CloseStdin", {"process": {"pid": pid}}).status, 200)
        t.join(10)
        self.assertEqual(result["out"], b"hello\n")
        self.assertEqual(result["end"]["exitCode"], 0)

    def test_signal_and_pty(self):
        tag = "pty-" + os.urandom(3).hex()
        result = {"out": b""}

        def consume():
            for flags, m in self.envd.stream("process.Process/Start",
                                             {"process": {"cmd": "/bin/bash", "args": ["-i"]},
                                              "pty": {"size": {"cols": 80, "rows": 24}}, "tag": tag}):
                ev = m.get("event", {})
                result["out"] += base64.b64decode(ev.get("data", {}).get("pty", ""))
                if "end" in ev:
                    result["end"] = ev["end"]

        t = threading.Thread(target=consume)
        t.start()
        time.sleep(0.7)
        procs = self.envd.unary("process.Process/List", {}).json["processes"]
        pid = [p["pid"] for p in procs if p.get("tag") == tag][0]
        self.assertEqual(self.envd.unary("process.Process/Update",
                                         {"process": {"pid": pid}, "pty": {"size": {"cols": 100, "rows": 30}}}).status, 200)
        self.envd.unary("process.Process/SendInput",
                        {"process": {"pid": pid}, "input": {"pty": base64.b64encode(b"stty size\n").decode()}})
        time.sleep(0.7)
        r = self.envd.unary("process.Process/SendSignal", {"process": {"pid": pid}, "signal": "SIGNAL_SIGKILL"})
        self.assertEqual(r.status, 200, r)
        t.join(10)
        self.assertIn(b"30 100", result["out"])
        self.assertEqual(result["end"]["exited"], False)
        self.assertIn("killed", result["end"]["status"])

    def test_errors(self):
        r = self.envd.unary("process.Process/SendSignal", {"process": {"pid": 999999}, "signal": "SIGNAL_SIGKILL"})
        self.assertEqual(r.json["code"], "not_found")
        # Streams answer 200 and carry the error in the end-of-stream message.
        msgs = list(self.envd.stream("process.Process/Connect", {"process": {"tag": "never"}}))
        self.assertEqual(msgs, [(2, {"error": {"code": "not_found", "message": msgs[0][1]["error"]["message"]}})])
        msgs = list(self.envd.stream("process.Process/Start", {"process": {"cmd": "/no/such"}}))
        self.assertEqual(msgs[-1][1]["error"]["code"], "not_found")
        msgs = list(self.envd.stream("process.Process/Start", {"process": {}}))
        self.assertEqual(msgs[-1][1]["error"]["code"], "invalid_argument")
        r = self.envd.unary("process.Process/Nope", {})
        self.assertEqual(r.json["code"], "unimplemented")
        # Fields of the wrong type are the client's mistake: 400, never a 500.
        for method, body in [
                ("filesystem.Filesystem/ListDir", {"path": "/home/user", "depth": "deep"}),
                ("process.Process/Update", {"process": {"pid": 1}, "pty": {"size": {"cols": "wide"}}}),
                ("process.Process/SendSignal", {"process": {"pid": "one"}, "signal": "SIGNAL_SIGKILL"})]:
            r = self.envd.unary(method, body)
            self.assertEqual((r.status, r.json["code"]), (400, "invalid_argument"), (method, r))
        for method, body in [
                ("process.Process/Start", {"process": {"cmd": "true"}, "stdin": "yes"}),
                ("filesystem.Filesystem/WatchDir", {"path": "/home/user", "recursive": "yes"})]:
            msgs = list(self.envd.stream(method, body))
            self.assertEqual(msgs[-1][1]["error"]["code"], "invalid_argument", (method, msgs))


class Filesystem(EnvdTest):
    def test_dir_ops(self):
        base = "/home/user/fs-" + os.urandom(3).hex()
        r = self.envd.unary("filesystem.Filesystem/MakeDir", {"path": base + "/a/b"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["entry"]["type"], "FILE_TYPE_DIRECTORY")
        self.assertEqual(self.envd.unary("filesystem.Filesystem/MakeDir", {"path": base + "/a/b"}).json["code"],
                         "already_exists")
        self.envd.files_post(b"x" * 10, "application/octet-stream", path=base + "/a/f.txt")
        st = self.envd.unary("filesystem.Filesystem/Stat", {"path": base + "/a/f.txt"}).json["entry"]
        self.assertEqual(st["size"], "10")
        self.assertEqual(st["owner"], "user")
        self.assertEqual(st["type"], "FILE_TYPE_FILE")
        self.assertRegex(st["modifiedTime"], r"^\d{4}-\d\d-\d\dT")
        one = self.envd.unary("filesystem.Filesystem/ListDir", {"path": base, "depth": 1}).json["entries"]
        self.assertEqual([e["name"] for e in one], ["a"])
        two = self.envd.unary("filesystem.Filesystem/ListDir", {"path": base, "depth": 2}).json["entries"]
        self.assertEqual(sorted(e["path"] for e in two), [base + "/a", base + "/a/b", base + "/a/f.txt"])
        mv = self.envd.unary("filesystem.Filesystem/Move", {"source": base + "/a/f.txt", "destination": base + "/g.txt"})
        self.assertEqual(mv.json["entry"]["path"], base + "/g.txt")
        self.assertEqual(self.envd.unary("filesystem.Filesystem/Remove", {"path": base}).status, 200)
        r = self.envd.unary("filesystem.Filesystem/Stat", {"path": base})
        self.assertEqual((r.status, r.json["code"]), (404, "not_found"))
        self.assertEqual(self.envd.unary("filesystem.Filesystem/Stat", {}).json["code"], "invalid_argument")

    def test_relative_paths_resolve_against_home(self):
        self.envd.files_post(b"rel", "application/octet-stream", path="rel.txt")
        st = self.envd.unary("filesystem.Filesystem/Stat", {"path": "rel.txt"}).json["entry"]
        self.assertEqual(st["path"], "/home/user/rel.txt")
        st = self.envd.unary("filesystem.Filesystem/Stat", {"path": "."}, user="root").json["entry"]
        self.assertEqual(st["path"], "/root")

    def test_watch_dir_streams_events(self):
        d = "/home/user/watch-" + os.urandom(3).hex()
        self.envd.unary("filesystem.Filesystem/MakeDir", {"path": d})
        got = []
        ready = threading.Event()

        def consume():
            for flags, m in self.envd.stream("filesystem.Filesystem/WatchDir", {"path": d},
                                             extra={"Connect-Timeout-Ms": "3000"}):
                # WatchDirResponse's oneof members are top-level fields.
                if "start" in m:
                    ready.set()
                if "filesystem" in m:
                    got.append((m["filesystem"]["name"], m["filesystem"]["type"]))

        t = threading.Thread(target=consume)
        t.start()
        self.assertTrue(ready.wait(5))
        self.envd.files_post(b"1", "application/octet-stream", path=d + "/new.txt")
        self.envd.unary("filesystem.Filesystem/Remove", {"path": d + "/new.txt"})
        t.join(10)
        types = [ty for name, ty in got if name == "new.txt"]
        self.assertIn("EVENT_TYPE_CREATE", types)
        self.assertIn("EVENT_TYPE_REMOVE", types)

    def test_polling_watcher(self):
        d = "/home/user/pw-" + os.urandom(3).hex()
        self.envd.unary("filesystem.Filesystem/MakeDir", {"path": d})
        w = self.envd.unary("filesystem.Filesystem/CreateWatcher", {"path": d})
        self.assertEqual(w.status, 200, w)
        wid = w.json["watcherId"]
        self.envd.files_post(b"1", "application/octet-stream", path=d + "/x")
        time.sleep(0.3)
        ev = self.envd.unary("filesystem.Filesystem/GetWatcherEvents", {"watcherId": wid}).json["events"]
        self.assertIn({"name": "x", "type": "EVENT_TYPE_CREATE"}, ev)
        self.assertEqual(self.envd.unary("filesystem.Filesystem/RemoveWatcher", {"watcherId": wid}).status, 200)
        r = self.envd.unary("filesystem.Filesystem/GetWatcherEvents", {"watcherId": wid})
        self.assertEqual(r.json["code"], "not_found")


class Files(EnvdTest):
    def test_octet_stream_and_multipart_round_trip(self):
        data = bytes(range(256)) * 100
        r = self.envd.files_post(data, "application/octet-stream", path="/home/user/o.bin")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json, [{"path": "/home/user/o.bin", "name": "o.bin", "type": "file"}])
        g = self.envd.files_get("/home/user/o.bin")
        self.assertEqual(g.status, 200)
        self.assertEqual(g.raw, data)
        self.assertEqual(g.headers.get("Content-Type"), "application/octet-stream")
        body, ct = multipart([("/home/user/m1.txt", b"one"), ("m2.txt", b"two")])
        r = self.envd.files_post(body, ct)
        self.assertEqual(r.status, 200, r)
        self.assertEqual([e["path"] for e in r.json], ["/home/user/m1.txt", "/home/user/m2.txt"])
        self.assertEqual(self.envd.files_get("m2.txt").raw, b"two")

    def test_gzip_upload(self):
        r = self.envd.files_post(gzip.compress(b"zipped" * 1000), "application/octet-stream",
                                 path="z.txt", extra={"Content-Encoding": "gzip"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.envd.files_get("z.txt").raw, b"zipped" * 1000)

    def test_ownership_follows_the_user(self):
        self.envd.files_post(b"r", "application/octet-stream", path="/tmp/by-root", user="root")
        self.envd.files_post(b"u", "application/octet-stream", path="/tmp/by-user", user="user")
        owners = {e["name"]: e["owner"] for e in
                  self.envd.unary("filesystem.Filesystem/ListDir", {"path": "/tmp"}).json["entries"]}
        self.assertEqual(owners["by-root"], "root")
        self.assertEqual(owners["by-user"], "user")
        # user cannot write where only root may.
        r = self.envd.files_post(b"x", "application/octet-stream", path="/etc/nope", user="user")
        self.assertEqual(r.status, 403, r)

    def test_bad_metadata_is_400_and_writes_nothing(self):
        for extra in [{"X-Metadata-big": "v" * 5000},
                      {f"X-Metadata-k{i}": "v" for i in range(65)}]:
            r = self.envd.files_post(b"x", "application/octet-stream", path="/tmp/meta-bad",
                                     extra=extra)
            self.assertEqual((r.status, r.json["code"]), (400, 400), r)
            self.assertIn("invalid metadata", r.json["message"])
        self.assertEqual(self.envd.files_get("/tmp/meta-bad").status, 404)

    def test_errors(self):
        r = self.envd.files_get("/nope")
        self.assertEqual(r.status, 404)
        self.assertEqual(r.json["code"], 404)
        self.assertEqual(self.envd.files_get("").status, 400)
        self.assertEqual(self.envd.files_get("/home").status, 400)
        r = self.envd.files_post(b"x", "application/octet-stream")
        self.assertEqual(r.status, 400)
        r = self.envd.files_post(b"not gzip", "application/octet-stream", path="g",
                                 extra={"Content-Encoding": "gzip"})
        self.assertEqual(r.status, 400)
        self.assertEqual(self.envd.files_get("/etc/hostname", token=None).status, 401)

    def test_signed_urls(self):
        path, user = "/home/user/signed.txt", "user"
        self.envd.files_post(b"signed", "application/octet-stream", path=path)
        exp = str(int(time.time()) + 60)

        def sig(op, expiration=exp):
            raw = f"{path}:{op}:{user}:{self.envd.token}" + (f":{expiration}" if expiration else "")
            return "v1_" + base64.b64encode(hashlib.sha256(raw.encode()).digest()).decode().rstrip("=")

        ok = self.envd.files_get(path, token=None, query={"signature": sig("read"), "signature_expiration": exp})
        self.assertEqual((ok.status, ok.raw), (200, b"signed"))
        # A signed URL works without any sandbox header (third parties).
        import http.client
        from urllib.parse import urlencode
        c = http.client.HTTPConnection("127.0.0.1", self.server.envd_port)
        c.request("GET", "/files?" + urlencode({"path": path, "username": user, "signature": sig("read"),
                                                "signature_expiration": exp}))
        r = c.getresponse()
        self.assertEqual((r.status, r.read()), (200, b"signed"))
        bad = self.envd.files_get(path, token=None, query={"signature": sig("write"), "signature_expiration": exp})
        self.assertEqual(bad.status, 401)
        old = str(int(time.time()) - 5)
        expired = self.envd.files_get(path, token=None, query={"signature": sig("read", old), "signature_expiration": old})
        self.assertEqual((expired.status, expired.json), (401, {"code": 401, "message": "signature is already expired"}))
        # A forged signature with a past expiry learns only that it is forged.
        forged = self.envd.files_get(path, token=None, query={"signature": sig("write", old), "signature_expiration": old})
        self.assertEqual(forged.json["message"], "invalid signature")

    def test_100mb_round_trip(self):
        blob = os.urandom(1 << 20) * 100
        digest = hashlib.sha256(blob).hexdigest()
        t0 = time.time()
        r = self.envd.files_post(blob, "application/octet-stream", path="/home/user/big.bin")
        self.assertEqual(r.status, 200, r)
        t1 = time.time()
        g = self.envd.files_get("/home/user/big.bin")
        t2 = time.time()
        self.assertEqual(len(g.raw), len(blob))
        self.assertEqual(hashlib.sha256(g.raw).hexdigest(), digest)
        print(f"\n100 MiB upload {t1 - t0:.2f} s, download {t2 - t1:.2f} s")


if __name__ == "__main__":
    main()
