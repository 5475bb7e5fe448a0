"""Following the event log without a public endpoint (and what the console's
live views stand on): GET /events/sandboxes?orderAsc=true&cursor=C&wait=S
answers as soon as one of the org's events is appended past the cursor, or
with [] after S seconds; another org's events do not answer it; S is bounded,
and many waiting clients cost no thread each."""
import threading
import time

from harness import ServerTest, main


class EventsWait(ServerTest):
    def head_cursor(self):
        """A cursor past every event so far: the log's head (cursors are
        sequence numbers in hex)."""
        head = self.server.request("GET", "/events/audit/head").json
        return format(head["seq"], "x")

    def follow(self, cursor, wait, key="default", out=None):
        started = time.monotonic()
        r = self.server.request("GET", f"/events/sandboxes?orderAsc=true&limit=100&cursor={cursor}"
                                       f"&wait={wait}", key=key, timeout=wait + 30)
        took = time.monotonic() - started
        if out is not None:
            out.append((r, took))
        return r, took

    def test_a_waiting_request_answers_when_an_event_comes(self):
        sid = self.server.create()
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{sid}")
        results = []
        t = threading.Thread(target=self.follow, args=(self.head_cursor(), 20, "default", results))
        t.start()
        time.sleep(1.0)
        self.assertStatus(self.server.request("POST", f"/sandboxes/{sid}/timeout", {"timeout": 600}), 204)
        t.join(timeout=30)
        r, took = results[0]
        self.assertStatus(r, 200)
        self.assertGreater(took, 0.9)
        self.assertLess(took, 5)
        self.assertEqual([e["type"] for e in r.json], ["sandbox.lifecycle.updated"])
        self.assertEqual(r.json[0]["sandboxId"], sid)

    def test_without_events_the_wait_ends_empty(self):
        r, took = self.follow(self.head_cursor(), 2)
        self.assertStatus(r, 200)
        self.assertEqual(r.json, [])
        self.assertGreater(took, 1.8)
        self.assertLess(took, 6)

    def test_another_orgs_events_do_not_answer_it(self):
        other = self.server.new_key("events-wait-other")
        results = []
        t = threading.Thread(target=self.follow, args=(self.head_cursor(), 4, other, results))
        t.start()
        time.sleep(0.5)
        sid = self.server.create()  # the default org's
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{sid}")
        t.join(timeout=30)
        r, took = results[0]
        self.assertEqual(r.json, [])
        self.assertGreater(took, 3.8)

    def test_bounds(self):
        self.assertError(self.server.request("GET", "/events/sandboxes?orderAsc=true&wait=31"), 400, "wait")
        self.assertError(self.server.request("GET", "/events/sandboxes?wait=5"), 400, "orderAsc=true")

    def test_many_waiters_answer_together(self):
        cursor = self.head_cursor()
        results = []
        threads = [threading.Thread(target=self.follow, args=(cursor, 20, "default", results))
                   for _ in range(50)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        sid = self.server.create()
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{sid}")
        for t in threads:
            t.join(timeout=40)
        self.assertEqual(len(results), 50)
        for r, took in results:
            self.assertStatus(r, 200)
            self.assertTrue(r.json)
            self.assertLess(took, 10)


if __name__ == "__main__":
    main()
