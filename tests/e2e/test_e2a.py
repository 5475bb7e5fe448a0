"""The e2a-style /v1 dialect (Bearer auth, vm_id, exec, logs, idle timeout,
hard lifetime) against real crun sandboxes, and how it shows in the E2B API."""
import http.client
import json
import os
import time
from datetime import datetime, timezone
from urllib.parse import quote

from harness import ServerTest, main

SCRIPTED_AGENTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures",
                               "scripted-agents.json")
KEY = "sk-ant-test-" + os.urandom(8).hex()

RESERVED_ENV = ["PATH", "HOME", "ANTHROPIC_API_KEY", "OPENAI_API_KEY",
                "SANDBOXD_DEBUG", "E2B_API_KEY"]


def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def iso(t):
    """A whole-second UTC ISO 8601 time for `since`."""
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class V1Test(ServerTest):
    def v1(self, method, path, body=None, key=None, raw=None, timeout=120):
        return self.server.request(method, "/v1" + path, body, key=None, raw=raw, timeout=timeout,
                                   headers={"Authorization": "Bearer " + (key or self.server.key)})

    def make(self, key=None, **fields):
        r = self.v1("POST", "/sandboxes", {"template": "standard", **fields}, key=key)
        self.assertStatus(r, 201)
        vm = r.json["vm_id"]
        self.addCleanup(self.v1, "DELETE", f"/sandboxes/{vm}", key=key)
        return r.json

    def exec(self, vm, command, key=None):
        return self.v1("POST", f"/sandboxes/{vm}/exec", {"command": command}, key=key)

    def ok_exec(self, vm, command):
        r = self.exec(vm, command)
        self.assertStatus(r, 200)
        return r.json

    def logs(self, vm, query=""):
        return self.v1("GET", f"/sandboxes/{vm}/logs" + (f"?{query}" if query else ""))

    def ok_logs(self, vm, query=""):
        r = self.logs(vm, query)
        self.assertStatus(r, 200)
        self.assertEqual(r.json["vm_id"], vm)
        return r.json["lines"]

    def envd_health(self, endpoint, vm):
        host, port = endpoint[len("http://"):].split(":")
        c = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            c.request("GET", "/health", headers={"E2b-Sandbox-Id": vm})
            r = c.getresponse()
            r.read()
            return r.status
        finally:
            c.close()

    def killed_events(self, vm, within=0.0):
        """The sandbox's killed events, waiting up to `within` s for one (E2B
        API only: not /v1 activity)."""
        deadline = time.time() + within
        while True:
            evs = self.server.events(vm)
            killed = [e for e in evs if e["type"] == "sandbox.lifecycle.killed"]
            if killed or time.time() >= deadline:
                return evs, killed
            time.sleep(0.2)

    def wait_gone(self, vm, within=5.0):
        deadline = time.time() + within
        while True:
            r = self.v1("GET", f"/sandboxes/{vm}")
            if r.status == 404 or time.time() >= deadline:
                return r
            time.sleep(0.2)


class Auth(V1Test):
    def test_bearer_is_required_and_checked(self):
        for path in ["/v1/sandboxes", "/v1/sandboxes/nope"]:
            self.assertError(self.server.request("GET", path, key=None), 401)
            r = self.server.request("GET", path, key=None,
                                    headers={"Authorization": "Bearer e2b_" + "0" * 40})
            self.assertError(r, 401)
        r = self.server.request("POST", "/v1/sandboxes", {"template": "standard"}, key=None)
        self.assertError(r, 401)
        r = self.server.request("POST", "/v1/sandboxes", {"template": "standard"}, key=None,
                                headers={"Authorization": "Bearer bogus"})
        self.assertError(r, 401)
        # The right key works, and nothing was created by the refused requests.
        r = self.v1("GET", "/sandboxes")
        self.assertStatus(r, 200)
        self.assertEqual(r.json, [])


