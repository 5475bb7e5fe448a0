"""Secrets (E2B's /secrets): write-only values, per org, in E2B's shapes;
the value is sealed at rest and never leaves in an answer, a log line or an
event, before or after a restart."""
import os

from harness import Server, ServerTest, main

VALUE = "sk-live-Zq8v3kT1b9-plaintext-canary-7f3e"


class SecretTest(ServerTest):
    @classmethod
    def setUpClass(cls):
        cls.server = Server()
        cls.addClassCleanup(cls.server.cleanup)
        cls.bodies = []

    def req(self, method, path, body=None, key="default"):
        r = self.server.request(method, path, body, key=key)
        self.bodies.append(r.raw)
        return r

    def make(self, name, value=VALUE, **fields):
        r = self.req("POST", "/secrets", {"name": name, "value": value, **fields})
        self.assertStatus(r, 201)
        self.addCleanup(self.server.request, "DELETE", f"/secrets/{r.json['secretID']}")
        return r.json

    def test_lifecycle_in_e2b_shapes(self):
        s = self.make("OpenAI-Key", metadata={"team": "ml"})
        self.assertRegex(s["secretID"], r"^sec_[0-9a-f]{20}$")
        self.assertEqual(s["name"], "openai-key", "names are lower-cased")
        self.assertEqual(s["currentVersion"], 1)
        self.assertEqual(s["metadata"], {"team": "ml"})
        self.assertEqual(set(s), {"secretID", "name", "currentVersion", "metadata", "createdAt",
                                  "updatedAt"})
        for ref in (s["secretID"], "openai-key", "OPENAI-KEY"):
            got = self.req("GET", f"/secrets/{ref}")
            self.assertStatus(got, 200)
            self.assertEqual(got.json["secretID"], s["secretID"])
        self.assertError(self.req("POST", "/secrets", {"name": "openai-key", "value": "x"}), 409)
        up = self.req("POST", f"/secrets/openai-key", {"value": VALUE + "-v2"})
        self.assertStatus(up, 200)
        self.assertEqual(up.json["currentVersion"], 2)
        self.assertEqual(up.json["metadata"], {"team": "ml"}, "metadata kept when not given")
        up = self.req("POST", f"/secrets/{s['secretID']}", {"value": "v3", "metadata": {}})
        self.assertEqual((up.json["currentVersion"], up.json["metadata"]), (3, {}))
        self.assertStatus(self.req("DELETE", f"/secrets/{s['secretID']}"), 204)
        self.assertError(self.req("GET", f"/secrets/{s['secretID']}"), 404)
        self.assertError(self.req("DELETE", "/secrets/openai-key"), 404)
        self.assertError(self.req("POST", "/secrets/openai-key", {"value": "x"}), 404)

    def test_refusals(self):
        for body, words in [({"name": "a"}, "value"), ({"name": "a", "value": ""}, "value"),
                            ({"name": "a", "value": "x" * 70000}, "65536"),
                            ({"name": "sec_x", "value": "v"}, "reserved"),
                            ({"name": "a b", "value": "v"}, "name"),
                            ({"name": "${x}", "value": "v"}, "name"),
                            ({"name": "", "value": "v"}, "name"),
                            ({"name": "a", "value": 5}, "string"),
                            ({"name": "a", "value": "v", "metadata": {"k": 1}}, "strings"),
                            ({"name": "a", "value": "v",
                              "metadata": {str(i): "v" for i in range(33)}}, "32")]:
            self.assertError(self.req("POST", "/secrets", body), 400, words)

    def test_orgs_are_apart(self):
        s = self.make("shared-name")
        other = self.server.new_key("secrets-other-org")
        for ref in (s["secretID"], "shared-name"):
            self.assertError(self.req("GET", f"/secrets/{ref}", key=other), 404)
            self.assertError(self.req("DELETE", f"/secrets/{ref}", key=other), 404)
            self.assertError(self.req("POST", f"/secrets/{ref}", {"value": "x"}, key=other), 404)
        self.assertEqual(self.req("GET", "/secrets", key=other).json, [])
        # The same name is free in another org.
        r = self.req("POST", "/secrets", {"name": "shared-name", "value": "theirs"}, key=other)
        self.assertStatus(r, 201)
        self.req("DELETE", f"/secrets/{r.json['secretID']}", key=other)

    def test_list_pages(self):
        made = [self.make(f"page-{i}")["secretID"] for i in range(5)]
        seen, times, token = [], [], None
        while True:
            q = "/secrets?limit=2" + (f"&nextToken={token}" if token else "")
            r = self.req("GET", q)
            self.assertStatus(r, 200)
            seen += [s["secretID"] for s in r.json]
            times += [s["createdAt"] for s in r.json]
            token = r.headers.get("X-Next-Token")
            if not token:
                break
        # Every one exactly once, oldest first (secrets made within one
        # millisecond come in id order).
        self.assertEqual(len(seen), len(set(seen)))
        self.assertEqual(sorted(x for x in seen if x in made), sorted(made))
        self.assertEqual(times, sorted(times))
        self.assertError(self.req("GET", "/secrets?nextToken=../x"), 400)

    def test_zz_value_never_leaves_and_is_sealed_at_rest(self):
        s = self.make("canary")
        self.req("POST", "/secrets/canary", {"value": VALUE + "-next"})
        self.req("GET", "/secrets")
        self.req("GET", "/events/sandboxes?limit=100")
        self.server.stop()
        self.server.start()
        got = self.req("GET", "/secrets/canary")
        self.assertEqual(got.json["currentVersion"], 2, "kept across a restart")
        for body in self.bodies:
            self.assertNotIn(VALUE.encode(), body)
        with open(self.server.log_path, "rb") as f:
            self.assertNotIn(VALUE.encode(), f.read())
        # Nothing under the data dir holds the plaintext (the RocksDB WAL and
        # tables hold the sealed bytes only).
        for root, dirs, files in os.walk(self.server.dir):
            # Sandbox disks and their blank images are no place for records.
            dirs[:] = [d for d in dirs if d not in ("runtime", "sandboxes", "volumes", "snapshots")]
            for name in files:
                path = os.path.join(root, name)
                if not os.path.isfile(path) or os.path.islink(path):
                    continue
                with open(path, "rb") as f:
                    data = f.read()
                self.assertNotIn(VALUE.encode(), data, path)
                self.assertNotIn(VALUE.encode().hex().encode(), data, path)


if __name__ == "__main__":
    main()
