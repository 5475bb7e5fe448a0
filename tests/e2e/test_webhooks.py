"""Webhooks: the CRUD API and its validation, and delivery of lifecycle
events to real HTTP receivers: once each to a healthy receiver, in log order,
signed both the E2B way and the Standard Webhooks way; at least once, still
in order, through a failing receiver and a kill -9 of sandboxd; Retry-After,
per-attempt timeouts, slow receivers that hold up nobody else, disabled and
deleted webhooks, and redelivery. Receivers: webhook_receiver.py."""
import base64
import collections
import datetime
import os
import time
import unittest
from urllib.parse import urlencode

from harness import Server, ServerTest, main
from webhook_receiver import Receiver, verify_e2b, verify_standard

T = "sandbox.lifecycle."
ALL = [T + "created", T + "paused", T + "resumed", T + "killed", T + "updated"]
# What every delivered body carries: the event as the events API shows it.
EVENT_FIELDS = ["id", "version", "type", "timestamp", "sandboxId", "sandboxExecutionId",
                "sandboxTemplateId", "sandboxBuildId", "sandboxTeamId", "eventData",
                "seq", "prevHash", "hash"]
WEBHOOK_FIELDS = ["id", "name", "createdAt", "teamId", "url", "enabled", "events"]
# E2B's documented verifiers compute standard base64 and strip '='. Set
# WEBHOOK_E2B_SIG=base64url to accept the URL-safe alphabet instead.
E2B_BASE64URL = os.environ.get("WEBHOOK_E2B_SIG") == "base64url"
# The receivers are on loopback, which a default server refuses to deliver to
# (tests/security/test_webhook_targets.py tests that policy); these servers
# open it, as an operator with receivers on a private network would.
PRIVATE = ("--allow-private-webhooks", "true")


def whsec():
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


def when(value):
    """An attempt timestamp (RFC 3339 string, or unix s/ms) as unix seconds."""
    if isinstance(value, (int, float)):
        return value / 1000.0 if value > 1e11 else float(value)
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def ok(req):
    return req.status is not None and 200 <= req.status < 300


class Helpers:
    """Receivers, webhooks and sandboxes that clean up after the test."""
    server = None

    def assertStatus(self, resp, status):
        self.assertEqual(resp.status, status,
                         f"{resp}\n--- server log ---\n{self.server.log()[-2000:]}")

    def assertError(self, resp, status):
        self.assertStatus(resp, status)
        body = resp.json
        self.assertEqual(body["code"], status, resp)
        self.assertIsInstance(body["message"], str)

    def receiver(self, secret=None):
        r = Receiver(secret or whsec()).start()
        self.addCleanup(r.stop)
        return r

    def hook(self, receiver, events=ALL, key="default", **fields):
        body = {"name": "hook-" + os.urandom(3).hex(), "url": receiver.url,
                "events": list(events), "signatureSecret": receiver.secret, **fields}
        r = self.server.request("POST", "/events/webhooks", body, key=key)
        self.assertStatus(r, 201)
        wid = r.json["id"]
        self.addCleanup(self.server.request, "DELETE", f"/events/webhooks/{wid}", key=key, timeout=30)
        return wid

    def sandbox(self, key="default", **fields):
        sid = self.server.create(key=key, **fields)
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{sid}", key=key, timeout=30)
        return sid

    def op(self, method, path, body=None, key="default", want=(200, 201, 204)):
        r = self.server.request(method, path, body, key=key)
        self.assertIn(r.status, want, f"{method} {path}: {r}")
        return r

    def events(self, sid, key="default"):
        r = self.server.request("GET", f"/events/sandboxes/{sid}?orderAsc=true&limit=100", key=key)
        self.assertStatus(r, 200)
        return r.json

    def deliveries(self, wid, key="default", **query):
        r = self.server.request("GET", f"/events/webhooks/{wid}/deliveries?{urlencode(query)}", key=key)
        self.assertStatus(r, 200)
        self.assertIsInstance(r.json["data"], list, r)
        return r.json

    def all_deliveries(self, wid, **query):
        out, cursor = [], None
        for _ in range(100):
            q = dict(query)
            if cursor:
                q["cursor"] = cursor
            page = self.deliveries(wid, **q)
            out += page["data"]
            cursor = page.get("nextCursor")
            if not cursor or not page["data"]:
                return out
        self.fail("deliveries: more than 100 pages")

    def wait_deliveries(self, wid, predicate, timeout=10, **query):
        """Polls the deliveries API until predicate(entries by eventId)."""
        deadline = time.time() + timeout
        while True:
            by_event = {d["eventId"]: d for d in self.all_deliveries(wid, **query)}
            if predicate(by_event) or time.time() > deadline:
                return by_event
            time.sleep(0.2)

    def check_request(self, req, wid, event=None):
        """One delivery as sent: headers, both signatures, and the body."""
        h = req.headers
        self.assertEqual(req.method, "POST", req)
        self.assertTrue(h.get("content-type", "").startswith("application/json"), h)
        self.assertEqual(h.get("e2b-webhook-id"), wid, h)
        self.assertEqual(h.get("e2b-signature-version"), "v1", h)
        self.assertTrue(h.get("e2b-delivery-id"), h)
        self.assertTrue(req.e2b_urlsafe_ok if E2B_BASE64URL else req.e2b_ok, (
            "e2b-signature does not verify as E2B documents it (standard base64 of "
            "sha256(secret + body), '=' removed)"
            + ("; it is the base64url form instead: E2B's verifiers (JS digest('base64'), "
               "Python b64encode, Go StdEncoding, each then stripping '=') reject that"
               if req.e2b_urlsafe_ok else "")
            + f": {h.get('e2b-signature')!r} body={req.body[:200]!r}"))
        self.assertTrue(req.standard_ok, f"webhook-signature does not verify: {h} body={req.body[:200]!r}")
        self.assertTrue(h.get("webhook-id"), h)
        self.assertRegex(h.get("webhook-timestamp", ""), r"^[0-9]+$")
        self.assertLess(abs(int(h["webhook-timestamp"]) - req.received), 300, h)
        if event is not None:
            body = req.json
            self.assertIsInstance(body, dict, req.body[:300])
            for k in EVENT_FIELDS:
                self.assertEqual(body.get(k), event.get(k), (k, body, event))

    def check_webhook_json(self, body, secret=None):
        for k in WEBHOOK_FIELDS:
            self.assertIn(k, body)
        self.assertNotIn("signatureSecret", body)
        if secret is not None:
            import json
            self.assertNotIn(secret, json.dumps(body))


