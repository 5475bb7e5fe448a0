"""What a sandbox prints cannot break or bloat the server.

Code inside a sandbox controls the bytes its processes print, the names of
its files and the text it hands back through the agent. Attacks, from a
real sandbox against a real server:

* NonUtf8Output: a process prints bytes that are not UTF-8. REST exec and
  e2a exec answer 200 with U+FFFD in their place, the sandbox's logs read
  back the same way, and the envd Process/Start stream (base64 bytes)
  delivers every byte unchanged and ends normally with the exit code.
* HugeOutput: a process prints 150 MB (random bytes). REST exec answers 200
  within a bounded time with the first 1 MiB of each stream and
  stdoutTruncated, the exit code intact; the envd stream carries all 150 MB
  exactly. The server's memory (VmRSS/VmHWM of its /proc status) grows by
  far less than the output, both ways.
* HostileText: a process prints JSON nested 200,000 deep, files are named
  with bytes that are not UTF-8; REST exec, filesystem list, envd ListDir
  and the logs answer 200 and the server stays up.

The agent answering garbage itself (not JSON, too deep, too big, wrong
shapes) is covered by tests/unit/agent_answers_test.cpp with a fake agent.
"""
import json
import time

from harness import Envd, ServerTest, main

MiB = 1 << 20
BIG = 150 * 1000 * 1000


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) * 1024
    return out