class Lifecycle(V1Test):
    def test_create_get_list_health_delete(self):
        s = self.make(metadata={"team": "a", "k y": "é"}, env_vars={"GREETING": "hi", "MY_PATH": "/x"},
                      idle_timeout_seconds=7200, max_lifetime_seconds=7200)
        vm = s["vm_id"]
        self.assertIsInstance(vm, str)
        self.assertTrue(vm)
        self.assertEqual(s["state"], "running")
        self.assertIsInstance(s["host_port"], int)
        self.assertEqual(s["endpoint"], f"http://127.0.0.1:{s['host_port']}")
        self.assertEqual(s["host_port"], self.server.envd_port)
        self.assertEqual(self.envd_health(s["endpoint"], vm), 204)

        g = self.v1("GET", f"/sandboxes/{vm}")
        self.assertStatus(g, 200)
        for k in ["vm_id", "state", "vcpu", "cpu_fraction", "memory_mib", "rootfs", "metadata"]:
            self.assertIn(k, g.json)
        self.assertEqual(g.json["vm_id"], vm)
        self.assertEqual(g.json["state"], "running")
        self.assertEqual(g.json["rootfs"], "standard")
        self.assertEqual(g.json["metadata"], {"team": "a", "k y": "é"})
        self.assertIsInstance(g.json["vcpu"], int)
        self.assertIsInstance(g.json["cpu_fraction"], (int, float))
        self.assertIsInstance(g.json["memory_mib"], int)

        listed = self.v1("GET", "/sandboxes")
        self.assertStatus(listed, 200)
        mine = [x for x in listed.json if x["vm_id"] == vm]
        self.assertEqual(len(mine), 1)
        for k in ["vm_id", "state", "vcpu", "cpu_fraction", "memory_mib", "metadata"]:
            self.assertIn(k, mine[0])
        self.assertEqual(mine[0]["state"], "running")
        self.assertEqual(mine[0]["metadata"], {"team": "a", "k y": "é"})

        # Debian with python3.
        out = self.ok_exec(vm, "python3 -c 'print(1+1)'; . /etc/os-release; echo $ID")
        self.assertEqual(out, {"output": "2\ndebian\n", "exit_code": 0})

        d = self.v1("DELETE", f"/sandboxes/{vm}")
        self.assertStatus(d, 200)
        self.assertEqual(d.json, {"vm_id": vm, "state": "destroyed"})
        # Teardown is complete when DELETE answers.
        self.assertError(self.v1("GET", f"/sandboxes/{vm}"), 404)
        self.assertNotIn(vm, [x["vm_id"] for x in self.v1("GET", "/sandboxes").json])
        self.assertError(self.v1("DELETE", f"/sandboxes/{vm}"), 404)
        self.assertError(self.exec(vm, "true"), 404)
        self.assertError(self.logs(vm), 404)
        self.assertNotEqual(self.envd_health(s["endpoint"], vm), 204)

    def test_visible_in_the_e2b_api(self):
        vm = self.make()["vm_id"]
        r = self.server.request("GET", f"/sandboxes/{vm}")  # X-API-Key
        self.assertStatus(r, 200)
        self.assertEqual(r.json["sandboxID"], vm)
        self.assertIn(vm, [x["sandboxID"] for x in self.server.request("GET", "/sandboxes").json])
        types = [e["type"] for e in self.server.events(vm)]
        self.assertEqual(types[:1], ["sandbox.lifecycle.created"], types)

    def test_templates(self):
        # Each e2a template is a template of the catalogue (ops/templates.json).
        for name, probe in [("browser", "chromium --version"),
                            ("cua", "command -v Xvfb fluxbox chromium"),
                            ("canvas", "command -v Xvfb fluxbox chromium")]:
            with self.subTest(template=name):
                vm = self.make(template=name)["vm_id"]
                got = self.v1("GET", f"/sandboxes/{vm}").json
                self.assertEqual(got["rootfs"], name)
                self.assertGreaterEqual(got["memory_mib"], 1024)
                r = self.ok_exec(vm, probe)
                self.assertEqual(r["exit_code"], 0, r)
                self.assertStatus(self.v1("DELETE", f"/sandboxes/{vm}"), 200)
        before = self.v1("GET", "/sandboxes").json
        self.assertError(self.v1("POST", "/sandboxes", {"template": "nope"}), 501, "unknown template")
        self.assertError(self.v1("POST", "/sandboxes", {"template": "base"}), 501, "unknown template")
        self.assertEqual(self.v1("GET", "/sandboxes").json, before)

    def test_agents_need_a_key(self):
        before = self.v1("GET", "/sandboxes").json
        r = self.v1("POST", "/sandboxes", {"template": "standard", "agent": "claude-code",
                                            "task": "say hi"})
        self.assertError(r, 400, "llm_key")
        self.assertEqual(self.v1("GET", "/sandboxes").json, before)