class WebhookApi(Helpers, ServerTest):
    server_args = PRIVATE

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.other = cls.server.new_key("webhooks-other")

    def create(self, body, key="default", raw=None):
        return self.server.request("POST", "/events/webhooks", body, key=key, raw=raw,
                                   headers={"Content-Type": "application/json"} if raw is not None else None)

    def valid(self, **over):
        body = {"name": "crud", "url": "http://127.0.0.1:9/hook", "events": [T + "created"],
                "signatureSecret": "s3cret-value-never-returned"}
        body.update(over)
        return body

    def test_create_get_list_patch_delete(self):
        s = self.server
        secret = "s3cret-value-never-returned"
        r = self.create(self.valid(events=[T + "created", T + "killed"], signatureSecret=secret))
        self.assertStatus(r, 201)
        w = r.json
        self.check_webhook_json(w, secret)
        self.addCleanup(s.request, "DELETE", f"/events/webhooks/{w['id']}")
        self.assertEqual(w["name"], "crud")
        self.assertEqual(w["url"], "http://127.0.0.1:9/hook")
        self.assertIs(w["enabled"], True)   # the default
        self.assertEqual(sorted(w["events"]), [T + "created", T + "killed"])
        self.assertIsInstance(w["createdAt"], str)
        self.assertTrue(w["teamId"])
        # The team is the one this key's sandboxes belong to.
        sid = self.sandbox()
        self.assertEqual(self.events(sid)[0]["sandboxTeamId"], w["teamId"])
        s.request("DELETE", f"/sandboxes/{sid}")

        got = s.request("GET", f"/events/webhooks/{w['id']}")
        self.assertStatus(got, 200)
        self.assertEqual(got.json, w)
        listed = s.request("GET", "/events/webhooks")
        self.assertStatus(listed, 200)
        self.assertIn(w["id"], [x["id"] for x in listed.json])
        for x in listed.json:
            self.check_webhook_json(x, secret)

        # Disabled from the start; https is fine too.
        r2 = self.create(self.valid(name="second", url="https://example.com/hook", enabled=False))
        self.assertStatus(r2, 201)
        self.addCleanup(s.request, "DELETE", f"/events/webhooks/{r2.json['id']}")
        self.assertIs(r2.json["enabled"], False)

        # PATCH: each field on its own, the rest kept.
        p = s.request("PATCH", f"/events/webhooks/{w['id']}", {"events": [T + "paused"]})
        self.assertStatus(p, 200)
        self.assertEqual(p.json["events"], [T + "paused"])
        self.assertEqual(p.json["name"], "crud")
        p = s.request("PATCH", f"/events/webhooks/{w['id']}", {"url": "http://127.0.0.1:10/other"})
        self.assertStatus(p, 200)
        self.assertEqual(p.json["url"], "http://127.0.0.1:10/other")
        self.assertEqual(p.json["events"], [T + "paused"])
        p = s.request("PATCH", f"/events/webhooks/{w['id']}", {"enabled": False})
        self.assertStatus(p, 200)
        self.assertIs(p.json["enabled"], False)
        p = s.request("PATCH", f"/events/webhooks/{w['id']}", {"name": "renamed"})
        self.assertStatus(p, 200)
        self.assertEqual(p.json["name"], "renamed")
        p = s.request("PATCH", f"/events/webhooks/{w['id']}", {"signatureSecret": "rotated-secret-xyz"})
        self.assertStatus(p, 200)
        self.check_webhook_json(p.json, "rotated-secret-xyz")
        self.check_webhook_json(p.json, secret)
        got = s.request("GET", f"/events/webhooks/{w['id']}").json
        self.assertEqual((got["name"], got["url"], got["enabled"], got["events"], got["id"],
                          got["createdAt"], got["teamId"]),
                         ("renamed", "http://127.0.0.1:10/other", False, [T + "paused"], w["id"],
                          w["createdAt"], w["teamId"]))
        self.check_webhook_json(got, "rotated-secret-xyz")

        # DELETE, then it is gone.
        self.assertStatus(s.request("DELETE", f"/events/webhooks/{w['id']}"), 204)
        self.assertError(s.request("GET", f"/events/webhooks/{w['id']}"), 404)
        self.assertError(s.request("PATCH", f"/events/webhooks/{w['id']}", {"enabled": True}), 404)
        self.assertError(s.request("DELETE", f"/events/webhooks/{w['id']}"), 404)
        self.assertNotIn(w["id"], [x["id"] for x in s.request("GET", "/events/webhooks").json])

    def test_create_rejects_bad_input(self):
        s = self.server
        listed = s.request("GET", "/events/webhooks")
        self.assertStatus(listed, 200)
        before = {x["id"] for x in listed.json}
        cases = {
            "missing name": {k: v for k, v in self.valid().items() if k != "name"},
            "empty name": self.valid(name=""),
            "missing url": {k: v for k, v in self.valid().items() if k != "url"},
            "empty url": self.valid(url=""),
            "url not a string": self.valid(url=5),
            "ftp url": self.valid(url="ftp://127.0.0.1/hook"),
            "file url": self.valid(url="file:///etc/passwd"),
            "url without scheme": self.valid(url="127.0.0.1:9000/hook"),
            "url without host": self.valid(url="http:///hook"),
            "events missing": {k: v for k, v in self.valid().items() if k != "events"},
            "events a string": self.valid(events=T + "created"),
            "events unknown type": self.valid(events=[T + "created", T + "exploded"]),
            "events not strings": self.valid(events=[1]),
            "events an object": self.valid(events={"type": T + "created"}),
            "missing signatureSecret": {k: v for k, v in self.valid().items() if k != "signatureSecret"},
            "empty signatureSecret": self.valid(signatureSecret=""),
        }
        for what, body in cases.items():
            with self.subTest(what):
                self.assertError(self.create(body), 400)
        for what, raw in {"bad JSON": b'{"name": "x", "url": ', "not an object": b'["x"]',
                          "empty body": b""}.items():
            with self.subTest(what):
                self.assertError(self.create(None, raw=raw), 400)
        after = {x["id"] for x in s.request("GET", "/events/webhooks").json}
        self.assertEqual(before, after, "a rejected webhook was created")

    def test_patch_rejects_bad_input(self):
        s = self.server
        r = self.create(self.valid())
        self.assertStatus(r, 201)
        wid = r.json["id"]
        self.addCleanup(s.request, "DELETE", f"/events/webhooks/{wid}")
        for what, body in {"ftp url": {"url": "ftp://127.0.0.1/"},
                           "unknown event": {"events": [T + "exploded"]},
                           "events a string": {"events": T + "created"},
                           "empty name": {"name": ""},
                           "empty secret": {"signatureSecret": ""},
                           "enabled not a boolean": {"enabled": "no"}}.items():
            with self.subTest(what):
                self.assertError(s.request("PATCH", f"/events/webhooks/{wid}", body), 400)
        self.assertError(s.request("PATCH", f"/events/webhooks/{wid}", raw=b"{nope",
                                   headers={"Content-Type": "application/json"}), 400)
        got = s.request("GET", f"/events/webhooks/{wid}").json
        self.assertEqual((got["url"], got["events"], got["name"], got["enabled"]),
                         ("http://127.0.0.1:9/hook", [T + "created"], "crud", True))

    def test_other_orgs_webhooks_are_404_everywhere(self):
        s = self.server
        r = self.create(self.valid())
        self.assertStatus(r, 201)
        wid = r.json["id"]
        self.addCleanup(s.request, "DELETE", f"/events/webhooks/{wid}")
        sid = self.sandbox()
        eid = self.events(sid)[0]["id"]
        o = self.other
        self.assertError(s.request("GET", f"/events/webhooks/{wid}", key=o), 404)
        self.assertError(s.request("PATCH", f"/events/webhooks/{wid}", {"enabled": False}, key=o), 404)
        self.assertError(s.request("DELETE", f"/events/webhooks/{wid}", key=o), 404)
        self.assertError(s.request("GET", f"/events/webhooks/{wid}/deliveries", key=o), 404)
        self.assertError(s.request("POST", f"/events/webhooks/{wid}/deliveries/{eid}/redeliver",
                                   key=o), 404)
        listed = s.request("GET", "/events/webhooks", key=o)
        self.assertStatus(listed, 200)
        self.assertNotIn(wid, [x["id"] for x in listed.json])
        # Untouched for its owner.
        got = s.request("GET", f"/events/webhooks/{wid}")
        self.assertStatus(got, 200)
        self.assertIs(got.json["enabled"], True)
        # Ids that never existed, and no key at all.
        for method in ["GET", "PATCH", "DELETE"]:
            self.assertError(s.request(method, "/events/webhooks/no-such-webhook",
                                       {"enabled": False} if method == "PATCH" else None), 404)
        self.assertError(s.request("GET", "/events/webhooks/no-such-webhook/deliveries"), 404)
        self.assertError(s.request("GET", "/events/webhooks", key=None), 401)
        self.assertError(s.request("POST", "/events/webhooks", self.valid(), key=None), 401)


