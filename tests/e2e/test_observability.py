"""Metrics history (E2B's SandboxMetric, sampled by each sandbox actor),
the latest metrics of several sandboxes, the Prometheus endpoint, and the
sandbox logs (E2B v1 and v2) over the same store as the e2a logs."""
import time

from harness import Envd, ServerTest, main


class ObsTest(ServerTest):
    # Sampling every 300 ms instead of 5 s: the same timer, a shorter wait.
    server_args = ("--metrics-interval", "300ms")

    def sandbox(self, **fields):
        sid = self.server.create(**fields)
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{sid}")
        return sid

    def get(self, path, key="default", want=200):
        r = self.server.request("GET", path, key=key)
        self.assertStatus(r, want)
        return r.json

    def process(self, sid, *cmd):
        r = self.server.request("POST", f"/sandboxes/{sid}/processes",
                                {"cmd": cmd[0], "args": list(cmd[1:])})
        self.assertStatus(r, 200)
        return r.json

    def wait_metrics(self, sid, n, within=10.0):
        deadline = time.time() + within
        while True:
            got = self.get(f"/sandboxes/{sid}/metrics")
            if len(got) >= n or time.time() >= deadline:
                return got
            time.sleep(0.2)


class Metrics(ObsTest):
    def test_history_is_sampled_and_filtered_by_time(self):
        sid = self.sandbox()
        got = self.wait_metrics(sid, 4)
        self.assertGreaterEqual(len(got), 4, got)
        ts = [m["timestampUnix"] for m in got]
        self.assertEqual(ts, sorted(ts))
        for m in got:
            self.assertEqual(set(m), {"timestamp", "timestampUnix", "cpuCount", "cpuUsedPct",
                                      "memUsed", "memTotal", "memCache", "diskUsed", "diskTotal"})
            self.assertEqual(m["cpuCount"], 2)
            self.assertEqual(m["memTotal"], 512 * 1024 * 1024)
            self.assertGreater(m["memUsed"], 0)
            self.assertGreaterEqual(m["cpuUsedPct"], 0)
        # Burning CPU shows.
        self.process(sid, "sh", "-c", "timeout 1 sh -c 'while :; do :; done'; true")
        busy = self.wait_metrics(sid, len(got) + 3)
        self.assertGreater(max(m["cpuUsedPct"] for m in busy), 10, busy)
        now = int(time.time())
        self.assertEqual(self.get(f"/sandboxes/{sid}/metrics?start={now + 100}"), [])
        first = busy[0]["timestampUnix"]
        only = self.get(f"/sandboxes/{sid}/metrics?start={first}&end={first}")
        self.assertTrue(only and all(m["timestampUnix"] == first for m in only), only)
        for q in ["start=-1", "start=abc", "end=1.5", f"start={now}&end={now - 10}"]:
            with self.subTest(q=q):
                self.assertError(self.server.request("GET", f"/sandboxes/{sid}/metrics?{q}"), 400)

    def test_paused_sandboxes_are_not_sampled_and_history_outlives_the_sandbox(self):
        sid = self.sandbox()
        self.wait_metrics(sid, 2)
        self.assertStatus(self.server.request("POST", f"/sandboxes/{sid}/pause"), 204)
        time.sleep(0.5)
        before = len(self.get(f"/sandboxes/{sid}/metrics"))
        time.sleep(1.0)
        self.assertEqual(len(self.get(f"/sandboxes/{sid}/metrics")), before)
        self.assertStatus(self.server.request("DELETE", f"/sandboxes/{sid}"), 204)
        self.assertEqual(len(self.get(f"/sandboxes/{sid}/metrics")), before)

    def test_other_orgs_and_unknown_sandboxes_are_404(self):
        sid = self.sandbox()
        other = self.server.new_key("metrics-other")
        self.assertError(self.server.request("GET", f"/sandboxes/{sid}/metrics", key=other), 404)
        self.assertError(self.server.request("GET", "/sandboxes/nosuchsandbox0000000/metrics"), 404)

    def test_latest_of_several(self):
        a, b = self.sandbox(), self.sandbox()
        self.wait_metrics(a, 1)
        self.wait_metrics(b, 1)
        other = self.server.new_key("metrics-many")
        theirs = self.server.create(key=other)
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{theirs}", key=other)
        got = self.get(f"/sandboxes/metrics?sandbox_ids={a},{b},{theirs},nosuch")
        self.assertEqual(set(got["sandboxes"]), {a, b})
        self.assertEqual(got["sandboxes"][a]["memTotal"], 512 * 1024 * 1024)
        self.assertError(self.server.request("GET", "/sandboxes/metrics"), 400)
        self.assertError(self.server.request("GET", "/sandboxes/metrics?sandbox_ids=,"), 400)
        many = ",".join(f"id{i}" for i in range(101))
        self.assertError(self.server.request("GET", f"/sandboxes/metrics?sandbox_ids={many}"), 400)
        self.assertError(self.server.request("GET", f"/sandboxes/metrics?sandbox_ids={a}", key="nope"), 401)