class BadInput(V1Test):
    def test_create_validation(self):
        before = self.v1("GET", "/sandboxes").json
        base = {"template": "standard"}
        cases = [
            ({}, "template"),
            ({"metadata": {"a": "b"}}, "template"),
            ({"template": 7}, "template"),
            ({"template": None}, "template"),
            ({**base, "agent": 5, "llm_key": "k"}, "agent"),
            ({**base, "agent": "claude-code", "llm_key": 5}, "llm_key"),
            ({**base, "task": 5}, "task"),
            ({**base, "model": ["m"]}, "model"),
            ({**base, "idle_timeout_seconds": 0}, "idle_timeout_seconds"),
            ({**base, "idle_timeout_seconds": 7201}, "idle_timeout_seconds"),
            ({**base, "idle_timeout_seconds": -1}, "idle_timeout_seconds"),
            ({**base, "idle_timeout_seconds": "60"}, "idle_timeout_seconds"),
            ({**base, "idle_timeout_seconds": 1.5}, "idle_timeout_seconds"),
            ({**base, "max_lifetime_seconds": 0}, "max_lifetime_seconds"),
            ({**base, "max_lifetime_seconds": 7201}, "max_lifetime_seconds"),
            ({**base, "max_lifetime_seconds": "7200"}, "max_lifetime_seconds"),
            ({**base, "env_vars": ["A=1"]}, "env_vars"),
            ({**base, "env_vars": {"A": 1}}, "env_vars"),
            ({**base, "env_vars": {"A=B": "1"}}, "env_vars has an invalid name"),
            ({**base, "metadata": [1]}, "metadata"),
            ({**base, "metadata": {"a": 1}}, "metadata"),
        ]
        for body, word in cases:
            with self.subTest(body=body):
                self.assertError(self.v1("POST", "/sandboxes", body), 400, word)
        for name in RESERVED_ENV:
            with self.subTest(env=name):
                r = self.v1("POST", "/sandboxes", {**base, "env_vars": {"OK": "1", name: "x"}})
                self.assertError(r, 400, name)
        self.assertError(self.v1("POST", "/sandboxes", raw=b"{not json"), 400)
        self.assertError(self.v1("POST", "/sandboxes", raw=b"[1]"), 400)
        # None of it made a sandbox.
        self.assertEqual(self.v1("GET", "/sandboxes").json, before)

    def test_exec_validation(self):
        vm = self.make()["vm_id"]
        p = f"/sandboxes/{vm}/exec"
        self.assertError(self.v1("POST", p, {}), 400, "command")
        self.assertError(self.v1("POST", p, {"command": ""}), 400, "command")
        self.assertError(self.v1("POST", p, {"command": 5}), 400, "command")
        self.assertError(self.exec("doesnotexist", "true"), 404)
        self.assertError(self.v1("GET", "/sandboxes/doesnotexist"), 404)
        self.assertError(self.v1("DELETE", "/sandboxes/doesnotexist"), 404)