class AddressPolicy(Helpers, ServerTest):
    """A default server: inside addresses are refused (the full list of
    spellings is in tests/security/test_webhook_targets.py). No sandbox is
    made here, so the public URL below never receives anything."""
    PUBLIC = "http://93.184.215.14/hook"

    def create(self, url, **fields):
        body = {"name": "policy", "url": url, "events": [T + "created"],
                "signatureSecret": "s3cret", "enabled": False, **fields}
        r = self.server.request("POST", "/events/webhooks", body)
        if r.status == 201:
            self.addCleanup(self.server.request, "DELETE", f"/events/webhooks/{r.json['id']}")
        return r

    def test_inside_addresses_are_rejected(self):
        for url in ["http://169.254.169.254/latest/meta-data/", "https://169.254.0.1:8443/x",
                    "http://[fe80::1]/hook", "http://[fe80::1234:5678]:8080/hook",
                    "http://user@169.254.169.254/", "http://[::ffff:169.254.169.254]/",
                    "http://[FE80::1]/", "http://[fe80::1%25eth0]/", "HTTP://169.254.169.254/",
                    "http://127.0.0.1:9/hook", "http://localhost/", "http://10.0.0.1/"]:
            with self.subTest(url):
                self.assertError(self.create(url), 400)

    def test_patch_to_an_inside_address_is_rejected(self):
        s = self.server
        r = self.create(self.PUBLIC)
        self.assertStatus(r, 201)
        wid = r.json["id"]
        for url in ["http://169.254.169.254/", "http://[fe80::1]/", "http://127.0.0.1:9/"]:
            with self.subTest(url):
                self.assertError(s.request("PATCH", f"/events/webhooks/{wid}", {"url": url}), 400)
        self.assertEqual(s.request("GET", f"/events/webhooks/{wid}").json["url"], self.PUBLIC)