class Prometheus(ObsTest):
    def test_text_format_for_operators(self):
        self.sandbox()
        r = self.server.request("GET", "/metrics", key=None)
        self.assertStatus(r, 200)
        self.assertTrue(r.headers.get("Content-Type", "").startswith("text/plain"), r.headers)
        text = r.raw.decode()
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                values[name] = float(value)
        self.assertGreaterEqual(values['sandboxd_sandboxes{state="running"}'], 1)
        self.assertIn('sandboxd_sandboxes{state="paused"}', values)
        self.assertGreaterEqual(values["sandboxd_create_seconds_count"], 1)
        self.assertEqual(values['sandboxd_create_seconds_bucket{le="+Inf"}'],
                         values["sandboxd_create_seconds_count"])
        self.assertGreater(values["sandboxd_create_seconds_sum"], 0)
        self.assertGreaterEqual(values["sandboxd_event_log_seq"], 1)
        for name in ["sandboxd_event_log_bytes", "sandboxd_webhooks",
                     "sandboxd_webhook_backlog_events", "sandboxd_create_failures_total"]:
            self.assertIn(name, values)
        # Counts only: no sandbox ids, no org names.
        self.assertNotIn("org", text.replace("sandboxd", ""))


class Logs(ObsTest):
    def test_v1_lines_and_entries(self):
        sid = self.sandbox()
        self.process(sid, "sh", "-c", "echo out-line; echo err-line >&2")
        got = self.get(f"/sandboxes/{sid}/logs")
        lines = [l["line"] for l in got["logs"]]
        self.assertIn("sandbox.lifecycle.created", lines)
        self.assertIn("out-line", lines)
        self.assertIn("err-line", lines)
        self.assertEqual(len(got["logEntries"]), len(got["logs"]))
        by_msg = {e["message"]: e for e in got["logEntries"]}
        self.assertEqual(by_msg["err-line"]["level"], "error")
        self.assertEqual(by_msg["out-line"]["level"], "info")
        self.assertEqual(by_msg["out-line"]["fields"], {"stream": "stdout"})
        # From just after `created` (its line is written just after the
        # create's answer, so a clock read by the client may precede it).
        created = next(l for l in got["logs"] if l["line"] == "sandbox.lifecycle.created")
        t0 = self.server_time_ms(created["timestamp"]) + 1
        later = self.get(f"/sandboxes/{sid}/logs?start={t0}")
        self.assertNotIn("sandbox.lifecycle.created", [l["line"] for l in later["logs"]])
        self.assertIn("out-line", [l["line"] for l in later["logs"]])
        self.assertEqual(len(self.get(f"/sandboxes/{sid}/logs?limit=1")["logs"]), 1)
        for q in ["limit=0", "limit=x", "start=-5"]:
            with self.subTest(q=q):
                self.assertError(self.server.request("GET", f"/sandboxes/{sid}/logs?{q}"), 400)

    def test_v2_direction_level_search_cursor(self):
        sid = self.sandbox()
        self.process(sid, "sh", "-c", "for i in 1 2 3; do echo line-$i; done; echo oops >&2")
        fwd = self.get(f"/v2/sandboxes/{sid}/logs")["logs"]
        msgs = [e["message"] for e in fwd]
        self.assertEqual(msgs[0], "sandbox.lifecycle.created")
        self.assertLess(msgs.index("line-1"), msgs.index("line-3"))
        back = self.get(f"/v2/sandboxes/{sid}/logs?direction=backward&limit=2")["logs"]
        self.assertEqual(len(back), 2)
        self.assertEqual([e["message"] for e in back], list(reversed(msgs))[:2])
        errors = self.get(f"/v2/sandboxes/{sid}/logs?level=error")["logs"]
        self.assertEqual([e["message"] for e in errors], ["oops"])
        self.assertEqual([e["level"] for e in self.get(f"/v2/sandboxes/{sid}/logs?level=warn")["logs"]],
                         ["error"])
        found = self.get(f"/v2/sandboxes/{sid}/logs?search=line-")["logs"]
        self.assertEqual([e["message"] for e in found], ["line-1", "line-2", "line-3"])
        self.assertEqual(self.get(f"/v2/sandboxes/{sid}/logs?search=LINE-")["logs"], [])
        # A cursor at the newest entry's time, walking forward, starts there.
        last_ms = self.server_time_ms(fwd[-1]["timestamp"])
        tail = self.get(f"/v2/sandboxes/{sid}/logs?cursor={last_ms}")["logs"]
        self.assertTrue(tail and tail[0]["timestamp"] >= fwd[-1]["timestamp"][:23], tail)
        self.assertEqual(self.get(f"/v2/sandboxes/{sid}/logs?cursor={last_ms + 60000}")["logs"], [])
        for q in ["direction=up", "level=fatal", "cursor=abc", "limit=0"]:
            with self.subTest(q=q):
                self.assertError(self.server.request("GET", f"/v2/sandboxes/{sid}/logs?{q}"), 400)
        # Logs outlive the sandbox, for its org only.
        self.assertStatus(self.server.request("DELETE", f"/sandboxes/{sid}"), 204)
        gone = [e["message"] for e in self.get(f"/v2/sandboxes/{sid}/logs")["logs"]]
        self.assertIn("sandbox.lifecycle.killed (request)", gone)
        other = self.server.new_key("logs-other")
        self.assertError(self.server.request("GET", f"/v2/sandboxes/{sid}/logs", key=other), 404)
        self.assertError(self.server.request("GET", f"/sandboxes/{sid}/logs", key=other), 404)

    def test_envd_process_output_is_logged_up_to_a_bound(self):
        sid = self.sandbox()
        envd = Envd(self.server, self.get(f"/sandboxes/{sid}"))
        out, err, _, _ = envd.run("echo from-envd; echo envd-err >&2; printf no-newline")
        self.assertEqual(out, "from-envd\nno-newline")
        msgs = [(e["fields"]["stream"], e["message"])
                for e in self.get(f"/v2/sandboxes/{sid}/logs")["logs"]]
        for want in [("stdout", "from-envd"), ("stderr", "envd-err"), ("stdout", "no-newline")]:
            self.assertIn(want, msgs)
        # A flood reaches the client whole; the log keeps its first MiB.
        out, _, _, _ = envd.run("head -c 3000000 /dev/zero | tr '\\0' 'x' | fold -w 1000")
        self.assertEqual(len(out), 3000000 + 2999)  # fold adds a newline between lines
        logged = [e["message"] for e in self.get(f"/v2/sandboxes/{sid}/logs?search=xxx&limit=10000")["logs"]]
        self.assertLessEqual(sum(len(m) for m in logged), 1 << 20)
        self.assertGreater(len(logged), 900)
        self.assertIn("[further output of this process is not logged]",
                      [e["message"] for e in self.get(f"/v2/sandboxes/{sid}/logs?direction=backward&limit=5")["logs"]])

    @staticmethod
    def server_time_ms(rfc3339):
        from datetime import datetime
        return int(datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp() * 1000)


if __name__ == "__main__":
    main()