class Exec(V1Test):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        r = cls.server.request("POST", "/v1/sandboxes",
                               {"template": "standard", "env_vars": {"GREETING": "hello there"},
                                "idle_timeout_seconds": 600},
                               key=None, headers={"Authorization": "Bearer " + cls.server.key})
        if r.status != 201:
            raise AssertionError(f"create failed: {r}")
        cls.vm = r.json["vm_id"]
        cls.addClassCleanup(cls.server.request, "DELETE", f"/v1/sandboxes/{cls.vm}", key=None,
                            headers={"Authorization": "Bearer " + cls.server.key})

    def test_stdout_and_stderr_interleave_in_order(self):
        self.assertEqual(self.ok_exec(self.vm, "echo a; echo b >&2; echo c"),
                         {"output": "a\nb\nc\n", "exit_code": 0})

    def test_runs_with_sh_c(self):
        out = self.ok_exec(self.vm, "for i in 1 2 3; do printf '%s,' $i; done; echo; "
                                    "printf 'b\\na\\n' | sort | tr '\\n' ' '; cd /tmp && pwd")
        self.assertEqual(out, {"output": "1,2,3,\na b /tmp\n", "exit_code": 0})

    def test_env_vars_from_create_are_visible(self):
        self.assertEqual(self.ok_exec(self.vm, 'echo "$GREETING"')["output"], "hello there\n")

    def test_nonzero_exit_is_still_200(self):
        self.assertEqual(self.ok_exec(self.vm, "echo x; exit 7"), {"output": "x\n", "exit_code": 7})
        self.assertEqual(self.ok_exec(self.vm, "false")["exit_code"], 1)


class Orgs(V1Test):
    def test_orgs_never_see_each_other(self):
        other = self.server.new_key("other-org")
        mine = self.make()["vm_id"]
        theirs = self.make(key=other)["vm_id"]
        for method, path, body in [
            ("GET", f"/sandboxes/{mine}", None),
            ("POST", f"/sandboxes/{mine}/exec", {"command": "true"}),
            ("GET", f"/sandboxes/{mine}/logs", None),
            ("DELETE", f"/sandboxes/{mine}", None),
        ]:
            with self.subTest(method=method, path=path):
                self.assertError(self.v1(method, path, body, key=other), 404)
        self.assertEqual([x["vm_id"] for x in self.v1("GET", "/sandboxes", key=other).json], [theirs])
        self.assertEqual([x["vm_id"] for x in self.v1("GET", "/sandboxes").json], [mine])
        self.assertStatus(self.v1("GET", f"/sandboxes/{mine}"), 200)
        self.assertError(self.v1("GET", f"/sandboxes/{theirs}"), 404)