class Delivery(Helpers, ServerTest):
    server_args = PRIVATE

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.other = cls.server.new_key("webhooks-other")

    def test_lifecycle_is_delivered_once_each_in_order_and_signed(self):
        s = self.server
        ra = self.receiver()                            # whsec_: key is base64-decoded
        rb = self.receiver("plain-secret-with-ünicode")  # raw UTF-8 bytes are the key
        rc = self.receiver()
        wa = self.hook(ra, ALL)
        wb = self.hook(rb, [T + "created", T + "killed"])
        wc = self.hook(rc, ALL, key=self.other)

        sid = self.sandbox()
        self.op("POST", f"/sandboxes/{sid}/pause")
        self.op("POST", f"/sandboxes/{sid}/connect", {"timeout": 60})
        self.op("POST", f"/sandboxes/{sid}/timeout", {"timeout": 120})
        self.op("POST", f"/sandboxes/{sid}/refreshes", {"duration": 60})
        self.op("DELETE", f"/sandboxes/{sid}")
        osid = self.sandbox(key=self.other)
        self.op("DELETE", f"/sandboxes/{osid}", key=self.other)

        events = self.events(sid)
        types = [e["type"] for e in events]
        self.assertEqual(types[:3], [T + "created", T + "paused", T + "resumed"])
        self.assertEqual(types[-1], T + "killed")
        self.assertGreaterEqual(types.count(T + "updated"), 1)
        subset = [e for e in events if e["type"] in (T + "created", T + "killed")]
        other_events = self.events(osid, key=self.other)
        for r, want in [(ra, events), (rb, subset), (rc, other_events)]:
            self.assertTrue(r.wait_events([e["id"] for e in want], 20),
                            f"missing: {r.snapshot()}\n{s.log()[-2000:]}")
        time.sleep(1.0)  # duplicates or strays would show up by now

        delivery_ids = []
        for r, wid, want, mine, theirs in [(ra, wa, events, sid, osid), (rb, wb, subset, sid, osid),
                                           (rc, wc, other_events, osid, sid)]:
            reqs = r.snapshot()
            by_id = {e["id"]: e for e in want}
            self.assertNotIn(theirs, [(x.json or {}).get("sandboxId") for x in reqs],
                             "another org's event was delivered")
            reqs = [x for x in reqs if (x.json or {}).get("sandboxId") == mine]
            # Exactly once each, nothing unsubscribed, in log order.
            self.assertEqual([x.event_id for x in reqs], [e["id"] for e in want], reqs)
            self.assertEqual([x.json["seq"] for x in reqs], sorted(x.json["seq"] for x in reqs))
            for x in reqs:
                self.check_request(x, wid, by_id[x.event_id])
            hook_ids = [x.headers["webhook-id"] for x in reqs]
            self.assertEqual(len(set(hook_ids)), len(hook_ids), "webhook-id repeats across events")
            delivery_ids += [x.headers["e2b-delivery-id"] for x in reqs]
        self.assertEqual(len(set(delivery_ids)), len(delivery_ids), "e2b-delivery-id repeats")
        # The checks have teeth: a wrong secret or a changed byte fails both.
        x = ra.snapshot({sid})[0]
        for secret, body in [(whsec(), x.body), (ra.secret, x.body + b" ")]:
            self.assertFalse(verify_e2b(secret, x.headers, body))
            self.assertFalse(verify_e2b(secret, x.headers, body, urlsafe=True))
            self.assertFalse(verify_standard(secret, x.headers, body))

        # The deliveries API: one successful attempt per event, newest first.
        want_ids = {e["id"] for e in events}
        seq = {e["id"]: e["seq"] for e in events}
        by_event = self.wait_deliveries(wa, lambda d: want_ids <= {
            k for k, v in d.items() if any(a["status"] == "success" for a in v["attempts"])})
        self.assertEqual(set(by_event), want_ids)
        for e in events:
            d = by_event[e["id"]]
            self.assertEqual((d["eventType"], d["sandboxId"]), (e["type"], sid))
            self.assertEqual(len(d["attempts"]), 1, d)
            a = d["attempts"][0]
            self.assertEqual((a["status"], a["responseHttpStatusCode"], a["requestUrl"]),
                             ("success", 200, ra.url), a)
            self.assertIsInstance(a["id"], str)
            self.assertIsInstance(a["durationMs"], (int, float))
            self.assertGreaterEqual(a["durationMs"], 0)
            when(a["timestamp"])
        listed = [d["eventId"] for d in self.all_deliveries(wa)]
        self.assertEqual(listed, sorted(listed, key=seq.get, reverse=True), "not newest first")
        # Paging, and the filters.
        paged, cursor = [], None
        for _ in range(len(events) + 2):
            page = self.deliveries(wa, limit=2, **({"cursor": cursor} if cursor else {}))
            self.assertLessEqual(len(page["data"]), 2)
            paged += [d["eventId"] for d in page["data"]]
            cursor = page.get("nextCursor")
            if not cursor:
                break
        self.assertEqual(paged, listed)
        self.assertEqual(self.all_deliveries(wa, deliveryStatus="failed"), [])
        self.assertEqual({d["eventId"] for d in self.all_deliveries(wa, deliveryStatus="success")},
                         want_ids)
        paused = self.all_deliveries(wa, eventType=T + "paused")
        self.assertEqual([d["eventId"] for d in paused], [events[1]["id"]])
        self.assertEqual({d["eventId"] for d in self.all_deliveries(wb)}, {e["id"] for e in subset})

    def test_only_events_after_the_webhook_is_created(self):
        sid = self.sandbox()
        self.op("POST", f"/sandboxes/{sid}/pause")
        r = self.receiver()
        wid = self.hook(r, ALL)
        self.op("POST", f"/sandboxes/{sid}/connect", {"timeout": 60})
        self.op("DELETE", f"/sandboxes/{sid}")
        events = self.events(sid)
        later = [e for e in events if e["type"] in (T + "resumed", T + "killed")]
        self.assertTrue(r.wait_events([e["id"] for e in later], 15), r.snapshot())
        time.sleep(0.5)
        got = r.snapshot({sid})
        self.assertEqual([x.json["type"] for x in got], [T + "resumed", T + "killed"])
        for x, e in zip(got, later):
            self.check_request(x, wid, e)

    def test_failing_receiver_is_retried_with_backoff(self):
        r = self.receiver()
        wid = self.hook(r, [T + "created"])
        r.fail(500, seconds=5)
        fail_end = time.monotonic() + 5
        sid = self.sandbox()
        created = self.events(sid)[0]
        # While it fails, the deliveries API lists the event as failed.
        self.assertTrue(r.wait_for(lambda reqs: any(x.status == 500 for x in reqs), 3), r.snapshot())
        d = self.wait_deliveries(wid, lambda d: created["id"] in d, timeout=2, deliveryStatus="failed")
        self.assertIn(created["id"], d, "not listed under deliveryStatus=failed while failing")
        self.assertTrue(r.wait_events([created["id"]], 25), r.snapshot())
        reqs = [x for x in r.snapshot({sid})]
        self.assertTrue(all(x.event_id == created["id"] for x in reqs))
        failed = [x for x in reqs if x.status == 500]
        self.assertEqual(reqs[-1].status, 200)
        self.assertTrue(all(x.status == 500 for x in reqs[:-1]), reqs)
        # Retries start at about a second and back off: neither hammering
        # nor giving up for long.
        self.assertGreaterEqual(len(failed), 2, reqs)
        self.assertLessEqual(len(failed), 12, reqs)
        gaps = [b.at - a.at for a, b in zip(reqs, reqs[1:])]
        self.assertLessEqual(gaps[0], 2.5, gaps)
        for i, g in enumerate(gaps):
            self.assertLessEqual(g, 1.5 * 2 ** i + 1.0, gaps)
        self.assertLess(reqs[-1].at, fail_end + 10, gaps)
        for x in reqs:
            self.check_request(x, wid, created)
        self.assertEqual(len({x.headers["webhook-id"] for x in reqs}), 1)
        self.assertEqual(len({x.headers["e2b-delivery-id"] for x in reqs}), len(reqs))
        d = self.wait_deliveries(wid, lambda d: created["id"] in d and any(
            a["status"] == "success" for a in d[created["id"]]["attempts"]))[created["id"]]
        attempts = sorted(d["attempts"], key=lambda a: when(a["timestamp"]))
        self.assertEqual(attempts[-1]["status"], "success", attempts)
        self.assertEqual(attempts[-1]["responseHttpStatusCode"], 200)
        self.assertGreaterEqual(len(attempts), 3, attempts)
        for a in attempts[:-1]:
            self.assertEqual((a["status"], a["responseHttpStatusCode"], a["errorClass"]),
                             ("failed", 500, "http_error"), a)
        self.assertIn(created["id"], [x["eventId"] for x in self.all_deliveries(wid, deliveryStatus="success")])

    def test_retry_after_is_honoured(self):
        r = self.receiver()
        wid = self.hook(r, [T + "created"])
        r.fail(503, count=1, retry_after=2)
        sid = self.sandbox()
        created = self.events(sid)[0]
        self.assertTrue(r.wait_events([created["id"]], 15), r.snapshot())
        reqs = r.snapshot({sid})
        self.assertEqual([x.status for x in reqs], [503, 200], reqs)
        gap = reqs[1].at - reqs[0].at
        self.assertGreaterEqual(gap, 1.9, "retried before Retry-After: 2")
        self.assertLess(gap, 8)
        self.assertEqual(reqs[0].headers["webhook-id"], reqs[1].headers["webhook-id"])
        d = self.wait_deliveries(wid, lambda d: created["id"] in d and len(d[created["id"]]["attempts"]) >= 2)
        attempts = sorted(d[created["id"]]["attempts"], key=lambda a: when(a["timestamp"]))
        self.assertEqual([(a["status"], a["responseHttpStatusCode"]) for a in attempts],
                         [("failed", 503), ("success", 200)])
        self.assertEqual(attempts[0]["errorClass"], "http_error")

    def test_attempt_times_out_after_10_s_and_is_retried(self):
        r = self.receiver()
        wid = self.hook(r, [T + "created"])
        r.delay(13, count=1)
        sid = self.sandbox()
        created = self.events(sid)[0]
        self.assertTrue(r.wait_events([created["id"]], 25), r.snapshot())
        reqs = r.snapshot({sid})
        self.assertGreaterEqual(len(reqs), 2)
        gap = reqs[1].at - reqs[0].at
        self.assertGreaterEqual(gap, 9.5, "the first attempt was given up early")
        self.assertLess(gap, 13, "the first attempt was not cut off at ~10 s")
        d = self.wait_deliveries(wid, lambda d: created["id"] in d and any(
            a["status"] == "success" for a in d[created["id"]]["attempts"]))
        attempts = sorted(d[created["id"]]["attempts"], key=lambda a: when(a["timestamp"]))
        self.assertEqual(attempts[0]["status"], "failed", attempts)
        self.assertEqual(attempts[0]["errorClass"], "timeout", attempts)
        self.assertGreaterEqual(attempts[0]["durationMs"], 9000)
        self.assertLess(attempts[0]["durationMs"], 12500)
        self.assertEqual(attempts[-1]["status"], "success")

    def test_a_slow_receiver_holds_up_nobody_else(self):
        s = self.server
        slow, fast = self.receiver(), self.receiver()
        self.hook(slow, ALL)
        wfast = self.hook(fast, ALL)
        slow.delay(3)
        t0 = time.monotonic()
        sid = self.sandbox()
        created = self.events(sid)[0]
        self.assertTrue(fast.wait_events([created["id"]], 5))
        got = fast.snapshot({sid})[0]
        self.assertLess(got.at - t0, 1.5, f"fast webhook waited: {fast.snapshot()} {slow.snapshot()}")
        # The slow one is now holding a request; the API still answers at once.
        self.assertTrue(slow.wait_for(lambda reqs: reqs, 3), "slow receiver got nothing")
        t = time.time()
        self.assertStatus(s.request("GET", "/sandboxes"), 200)
        self.assertLess(time.time() - t, 1.0, "GET /sandboxes waited for the slow receiver")
        t1 = time.monotonic()
        self.op("DELETE", f"/sandboxes/{sid}")
        killed = self.events(sid)[-1]
        self.assertEqual(killed["type"], T + "killed")
        self.assertTrue(fast.wait_events([killed["id"]], 5))
        self.assertLess(fast.snapshot({sid})[-1].at - t1, 1.5, f"fast webhook waited: {fast.snapshot()} {slow.snapshot()}")
        first_slow = slow.snapshot({sid})[0]
        if first_slow.done_at is not None:  # else it is still holding it: fine
            self.assertLess(got.at, first_slow.done_at - 1.0,
                            f"t0={t0:.3f} fast: {fast.snapshot()} slow: {slow.snapshot()}")
        # The slow one still gets both, once each, in order (3 s < the 10 s timeout).
        self.assertTrue(slow.wait_events([created["id"], killed["id"]], 15), slow.snapshot())
        self.assertEqual([x.event_id for x in slow.snapshot({sid})], [created["id"], killed["id"]])
        for x, e in zip(fast.snapshot({sid}), [created, killed]):
            self.check_request(x, wfast, e)

    def test_disabled_webhook_gets_nothing_while_disabled(self):
        s = self.server
        rd, control = self.receiver(), self.receiver()
        wd = self.hook(rd, ALL)
        self.hook(control, ALL)
        s1 = self.sandbox()
        self.assertTrue(rd.wait_events([self.events(s1)[0]["id"]], 10))
        p = s.request("PATCH", f"/events/webhooks/{wd}", {"enabled": False})
        self.assertStatus(p, 200)
        self.assertIs(p.json["enabled"], False)
        s2 = self.sandbox()
        self.op("DELETE", f"/sandboxes/{s2}")
        self.assertTrue(control.wait_events([e["id"] for e in self.events(s2)], 10))
        time.sleep(1.0)
        self.assertEqual(rd.snapshot({s2}), [], "delivered while disabled")
        p = s.request("PATCH", f"/events/webhooks/{wd}", {"enabled": True})
        self.assertStatus(p, 200)
        self.assertIs(p.json["enabled"], True)
        s3 = self.sandbox()
        created3 = self.events(s3)[0]
        self.assertTrue(rd.wait_events([created3["id"]], 10), rd.snapshot())
        time.sleep(0.5)
        self.assertEqual(rd.snapshot({s2}), [], "events from while it was disabled came later")
        self.check_request(rd.snapshot({s3})[0], wd, created3)
        self.assertEqual(len(rd.snapshot({s1, s3})), 2)

    def test_patch_url_events_secret_then_delete_take_effect(self):
        s = self.server
        r1, r2, control = self.receiver(), self.receiver("another-raw-secret"), self.receiver()
        w = self.hook(r1, [T + "created"])
        self.hook(control, ALL)
        s1 = self.sandbox()
        self.assertTrue(r1.wait_events([self.events(s1)[0]["id"]], 10))
        p = s.request("PATCH", f"/events/webhooks/{w}",
                      {"url": r2.url, "events": [T + "killed"], "signatureSecret": r2.secret})
        self.assertStatus(p, 200)
        self.assertEqual((p.json["url"], p.json["events"]), (r2.url, [T + "killed"]))
        self.check_webhook_json(p.json, r2.secret)
        self.op("DELETE", f"/sandboxes/{s1}")
        s2 = self.sandbox()
        self.op("DELETE", f"/sandboxes/{s2}")
        killed = [self.events(x)[-1] for x in (s1, s2)]
        self.assertTrue(r2.wait_events([e["id"] for e in killed], 10), r2.snapshot())
        self.assertTrue(control.wait_events([e["id"] for x in (s1, s2) for e in self.events(x)], 10))
        time.sleep(0.5)
        got = r2.snapshot({s1, s2})
        self.assertEqual([x.event_id for x in got], [e["id"] for e in killed])
        for x, e in zip(got, killed):
            self.check_request(x, w, e)   # signed with the new secret
        self.assertEqual(len(r1.snapshot({s1, s2})), 1, "the old url kept getting events")
        # Deleted: nothing more.
        self.assertStatus(s.request("DELETE", f"/events/webhooks/{w}"), 204)
        s3 = self.sandbox()
        self.op("DELETE", f"/sandboxes/{s3}")
        self.assertTrue(control.wait_events([e["id"] for e in self.events(s3)], 10))
        time.sleep(0.5)
        self.assertEqual(r1.snapshot({s3}) + r2.snapshot({s3}), [], "a deleted webhook delivered")

    def test_redeliver_sends_the_event_again(self):
        s = self.server
        r = self.receiver()
        wid = self.hook(r, [T + "created"])
        sid = self.sandbox()
        created = self.events(sid)[0]
        eid = created["id"]
        self.assertTrue(r.wait_events([eid], 10))
        self.wait_deliveries(wid, lambda d: eid in d and d[eid]["attempts"])
        resp = s.request("POST", f"/events/webhooks/{wid}/deliveries/{eid}/redeliver")
        self.assertStatus(resp, 202)
        self.assertTrue(r.wait_for(lambda reqs: len([x for x in reqs if x.event_id == eid]) >= 2, 10),
                        r.snapshot())
        first, again = [x for x in r.snapshot() if x.event_id == eid][:2]
        self.check_request(again, wid, created)
        self.assertEqual(again.headers["webhook-id"], first.headers["webhook-id"])
        self.assertNotEqual(again.headers["e2b-delivery-id"], first.headers["e2b-delivery-id"])
        d = self.wait_deliveries(wid, lambda d: eid in d and len(d[eid]["attempts"]) >= 2)
        self.assertEqual([a["status"] for a in d[eid]["attempts"]], ["success", "success"])
        self.assertEqual(len({a["id"] for a in d[eid]["attempts"]}), 2)