class OutputTest(ServerTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        r = cls.server.request("POST", "/sandboxes", {"templateID": "base", "timeout": 900})
        assert r.status == 201, r
        cls.sid = r.json["sandboxID"]
        cls.envd = Envd(cls.server, r.json)

    def tearDown(self):
        # Whatever the attack, the server is still up and answering.
        self.assertIsNone(self.server.proc.poll(), self.server.log())
        self.assertStatus(self.server.request("GET", f"/sandboxes/{self.sid}"), 200)

    def exec_(self, script, **fields):
        return self.server.request("POST", f"/sandboxes/{self.sid}/processes",
                                   {"cmd": "/bin/sh", "args": ["-c", script], **fields})

    def e2a_exec(self, command):
        return self.server.request("POST", f"/v1/sandboxes/{self.sid}/exec", {"command": command},
                                   key=None, headers={"Authorization": "Bearer " + self.server.key})

    def envd_start(self, script):
        """(stdout bytes, stderr bytes, end event, last envelope)."""
        return Envd.collect(self.envd.stream(
            "process.Process/Start", {"process": {"cmd": "/bin/sh", "args": ["-c", script]}},
            timeout=170))

    def server_memory(self):
        return proc_status(self.server.proc.pid)


class NonUtf8Output(OutputTest):
    SCRIPT = r"printf 'a\377\376b caf\303\251\n'; printf '\200err\n' >&2; exit 4"

    def test_rest_exec_renders_replacement_characters(self):
        r = self.exec_(self.SCRIPT)
        self.assertStatus(r, 200)
        self.assertEqual(r.json["stdout"], "a\ufffd\ufffdb caf\u00e9\n")
        self.assertEqual(r.json["stderr"], "\ufffderr\n")
        self.assertEqual(r.json["exitCode"], 4)
        self.assertIs(r.json["stdoutTruncated"], False)
        self.assertIs(r.json["stderrTruncated"], False)

    def test_e2a_exec_and_logs_render_replacement_characters(self):
        r = self.e2a_exec(r"printf 'x\377y\n'")
        self.assertStatus(r, 200)
        self.assertEqual(r.json["output"], "x\ufffdy\n")
        self.assertEqual(r.json["exit_code"], 0)
        self.assertNotIn("truncated", r.json)
        logs = self.server.request("GET", f"/v1/sandboxes/{self.sid}/logs?limit=1000", key=None,
                                   headers={"Authorization": "Bearer " + self.server.key})
        self.assertStatus(logs, 200)
        self.assertIn("x\ufffdy", [l["line"] for l in logs.json["lines"]])
        self.assertStatus(self.server.request("GET", f"/sandboxes/{self.sid}/logs?limit=1000"), 200)

    def test_envd_stream_carries_bytes_intact_and_ends(self):
        every = bytes(range(256)) * 16
        script = ("python3 -c 'import sys; b=bytes(range(256))*16; "
                  "sys.stdout.buffer.write(b); sys.stderr.buffer.write(b[::-1])'; exit 5")
        out, err, end, last = self.envd_start(script)
        self.assertEqual(out, every)
        self.assertEqual(err, every[::-1])
        self.assertEqual(end["exitCode"], 5)
        self.assertEqual(last, (2, {}))  # a normal end of stream, no error
        # The stream's output went to the logs as text too, and they read back.
        logs = self.server.request("GET", f"/sandboxes/{self.sid}/logs?limit=1000")
        self.assertStatus(logs, 200)


class HugeOutput(OutputTest):
    # Random bytes: no newlines to speak of, mostly not UTF-8.
    SCRIPT = f"head -c {BIG} /dev/urandom; echo done >&2; exit 7"
    GROWTH_LIMIT = 100 * MiB

    def assertBounded(self, before, after, what):
        growth = after["VmHWM"] - before["VmRSS"]
        print(f"\n  {what}: server VmRSS {before['VmRSS'] // MiB} MiB before, "
              f"{after['VmRSS'] // MiB} MiB after, peak (VmHWM) {after['VmHWM'] // MiB} MiB, "
              f"growth {growth // MiB} MiB for {BIG // 1000000} MB printed", flush=True)
        self.assertLess(growth, self.GROWTH_LIMIT, what)

    def test_rest_exec_keeps_one_mib_and_reports_truncation(self):
        before = self.server_memory()
        t0 = time.time()
        r = self.exec_(self.SCRIPT, timeout=120)
        took = time.time() - t0
        after = self.server_memory()
        self.assertStatus(r, 200)
        print(f"\n  REST exec of {BIG // 1000000} MB answered in {took:.1f} s", flush=True)
        self.assertLess(took, 60)
        self.assertIs(r.json["stdoutTruncated"], True)
        self.assertIs(r.json["stderrTruncated"], False)
        self.assertEqual(r.json["stderr"], "done\n")
        self.assertEqual(r.json["exitCode"], 7)
        # 1 MiB of bytes, each at most one U+FFFD.
        self.assertLessEqual(len(r.json["stdout"]), MiB)
        self.assertGreater(len(r.json["stdout"]), MiB // 4)
        self.assertBounded(before, after, "REST exec")

    def test_e2a_exec_says_it_truncated(self):
        r = self.e2a_exec("head -c 3000000 /dev/zero | tr '\\0' a; echo tail >&2; exit 3")
        self.assertStatus(r, 200)
        self.assertEqual(r.json["output"], "a" * MiB)
        self.assertIs(r.json["truncated"], True)
        self.assertEqual(r.json["exit_code"], 3)

    def test_envd_stream_carries_all_of_it(self):
        before = self.server_memory()
        t0 = time.time()
        out, err, end, last = self.envd_start(f"head -c {BIG} /dev/zero; exit 7")
        took = time.time() - t0
        after = self.server_memory()
        print(f"\n  envd stream of {BIG // 1000000} MB took {took:.1f} s", flush=True)
        self.assertEqual(len(out), BIG)
        self.assertEqual(out.count(0), BIG)
        self.assertEqual(end["exitCode"], 7)
        self.assertEqual(last, (2, {}))
        self.assertBounded(before, after, "envd stream")


class HostileText(OutputTest):
    def test_deeply_nested_json_printed_is_just_text(self):
        deep = "[" * 200000 + "]" * 200000
        script = "python3 -c 'print(\"[\"*200000 + \"]\"*200000)'"
        r = self.exec_(script)
        self.assertStatus(r, 200)
        self.assertEqual(r.json["stdout"], deep + "\n")
        r = self.e2a_exec(script)
        self.assertStatus(r, 200)
        self.assertEqual(r.json["output"], deep + "\n")
        out, _, end, last = self.envd_start(script)
        self.assertEqual(out, (deep + "\n").encode())
        self.assertEqual(last, (2, {}))
        self.assertStatus(self.server.request("GET", f"/v2/sandboxes/{self.sid}/logs?limit=1000"), 200)
        self.assertStatus(self.server.request("GET", f"/sandboxes/{self.sid}/envs"), 200)

    def test_file_names_that_are_not_utf8(self):
        r = self.exec_("python3 - <<'EOF'\n"
                       "import os, shutil\n"
                       "d = b'/tmp/names'\n"
                       "shutil.rmtree(d, ignore_errors=True)\n"
                       "os.makedirs(d + b'/sub')\n"
                       "for n in [b'/ok', b'/bad\\xffname', b'/sub/\\xc0']:\n"
                       "    open(d + n, 'wb').close()\n"
                       "print(len(os.listdir(d)))\n"
                       "EOF")
        self.assertStatus(r, 200)
        self.assertEqual(r.json["stdout"].strip(), "3")
        r = self.server.request("GET", f"/sandboxes/{self.sid}/filesystem/list?path=/tmp/names")
        self.assertStatus(r, 200)
        names = sorted(e["name"] for e in r.json["entries"])
        self.assertEqual(names, ["bad\ufffdname", "ok", "sub"])
        r = self.envd.unary("filesystem.Filesystem/ListDir", {"path": "/tmp/names", "depth": 2})
        self.assertEqual(r.status, 200, r)
        paths = sorted(e["path"] for e in r.json["entries"])
        self.assertIn("/tmp/names/bad\ufffdname", paths)
        self.assertIn("/tmp/names/sub/\ufffd", paths)
        # ls of the directory, bytes and all, through REST exec.
        r = self.exec_("ls /tmp/names")
        self.assertStatus(r, 200)
        self.assertIn("bad\ufffdname", r.json["stdout"])


if __name__ == "__main__":
    main()