class Logs(V1Test):
    def test_exec_output_and_lifecycle_oldest_first(self):
        vm = self.make()["vm_id"]
        self.ok_exec(vm, "echo one; echo two")
        self.ok_exec(vm, "printf 'three\\n'")
        lines = self.ok_logs(vm)
        for entry in lines:
            self.assertEqual(set(entry), {"timestamp", "stream", "line"}, entry)
            self.assertIn(entry["stream"], ["stdout", "system", "stderr"], entry)
            ts(entry["timestamp"])
        stamps = [ts(e["timestamp"]) for e in lines]
        self.assertEqual(stamps, sorted(stamps))
        out = [e["line"].rstrip("\n") for e in lines if e["stream"] == "stdout"]
        self.assertEqual(out, ["one", "two", "three"])
        created = [i for i, e in enumerate(lines) if e["stream"] == "system" and "created" in e["line"]]
        self.assertTrue(created, lines)
        first_out = next(i for i, e in enumerate(lines) if e["stream"] == "stdout")
        self.assertLess(created[0], first_out)

    def test_limit_keeps_the_most_recent(self):
        vm = self.make()["vm_id"]
        self.ok_exec(vm, "seq 1 150")
        full = self.ok_logs(vm, "limit=1000")
        out = [e["line"].rstrip("\n") for e in full if e["stream"] == "stdout"]
        self.assertEqual(out, [str(i) for i in range(1, 151)])
        default = self.ok_logs(vm)
        self.assertEqual(len(default), 100)
        self.assertEqual(default, full[-100:])
        self.assertEqual([e["line"].rstrip("\n") for e in default if e["stream"] == "stdout"][-1], "150")
        self.assertEqual(self.ok_logs(vm, "limit=5"), full[-5:])
        self.assertEqual(self.ok_logs(vm, "limit=1"), full[-1:])
        for bad in ["limit=0", "limit=1001", "limit=-1", "limit=abc", "since=yesterday",
                    "since=2024-13-45T99:00:00Z"]:
            with self.subTest(query=bad):
                self.assertError(self.logs(vm, bad), 400)

    def test_since_filters_by_time(self):
        vm = self.make()["vm_id"]
        self.ok_exec(vm, "echo before")
        time.sleep(1.2)
        t = int(time.time()) + 1  # a whole second strictly after "before"
        time.sleep(max(0.0, t - time.time()) + 1.2)
        self.ok_exec(vm, "echo after")
        since = iso(t)
        lines = self.ok_logs(vm, "since=" + quote(since))
        out = [e["line"].rstrip("\n") for e in lines if e["stream"] == "stdout"]
        self.assertEqual(out, ["after"])
        for e in lines:
            self.assertGreaterEqual(ts(e["timestamp"]), ts(since), e)
        # With fractional seconds and an offset too.
        frac = datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000+00:00")
        lines = self.ok_logs(vm, "since=" + quote(frac))
        self.assertEqual([e["line"].rstrip("\n") for e in lines if e["stream"] == "stdout"], ["after"])
        self.assertEqual(self.ok_logs(vm, "since=" + quote(iso(time.time() + 3600))), [])
        everything = self.ok_logs(vm, "since=" + quote("2000-01-01T00:00:00Z"))
        self.assertEqual([e["line"].rstrip("\n") for e in everything if e["stream"] == "stdout"],
                         ["before", "after"])


class IdleTimeout(V1Test):
    def test_idle_sandbox_is_killed(self):
        vm = self.make(idle_timeout_seconds=2)["vm_id"]
        # Watch through the E2B events only: any /v1 request would be activity.
        evs, killed = self.killed_events(vm, within=6)
        self.assertEqual(len(killed), 1, evs)
        self.assertEqual(killed[0]["eventData"]["kill_reason"], "idle")
        self.assertEqual(evs[-1]["type"], "sandbox.lifecycle.killed")
        created = [e for e in evs if e["type"] == "sandbox.lifecycle.created"]
        lived = (ts(killed[0]["timestamp"]) - ts(created[0]["timestamp"])).total_seconds()
        self.assertGreaterEqual(lived, 1.5, evs)
        self.assertLessEqual(lived, 5.0, evs)
        self.assertError(self.wait_gone(vm, within=3), 404)
        self.assertNotIn(vm, [x["vm_id"] for x in self.v1("GET", "/sandboxes").json])

    def test_every_v1_request_is_activity(self):
        s = self.make(idle_timeout_seconds=2)
        vm = s["vm_id"]
        # Each phase alone lasts longer than the idle timeout since the last
        # request of the phase before, so each kind must count by itself.
        phases = [
            ("GET", lambda: self.v1("GET", f"/sandboxes/{vm}")),
            ("exec", lambda: self.exec(vm, "true")),
            ("logs", lambda: self.logs(vm, "limit=1")),
        ]
        for name, call in phases:
            for i in range(3):
                time.sleep(1.0)
                r = call()
                self.assertEqual(r.status, 200, f"{name} #{i}: {r}\n{self.server.log()[-2000:]}")
        self.assertEqual(self.envd_health(s["endpoint"], vm), 204)
        _, killed = self.killed_events(vm)
        self.assertEqual(killed, [])
        # Then left alone, it goes for being idle.
        evs, killed = self.killed_events(vm, within=6)
        self.assertEqual([e["eventData"]["kill_reason"] for e in killed], ["idle"], evs)
        self.assertError(self.wait_gone(vm, within=3), 404)


