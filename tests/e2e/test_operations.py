"""What an operator deploys with: the spec served by the server itself
(GET /openapi.yaml), JSON log lines (--log-format json) and the systemd unit
(ops/sandboxd.service, checked by systemd-analyze against this checkout)."""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import BIN, Server, ServerTest, main

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


class Spec(ServerTest):
    def test_the_spec_is_served_as_built_without_a_key(self):
        r = self.server.request("GET", "/openapi.yaml", key=None)
        self.assertStatus(r, 200)
        self.assertEqual(r.headers.get("Content-Type"), "application/yaml")
        with open(os.path.join(ROOT, "http", "openapi.yaml"), "rb") as f:
            self.assertEqual(r.raw, f.read())


class JsonLogs(ServerTest):
    server_args = ("--log-format", "json")

    def test_every_line_is_one_json_object(self):
        sid = self.server.create()
        self.assertStatus(self.server.request("DELETE", f"/sandboxes/{sid}"), 204)
        self.server.stop()
        with open(self.server.log_path, encoding="utf-8") as f:
            lines = [line for line in f.read().splitlines() if line.strip()]
        self.assertGreater(len(lines), 2)
        for line in lines:
            entry = json.loads(line)
            self.assertEqual(set(entry) - {"logger"}, {"ts", "level", "msg"}, line)
            self.assertRegex(entry["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertTrue(any("listening" in json.loads(l)["msg"] or "serving" in json.loads(l)["msg"]
                            for l in lines), lines[:5])
        self.server.start()

    def test_an_unknown_format_is_refused(self):
        d = tempfile.mkdtemp(prefix="sandboxd-e2e-")
        try:
            out = subprocess.run([BIN, "serve", "--data-dir", d, "--log-format", "xml"],
                                 capture_output=True, text=True, timeout=60)
            self.assertNotEqual(out.returncode, 0)
            self.assertIn("--log-format must be text or json", out.stderr + out.stdout)
        finally:
            shutil.rmtree(d, ignore_errors=True)


class SystemdUnit(unittest.TestCase):
    def test_the_unit_verifies(self):
        if shutil.which("systemd-analyze") is None:
            raise unittest.SkipTest("systemd-analyze is not installed")
        with open(os.path.join(ROOT, "ops", "sandboxd.service")) as f:
            unit = f.read()
        self.assertIn("KillMode=process", unit, "a restart must leave the sandboxes running")
        d = tempfile.mkdtemp(prefix="sandboxd-unit-")
        try:
            path = os.path.join(d, "sandboxd.service")
            with open(path, "w") as f:
                f.write(unit.replace("/opt/sandboxd", ROOT))
            out = subprocess.run(["systemd-analyze", "verify", path], capture_output=True,
                                 text=True, timeout=60)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertNotIn("Unknown", out.stderr)
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