class GiveUp(Helpers, unittest.TestCase):
    """A server of its own whose give-up period is seconds, not 24 h: the
    same code path, on a clock a test can wait for."""

    def setUp(self):
        self.server = Server(["--webhook-give-up", "4s", *PRIVATE])
        self.addCleanup(self.server.cleanup)

    def test_a_delivery_that_never_succeeds_is_marked_failed_then_the_webhook_moves_on(self):
        s = self.server
        r = self.receiver()
        wid = self.hook(r, [T + "created", T + "killed"])
        r.fail(500, seconds=3600)
        sid = self.sandbox()
        created = self.events(sid)[0]
        # Pending while retried, then failed for good once 4 s have passed.
        d = self.wait_deliveries(wid, lambda d: d.get(created["id"], {}).get("status") == "failed",
                                 timeout=20)[created["id"]]
        attempts = d["attempts"]
        self.assertGreaterEqual(len(attempts), 2, attempts)
        self.assertTrue(all(a["status"] == "failed" and a["responseHttpStatusCode"] == 500
                            for a in attempts), attempts)
        spread = when(attempts[-1]["timestamp"]) - when(attempts[0]["timestamp"])
        self.assertGreaterEqual(spread, 3.5, attempts)
        self.assertIn(created["id"], [x["eventId"] for x in self.all_deliveries(wid, deliveryStatus="failed")])
        # The webhook moved on: the next event is attempted, and once the
        # receiver heals it arrives; the given-up one can still be redelivered.
        r.healthy()
        self.op("DELETE", f"/sandboxes/{sid}")
        killed = [e for e in self.events(sid) if e["type"] == T + "killed"][0]
        self.assertTrue(r.wait_events([killed["id"]], 15), r.snapshot())
        self.assertStatus(s.request("POST", f"/events/webhooks/{wid}/deliveries/{created['id']}/redeliver"), 202)
        self.assertTrue(r.wait_for(lambda reqs: any(x.event_id == created["id"] and x.status == 200
                                                    for x in reqs), 15), r.snapshot())
        d = self.wait_deliveries(wid, lambda d: d[created["id"]]["status"] == "success")
        self.assertEqual(d[created["id"]]["attempts"][-1]["status"], "success")