class MaxLifetime(V1Test):
    def test_hard_cap_despite_activity_and_e2b_extension(self):
        s = self.make(max_lifetime_seconds=3, idle_timeout_seconds=60)
        t0 = time.time()
        vm = s["vm_id"]
        ext = self.server.request("POST", f"/sandboxes/{vm}/timeout", {"timeout": 600})
        self.assertLess(ext.status, 500, ext)
        last_ok = None
        failed = None
        while time.time() < t0 + 8:
            r = self.exec(vm, "true")
            if r.status != 200:
                failed = r
                break
            last_ok = time.time()
            time.sleep(0.3)
        self.assertIsNotNone(failed, "still running 8 s into a 3 s lifetime")
        self.assertIsNotNone(last_ok)
        self.assertGreaterEqual(last_ok - t0, 1.0, "killed well before its lifetime")
        self.assertLessEqual(time.time() - t0, 6.5)
        self.assertError(self.wait_gone(vm, within=3), 404)
        evs, killed = self.killed_events(vm, within=3)
        self.assertEqual(len(killed), 1, evs)
        self.assertEqual(killed[0]["eventData"]["kill_reason"], "timeout")
        self.assertEqual(evs[-1]["type"], "sandbox.lifecycle.killed")


class HostCapacity(V1Test):
    server_args = ("--max-sandboxes", "2")

    def test_host_limit_answers_409_and_frees_on_delete(self):
        a = self.make()["vm_id"]
        self.make()
        self.assertError(self.v1("POST", "/sandboxes", {"template": "standard"}), 409)
        other = self.server.new_key("other-org")
        self.assertError(self.v1("POST", "/sandboxes", {"template": "standard"}, key=other), 409)
        self.assertStatus(self.v1("DELETE", f"/sandboxes/{a}"), 200)
        self.make()


class OrgCapacity(V1Test):
    server_args = ("--max-sandboxes-per-org", "1")

    def test_per_org_limit_answers_409(self):
        a = self.make()["vm_id"]
        self.assertError(self.v1("POST", "/sandboxes", {"template": "standard"}), 409)
        other = self.server.new_key("other-org")
        self.make(key=other)
        self.assertError(self.v1("POST", "/sandboxes", {"template": "standard"}, key=other), 409)
        self.assertStatus(self.v1("DELETE", f"/sandboxes/{a}"), 200)
        self.make()


class AgentTest(V1Test):
    """One-shot agents, configured like the real ones (ops/agents.json) but
    running a scripted command: no LLM is reachable here."""
    server_args = ("--agents", SCRIPTED_AGENTS)

    def agent_sandbox(self, task, agent="claude-code", model="claude-sonnet-4-5", **fields):
        return self.make(agent=agent, llm_key=KEY, task=task, model=model, **fields)["vm_id"]

    def wait_agent(self, vm, statuses, within=20.0):
        deadline = time.time() + within
        while True:
            r = self.v1("GET", f"/sandboxes/{vm}")
            self.assertStatus(r, 200)
            if r.json.get("agent_status") in statuses or time.time() >= deadline:
                return r.json
            time.sleep(0.1)

    def wait_pid_logged(self, vm, within=10.0):
        """Until the agent's start is an event and the scripted agent says it
        is waiting (its signal handling is set up)."""
        deadline = time.time() + within
        started = False
        while time.time() < deadline:
            started = started or any(e["eventData"].get("agent", {}).get("pid")
                                     for e in self.server.events(vm))
            if started and "waiting" in [l["line"] for l in self.ok_logs(vm)]:
                return
            time.sleep(0.1)
        self.fail("the agent's start was never logged, or it never got to wait")

    def assertNoKey(self, what, text):
        self.assertNotIn(KEY, text, what)


