"""The log as an auditor sees it: `audit replay` rebuilds exactly the state
the live server reports, `audit verify` checks the hash chain against the
head the server publishes, and a flipped byte is named."""
import json
import os
import random
import subprocess

from harness import BIN, ServerTest, main

TAMPER = os.environ.get("SANDBOXD_TAMPER") or os.path.join(os.path.dirname(BIN), "tests", "tamper_event")


def audit(server, *args):
    out = subprocess.run([BIN, "audit", *args, "--data-dir", server.dir],
                         capture_output=True, text=True, timeout=120)
    return out.returncode, out.stdout, out.stderr


class Audit(ServerTest):
    def test_replay_equals_live_after_500_random_operations(self):
        s = self.server
        rng = random.Random(20261123)
        other = s.new_key("audit-other")
        keys = [s.key, other]
        live = {k: [] for k in keys}  # sandboxes we believe running or paused
        ops = 0
        while ops < 500:
            key = rng.choice(keys)
            mine = live[key]
            op = rng.choices(["create", "pause", "connect", "timeout", "kill"], [25, 20, 20, 15, 20])[0]
            if op == "create" or not mine:
                r = s.request("POST", "/sandboxes", {"templateID": "base", "timeout": rng.randint(60, 600),
                                                     "metadata": {"op": str(ops)}}, key=key)
                self.assertEqual(r.status, 201, r)
                mine.append(r.json["sandboxID"])
            else:
                sid = rng.choice(mine)
                if op == "pause":
                    r = s.request("POST", f"/sandboxes/{sid}/pause", key=key)
                    self.assertIn(r.status, (204, 409), r)
                elif op == "connect":
                    r = s.request("POST", f"/sandboxes/{sid}/connect", {"timeout": rng.randint(60, 900)}, key=key)
                    self.assertIn(r.status, (200, 201), r)
                elif op == "timeout":
                    r = s.request("POST", f"/sandboxes/{sid}/timeout", {"timeout": rng.randint(60, 900)}, key=key)
                    self.assertIn(r.status, (204, 409), r)
                else:
                    r = s.request("DELETE", f"/sandboxes/{sid}", key=key)
                    self.assertEqual(r.status, 204, r)
                    mine.remove(sid)
            ops += 1

        rc, out, err = audit(s, "replay")
        self.assertEqual(rc, 0, err)
        lines = [json.loads(x) for x in out.splitlines()]
        events = [x["event"] for x in lines if "event" in x]
        replayed = {x["sandbox"]["sandboxID"]: x["sandbox"] for x in lines if "sandbox" in x}
        reported = {}
        for key in keys:
            for x in s.request("GET", "/sandboxes?status=running,paused,stopped", key=key).json:
                reported[x["sandboxID"]] = x
        self.assertEqual(set(replayed), set(reported))
        for sid, want in reported.items():
            got = replayed[sid]
            for k in ["state", "templateID", "metadata", "startedAt", "endAt"]:
                self.assertEqual(got[k], want[k], (sid, k))
        # The chain verifies, and its head is the one the server publishes.
        head = s.request("GET", "/events/audit/head").json
        self.assertEqual(head["seq"], len(events))
        self.assertEqual(head["hash"], events[-1]["hash"])
        rc, out, err = audit(s, "verify")
        self.assertEqual(rc, 0, out + err)
        self.assertIn(head["hash"], out)
        # One sandbox at a time, and from a point in time on.
        sid = next(iter(reported))
        rc, out, _ = audit(s, "replay", "--sandbox", sid)
        self.assertTrue(all(json.loads(x).get("event", {"sandboxId": sid})["sandboxId"] == sid
                            for x in out.splitlines()))
        rc, out, _ = audit(s, "replay", "--since", events[-1]["timestamp"])
        self.assertLess(len([x for x in out.splitlines() if '"event"' in x]), len(events))


class Tamper(ServerTest):
    """A server of its own: this test damages its log on purpose."""

    def test_a_flipped_byte_is_named_by_verify(self):
        s = self.server
        sid = s.create()
        s.request("POST", f"/sandboxes/{sid}/pause")
        s.request("POST", f"/sandboxes/{sid}/connect", {"timeout": 60})
        seq = s.request("GET", "/events/audit/head").json["seq"]
        s.request("DELETE", f"/sandboxes/{sid}")
        s.stop()  # the tool writes the database: no server on it
        target = seq - 1
        tampered = subprocess.run([TAMPER, os.path.join(s.dir, "db"), str(target)],
                                  capture_output=True, text=True, timeout=60)
        self.assertEqual(tampered.returncode, 0, tampered.stderr)
        event_id = tampered.stdout.strip()
        rc, out, _ = audit(s, "verify")
        self.assertEqual(rc, 1)
        self.assertIn(f"seq {target}", out)
        self.assertIn(event_id, out)
        self.assertIn("hash does not match", out)
        s.start()  # the server still starts on a tampered log
        # The API's walk (the console's "Verify" button) finds it too, and
        # names no event (it may be another org's).
        r = s.request("POST", "/events/audit/verify")
        self.assertStatus(r, 200)
        self.assertFalse(r.json["ok"])
        self.assertEqual(r.json["brokenSeq"], target)
        self.assertIn("hash does not match", r.json["reason"])
        self.assertNotIn(event_id, r.raw.decode())



class Retention(ServerTest):
    """Events past retention are compacted into a signed checkpoint; a
    restart still rebuilds every live sandbox and the chain verifies."""
    server_args = ("--event-retention", "2s", "--compaction-interval", "1s")

    def test_compaction_keeps_live_sandboxes_across_restart(self):
        import time
        s = self.server
        live = s.create(timeout=600, metadata={"keep": "me"})
        gone = s.create()
        s.request("DELETE", f"/sandboxes/{gone}")
        s.request("POST", f"/sandboxes/{live}/pause")
        s.create()  # the newest event is never compacted: make it another's
        deadline = time.time() + 15
        while time.time() < deadline and s.events(live):
            time.sleep(0.5)
        self.assertEqual(s.events(live), [], "events past retention were not compacted")
        self.assertEqual(s.events(gone), [])
        s.crash()
        s.start()
        got = s.request("GET", f"/sandboxes/{live}")
        self.assertEqual(got.status, 200, got)
        self.assertEqual(got.json["state"], "paused")
        self.assertEqual(got.json["metadata"], {"keep": "me"})
        self.assertEqual(s.request("POST", f"/sandboxes/{live}/connect", {"timeout": 60}).status, 201)
        self.assertEqual(s.sh(live, "echo alive")["stdout"], "alive\n")
        rc, out, err = audit(s, "verify")
        self.assertEqual(rc, 0, out + err)
        rc, out, _ = audit(s, "replay", "--sandbox", live)
        states = [json.loads(x)["sandbox"]["state"] for x in out.splitlines() if '"sandbox"' in x]
        self.assertEqual(states, ["running"])


if __name__ == "__main__":
    main()