class DeliveryAcrossCrash(Helpers, unittest.TestCase):
    """A server of its own: this test kills it with -9."""

    def setUp(self):
        self.server = Server(PRIVATE)
        self.addCleanup(self.server.cleanup)

    def test_failing_receiver_and_kill_9_still_deliver_everything_in_order(self):
        s = self.server
        r = self.receiver()
        wid = self.hook(r, ALL)
        fail_end = time.time() + 6
        r.fail(500, until=fail_end)
        s1 = self.sandbox()
        self.op("POST", f"/sandboxes/{s1}/pause")
        self.op("POST", f"/sandboxes/{s1}/connect", {"timeout": 120})
        time.sleep(2.5)
        before_crash = r.snapshot()
        self.assertLess(time.time(), fail_end, "the crash must fall inside the failure window")
        s.crash()
        s.start()
        s2 = self.sandbox()
        self.op("POST", f"/sandboxes/{s1}/timeout", {"timeout": 300})
        self.op("DELETE", f"/sandboxes/{s2}")
        self.op("DELETE", f"/sandboxes/{s1}")
        events = sorted(self.events(s1) + self.events(s2), key=lambda e: e["seq"])
        self.assertGreaterEqual(len(events), 7, [e["type"] for e in events])
        ids = [e["id"] for e in events]
        self.assertTrue(r.wait_events(ids, max(0, fail_end - time.time()) + 40),
                        f"not all delivered: {r.snapshot()}\n{s.log()[-3000:]}")
        time.sleep(0.5)
        self.assertGreaterEqual(len(before_crash), 1, "nothing was attempted before the crash")

        reqs = r.snapshot({s1, s2})
        by_id = {e["id"]: e for e in events}
        self.assertTrue(set(x.event_id for x in reqs) <= set(ids))
        for x in reqs:
            self.check_request(x, wid, by_id[x.event_id])
            if x.received < fail_end - 0.05:
                self.assertEqual(x.status, 500)
        # Duplicates are allowed, and identifiable: one webhook-id per event.
        hook_ids = collections.defaultdict(set)
        for x in reqs:
            hook_ids[x.event_id].add(x.headers["webhook-id"])
        for eid, hids in hook_ids.items():
            self.assertEqual(len(hids), 1, f"event {eid} sent under webhook-ids {hids}")
        self.assertEqual(len({next(iter(h)) for h in hook_ids.values()}), len(ids))
        # Distinct events first arrive in log order.
        firsts = []
        for x in reqs:
            if x.event_id not in firsts:
                firsts.append(x.event_id)
        self.assertEqual(firsts, ids, [(by_id[e]["seq"], by_id[e]["type"]) for e in firsts])
        # The first event failed at least once, then got through.
        first = [x for x in reqs if x.event_id == ids[0]]
        self.assertEqual(first[0].status, 500)
        self.assertTrue(any(ok(x) for x in first))
        self.assertEqual(len({x.headers["e2b-delivery-id"] for x in reqs}), len(reqs))

        # The deliveries API agrees: failed attempts (500), then a success.
        d = self.wait_deliveries(wid, lambda d: set(ids) <= {
            k for k, v in d.items() if any(a["status"] == "success" for a in v["attempts"])}, timeout=15)
        self.assertTrue(set(ids) <= set(d), (set(ids) - set(d)))
        attempts = sorted(d[ids[0]]["attempts"], key=lambda a: when(a["timestamp"]))
        failed = [a for a in attempts if a["status"] == "failed"]
        success = [a for a in attempts if a["status"] == "success"]
        self.assertTrue(failed, attempts)
        self.assertTrue(success, attempts)
        for a in failed:
            self.assertEqual((a["errorClass"], a["responseHttpStatusCode"]), ("http_error", 500), a)
            self.assertLessEqual(when(a["timestamp"]), when(success[0]["timestamp"]), attempts)
        self.assertEqual(success[0]["responseHttpStatusCode"], 200)
        for eid in ids:
            self.assertTrue(any(a["status"] == "success" for a in d[eid]["attempts"]), d[eid])


if __name__ == "__main__":
    main()