class Agents(AgentTest):
    def test_completes_with_output_in_logs_and_the_key_nowhere(self):
        vm = self.agent_sandbox("summarize README.md")
        got = self.wait_agent(vm, {"completed", "failed"})
        self.assertEqual((got["agent_status"], got["agent_exit_code"], got["agent"]),
                         ("completed", 0, "claude-code"), got)
        lines = [l["line"] for l in self.ok_logs(vm)]
        self.assertIn("agent starting: task=summarize README.md model=claude-sonnet-4-5", lines)
        self.assertIn("done: summarize README.md", lines)
        # The agent saw its key (it printed it), but it left the sandbox redacted.
        self.assertIn("key=[redacted]", lines)
        self.assertNoKey("logs", json.dumps(self.ok_logs(vm)))
        self.assertNoKey("get", self.v1("GET", f"/sandboxes/{vm}").raw.decode())
        self.assertNoKey("list", self.v1("GET", "/sandboxes").raw.decode())
        self.assertNoKey("e2b get", self.server.request("GET", f"/sandboxes/{vm}").raw.decode())
        events = self.server.events(vm)
        self.assertNoKey("events (the webhook payloads)", json.dumps(events))
        agent = [e["eventData"]["agent"] for e in events if "agent" in e["eventData"]]
        self.assertEqual(agent[0]["name"], "claude-code")
        self.assertEqual(agent[0]["model"], "claude-sonnet-4-5")
        self.assertIn({"status": "completed", "exit_code": 0}, agent[1:], agent)
        # Nor does it show through exec, process listings or the server's own log.
        out = self.ok_exec(vm, 'echo "env=$ANTHROPIC_API_KEY"; cat /proc/*/environ 2>/dev/null | tr "\\0" "\\n" | grep -c ANTHROPIC || true')
        self.assertNoKey("exec", out["output"])
        self.assertIn("env=\n", out["output"])
        procs = self.server.request("GET", f"/sandboxes/{vm}/processes")
        self.assertNoKey("processes", procs.raw.decode())
        self.assertNoKey("server log", self.server.log())

    def test_failure_reports_the_exit_code_and_stderr(self):
        vm = self.agent_sandbox("fail please")
        got = self.wait_agent(vm, {"completed", "failed"})
        self.assertEqual((got["agent_status"], got["agent_exit_code"]), ("failed", 3), got)
        lines = self.ok_logs(vm)
        self.assertIn(("stderr", "failing as asked"), [(l["stream"], l["line"]) for l in lines])

    def test_cancel_sends_sigterm_and_is_an_event(self):
        vm = self.agent_sandbox("wait for cancel")
        self.assertEqual(self.wait_agent(vm, {"running"})["agent_status"], "running")
        self.wait_pid_logged(vm)
        r = self.v1("POST", f"/sandboxes/{vm}/cancel")
        self.assertStatus(r, 200)
        self.assertEqual(r.json, {"vm_id": vm, "cancelled": True, "reason": "user_request"})
        got = self.wait_agent(vm, {"completed", "failed"})
        self.assertEqual((got["agent_status"], got["agent_exit_code"]), ("failed", 143), got)
        self.assertIn("got SIGTERM", [l["line"] for l in self.ok_logs(vm)])
        agent = [e["eventData"].get("agent", {}) for e in self.server.events(vm)]
        self.assertIn({"cancel": "user_request"}, agent, agent)
        # Nothing left to cancel; the sandbox itself keeps running.
        self.assertError(self.v1("POST", f"/sandboxes/{vm}/cancel"), 409, "not running")
        self.assertEqual(self.ok_exec(vm, "echo alive")["output"], "alive\n")

    def test_cancel_kills_an_agent_that_ignores_sigterm_after_the_grace_period(self):
        vm = self.agent_sandbox("stubborn")
        self.wait_agent(vm, {"running"})
        self.wait_pid_logged(vm)
        t0 = time.time()
        self.assertStatus(self.v1("POST", f"/sandboxes/{vm}/cancel"), 200)
        self.assertEqual(self.wait_agent(vm, {"failed"}, within=1.0).get("agent_status"), "running")
        got = self.wait_agent(vm, {"completed", "failed"}, within=15)
        self.assertEqual((got["agent_status"], got["agent_exit_code"]), ("failed", 137), got)
        self.assertGreaterEqual(time.time() - t0, 1.8)

    def test_a_working_agent_is_not_idle(self):
        vm = self.agent_sandbox("wait a while", idle_timeout_seconds=2)
        self.wait_pid_logged(vm)
        deadline = time.time() + 4
        while time.time() < deadline:  # no API activity meanwhile
            time.sleep(0.5)
        _, killed = self.killed_events(vm)
        self.assertEqual(killed, [], "killed as idle while its agent worked")
        self.assertStatus(self.v1("POST", f"/sandboxes/{vm}/cancel"), 200)
        # Once the agent is done, idleness counts again.
        evs, killed = self.killed_events(vm, within=10)
        self.assertEqual([k["eventData"]["kill_reason"] for k in killed], ["idle"], evs)

    def test_codex_with_an_o_series_model(self):
        vm = self.agent_sandbox("list files", agent="codex", model="o3-mini")
        got = self.wait_agent(vm, {"completed", "failed"})
        self.assertEqual(got["agent_status"], "completed", got)
        self.assertIn("codex: list files (o3-mini) key=[redacted]", [l["line"] for l in self.ok_logs(vm)])

    def test_validation(self):
        before = self.v1("GET", "/sandboxes").json
        base = {"template": "standard", "llm_key": KEY, "task": "t"}
        cases = [
            ({**base, "agent": "claude-code", "model": "gpt-4o"}, 400, "claude-"),
            ({**base, "agent": "codex", "model": "claude-sonnet-4-5"}, 400, "gpt-"),
            ({**base, "agent": "deictic"}, 400, "model is required"),
            ({**base, "agent": "deictic", "model": "any-model"}, 501, "deictic"),
            ({**base, "agent": "nope"}, 501, "unknown agent"),
            ({"template": "standard", "agent": "codex", "task": "t"}, 400, "llm_key"),
            ({"template": "standard", "llm_key": KEY}, 400, "agent"),
            ({"template": "standard", "model": "claude-x"}, 400, "agent"),
            ({**base, "agent": "claude-code", "env_vars": {"ANTHROPIC_API_KEY": "x"}}, 400, "ANTHROPIC_API_KEY"),
            ({**base, "agent": "claude-code", "env_vars": {"LLM_API_KEY": "x"}}, 400, "LLM_API_KEY"),
            ({**base, "agent": "claude-code", "template": "nope"}, 501, "unknown template"),
        ]
        for body, status, word in cases:
            with self.subTest(body=body):
                r = self.v1("POST", "/sandboxes", body)
                self.assertError(r, status, word)
                self.assertNoKey("error", r.raw.decode())
        self.assertEqual(self.v1("GET", "/sandboxes").json, before)
        # Cancel needs an agent, and the caller's sandbox.
        vm = self.make()["vm_id"]
        self.assertError(self.v1("POST", f"/sandboxes/{vm}/cancel"), 409, "no agent")
        self.assertError(self.v1("POST", "/sandboxes/doesnotexist/cancel"), 404)
        other = self.server.new_key("agents-other")
        self.assertError(self.v1("POST", f"/sandboxes/{vm}/cancel", key=other), 404)


class AgentAcrossRestart(AgentTest):
    """A server of its own, killed with -9 while an agent works."""
    def test_the_agent_is_followed_again_after_a_crash(self):
        vm = self.agent_sandbox("wait across the crash")
        self.wait_pid_logged(vm)
        self.server.crash()
        self.server.start()
        self.assertEqual(self.wait_agent(vm, {"running"})["agent_status"], "running")
        self.assertStatus(self.v1("POST", f"/sandboxes/{vm}/cancel"), 200)
        got = self.wait_agent(vm, {"completed", "failed"})
        self.assertEqual((got["agent_status"], got["agent_exit_code"]), ("failed", 143), got)
        self.assertIn("got SIGTERM", [l["line"] for l in self.ok_logs(vm)])


if __name__ == "__main__":
    main()
