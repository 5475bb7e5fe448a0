"""Issue 15 §1: the web console in a real browser (headless Chromium driven
over the DevTools protocol, tests/e2e/browser.py): sign in (a wrong key is
refused), see a sandbox appear as it is created (from the event log's long
poll, no reload), pause it from the page, open it and see its CPU and memory
charts drawn and its logs, a terminal in it typed into, its files browsed,
uploaded, downloaded (a large one through a signed envd URL) and deleted, the org's events filtered by type and the
hash chain verified from the page; metadata that
carries HTML stays text. Screenshots go to $SANDBOXD_SCREENSHOTS (default: a
directory under the build's temp dir, printed)."""
import base64
import hashlib
import os
import shutil
import tempfile
import time
import unittest

from harness import Server, ServerTest, eventually, main
from webhook_receiver import Receiver

try:
    from browser import Browser
except ImportError:  # pragma: no cover
    Browser = None

SHOTS = os.environ.get("SANDBOXD_SCREENSHOTS") or os.path.join(tempfile.gettempdir(),
                                                                "sandboxd-console-screenshots")


class Console(ServerTest):
    # The webhook receiver listens on loopback: a private address.
    server_args = ("--metrics-interval", "500ms", "--allow-private-webhooks", "true")

    @classmethod
    def setUpClass(cls):
        if shutil.which("chromium") is None:
            raise unittest.SkipTest("chromium is not installed")
        super().setUpClass()
        os.makedirs(SHOTS, exist_ok=True)
        cls.browser = Browser()
        cls.addClassCleanup(cls.browser.close)
        cls.url = f"http://127.0.0.1:{cls.server.port}/"

    def sign_in(self, key):
        b = self.browser
        b.evaluate(f"document.getElementById('key').value = {key!r}")
        b.evaluate("document.getElementById('signin-form').requestSubmit()")

    def test_the_console_end_to_end(self):
        b = self.browser
        b.evaluate("(() => { try { sessionStorage.clear() } catch (e) {} })()")  # signed out
        started = time.monotonic()
        b.navigate(self.url)
        b.wait_for("document.getElementById('signin-form')")
        load = time.monotonic() - started
        # A wrong key is refused, with a reason.
        self.sign_in("e2b_" + "0" * 40)
        b.wait_for("document.getElementById('signin-error').textContent.includes('not valid')")
        started = time.monotonic()
        self.sign_in(self.server.key)
        b.wait_for("document.querySelector('#sandboxes tbody')")
        signed_in = time.monotonic() - started

        # A sandbox created elsewhere shows up by itself.
        hostile = '<img src=x onerror="window.pwned=1">'
        created_at = time.monotonic()
        r = self.server.request("POST", "/sandboxes", {"templateID": "base",
                                                       "metadata": {"owner": "console", "note": hostile}})
        self.assertStatus(r, 201)
        sid = r.json["sandboxID"]
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{sid}")
        b.wait_for(f"document.querySelector('tr[data-id=\"{sid}\"]')", within=15)
        live = time.monotonic() - created_at
        row = b.evaluate(f"document.querySelector('tr[data-id=\"{sid}\"]').innerText")
        self.assertIn("running", row)
        self.assertIn(hostile, row, "metadata is shown as the text it is")
        self.assertIsNone(b.evaluate("window.pwned"))
        b.screenshot(os.path.join(SHOTS, "sandboxes.png"))

        # Pause from the page: the row follows.
        b.evaluate(f"document.querySelector('tr[data-id=\"{sid}\"] button[data-action=pause]').click()")
        b.wait_for(f"document.querySelector('tr[data-id=\"{sid}\"]').innerText.includes('paused')",
                   within=30)
        self.assertEqual(self.server.request("GET", f"/sandboxes/{sid}").json["state"], "paused")

        # Its page: resume it there, then the charts fill and the logs show.
        b.evaluate(f"location.hash = '#/sandboxes/{sid}'")
        b.wait_for("document.querySelector('button[data-action=resume]')")
        b.evaluate("document.querySelector('button[data-action=resume]').click()")
        b.wait_for("document.querySelector('.state.running')", within=30)
        # Some work to see: a few seconds of CPU and 64 MiB held meanwhile.
        self.server.run(sid, "sh", "-c", "echo from-the-sandbox; python3 -c \"import time; b = bytearray(64 << 20); "
                                         "t = time.time()\nwhile time.time() - t < 4: pass\"")
        b.wait_for("Chart.getChart('cpu-chart') && Chart.getChart('cpu-chart').data.datasets[0].data.length > 6"
                   " && Chart.getChart('cpu-chart').data.datasets[0].data.some(v => v > 10)"
                   " && Chart.getChart('mem-chart').data.datasets[0].data.some(v => v > 32)", within=40)
        b.wait_for("document.getElementById('logs').textContent.includes('from-the-sandbox')", within=15)
        # The chart is drawn: its canvas has coloured pixels.
        drawn = b.evaluate("""(() => { const c = document.getElementById('cpu-chart');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n })()""")
        self.assertGreater(drawn, 1000)
        b.screenshot(os.path.join(SHOTS, "sandbox.png"))

        # The org's timeline, filtered by type.
        b.evaluate("location.hash = '#/events'")
        b.wait_for("document.querySelectorAll('#events tbody tr').length > 0")
        b.evaluate("document.getElementById('type-filter').value = 'sandbox.lifecycle.paused'")
        b.evaluate("document.querySelector('.filters button').click()")
        b.wait_for("[...document.querySelectorAll('#events tbody tr')].every("
                   "r => r.innerText.includes('sandbox.lifecycle.paused'))"
                   " && document.querySelectorAll('#events tbody tr').length >= 1")
        self.assertIn("Audit chain head", b.evaluate("document.body.innerText"))
        b.evaluate("document.getElementById('verify').click()")
        b.wait_for("document.getElementById('verify-result').textContent.includes('The chain holds')")
        b.screenshot(os.path.join(SHOTS, "events.png"))
        print(f"\nconsole: page load {load * 1000:.0f} ms, signed in to the list {signed_in * 1000:.0f} ms, "
              f"a created sandbox shown {live * 1000:.0f} ms after the create was sent "
              f"(the create included); screenshots in {SHOTS}")

        # Signing out forgets the key.
        b.evaluate("document.getElementById('signout').click()")
        b.wait_for("document.getElementById('signin-form')")
        self.assertIsNone(b.evaluate("sessionStorage.getItem('sandboxd-key')"))

    def test_webhooks_and_templates(self):
        b = self.browser
        receiver = Receiver("console-secret").start()
        self.addCleanup(receiver.stop)
        b.navigate(self.url)
        b.wait_for("document.getElementById('signin-form') || document.getElementById('nav')")
        if b.evaluate("!!document.getElementById('signin-form')"):
            self.sign_in(self.server.key)
            b.wait_for("document.querySelector('#sandboxes tbody')")
        # Create one from the page.
        b.evaluate("location.hash = '#/webhooks'")
        b.wait_for("document.getElementById('hook-form')")
        b.evaluate(f"""(() => {{
            document.getElementById('hook-name').value = 'console-hook';
            document.getElementById('hook-url').value = {receiver.url!r};
            document.getElementById('hook-secret').value = 'console-secret';
            document.getElementById('hook-form').requestSubmit() }})()""")
        b.wait_for("[...document.querySelectorAll('#webhooks tbody tr')].some(r => r.innerText.includes('console-hook'))")
        hooks = self.server.request("GET", "/events/webhooks").json
        hook = next(h for h in hooks if h["name"] == "console-hook")
        self.addCleanup(self.server.request, "DELETE", f"/events/webhooks/{hook['id']}")
        # Disable and enable it from the page.
        row = f"#webhooks tr[data-id=\"{hook['id']}\"]"
        b.evaluate(f"document.querySelector('{row} button[data-action=disable]').click()")
        b.wait_for(f"document.querySelector('{row} button[data-action=enable]')")
        self.assertFalse(self.server.request("GET", f"/events/webhooks/{hook['id']}").json["enabled"])
        b.evaluate(f"document.querySelector('{row} button[data-action=enable]').click()")
        b.wait_for(f"document.querySelector('{row} button[data-action=disable]')")
        # An event is delivered; its delivery shows with its attempt.
        r = self.server.request("POST", "/sandboxes", {"templateID": "base"})
        self.assertStatus(r, 201)
        sid = r.json["sandboxID"]
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{sid}")
        self.assertTrue(receiver.wait_for(
            lambda reqs: any((q.json or {}).get("sandboxId") == sid for q in reqs), 30))
        b.evaluate(f"location.hash = '#/webhooks/{hook['id']}'")
        b.wait_for(f"[...document.querySelectorAll('#deliveries tbody tr')].some("
                   f"r => r.innerText.includes('{sid}') && r.innerText.includes('success'))", within=30)
        # Redeliver it: a second attempt reaches the receiver and the page.
        event_id = b.evaluate(f"[...document.querySelectorAll('#deliveries tbody tr')].find("
                              f"r => r.innerText.includes('{sid}')).dataset.event")
        b.evaluate(f"document.querySelector('#deliveries tr[data-event=\"{event_id}\"] button[data-action=redeliver]').click()")
        self.assertTrue(receiver.wait_for(
            lambda reqs: sum(1 for q in reqs if q.event_id == event_id) >= 2, 30))
        b.wait_for(f"document.querySelector('#deliveries tr[data-event=\"{event_id}\"] .attempts').children.length >= 2",
                   within=30)
        b.screenshot(os.path.join(SHOTS, "webhooks.png"))
        # Templates, with their build status.
        b.evaluate("location.hash = '#/templates'")
        b.wait_for("document.querySelector('#templates tr[data-id=base]')")
        self.assertIn("ready", b.evaluate("document.querySelector('#templates tr[data-id=base]').innerText"))
        # A snapshot, and a sandbox started from it on the page.
        src = self.server.create()
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{src}")
        self.server.sh(src, "echo kept > /home/user/kept.txt")
        self.assertStatus(self.server.request("POST", f"/sandboxes/{src}/snapshots", {"name": "console-snap"}), 201)
        b.evaluate("location.hash = '#/events'")
        b.evaluate("location.hash = '#/templates'")
        b.wait_for("document.querySelector('#snapshots tr[data-id=\"console-snap:default\"]')")
        b.evaluate("document.querySelector('#snapshots tr[data-id=\"console-snap:default\"] button').click()")
        b.wait_for("/^#\\/sandboxes\\/[a-z0-9]+$/.test(location.hash)", within=30)
        started = b.evaluate("location.hash.split('/')[2]")
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{started}")
        self.assertEqual(self.server.sh(started, "cat /home/user/kept.txt")["stdout"].strip(), "kept")
        b.evaluate("location.hash = '#/templates'")
        # An org's own build, its log followed from the page as it is written
        # (this one fails at apt-get: a short build that still logs).
        r = self.server.request("POST", "/templates", {"name": "console-broken",
                                                       "packages": ["sandboxd-no-such-package"]})
        self.assertStatus(r, 202)
        tid = r.json["templateID"]
        self.addCleanup(self.server.request, "DELETE", f"/templates/{tid}")
        b.evaluate("location.hash = '#/events'")  # and back: the list now has it
        b.evaluate("location.hash = '#/templates'")
        b.wait_for(f"document.querySelector('#templates tr[data-id=\"{tid}\"] button[data-action=logs]')")
        b.evaluate(f"document.querySelector('#templates tr[data-id=\"{tid}\"] button[data-action=logs]').click()")
        b.wait_for("document.getElementById('build-logs').textContent.length > 0", within=60)
        b.wait_for("document.getElementById('build-logs').textContent.includes('sandboxd-no-such-package')"
                   " && document.querySelector('h2:not([hidden])').textContent.endsWith(': error')", within=300)
        b.screenshot(os.path.join(SHOTS, "templates.png"))

    def signed_in_at(self, hash_):
        b = self.browser
        b.navigate(self.url)
        b.wait_for("document.getElementById('signin-form') || document.getElementById('nav')")
        if b.evaluate("!!document.getElementById('signin-form')"):
            self.sign_in(self.server.key)
            b.wait_for("document.querySelector('#sandboxes tbody')")
        b.evaluate(f"location.hash = {hash_!r}")

    def screen(self):
        """What the console's terminal shows, line by line (xterm.js's buffer)."""
        return self.browser.evaluate("""(() => { const b = window.sandboxdTerminal.buffer.active;
            let s = ''; for (let i = 0; i < b.length; i++) s += b.getLine(i).translateToString(true) + String.fromCharCode(10);
            return s })()""")

    def test_a_terminal_and_the_files(self):
        b = self.browser
        sid = self.server.create()
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{sid}")
        self.server.sh(sid, "mkdir -p /home/user/made-here && echo inner > /home/user/made-here/inner.txt")
        self.signed_in_at(f"#/sandboxes/{sid}")

        # The terminal: typed into as a person types (keystrokes to the page).
        b.wait_for("document.getElementById('open-terminal')")
        started = time.monotonic()
        b.evaluate("document.getElementById('open-terminal').click()")
        b.wait_for("document.getElementById('terminal-status').textContent === 'connected'")
        b.wait_for("window.sandboxdTerminal.buffer.active.getLine(0).translateToString(true).includes('$')",
                   within=20)
        opened = time.monotonic() - started
        b.call("Input.insertText", text="echo console-$((6*7)); stty size")
        for kind in ("keyDown", "keyUp"):
            b.call("Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter",
                   windowsVirtualKeyCode=13, **({"text": "\r"} if kind == "keyDown" else {}))
        started = time.monotonic()
        b.wait_for("(() => { const b = window.sandboxdTerminal.buffer.active; for (let i = 0; i < b.length; i++)"
                   " if (b.getLine(i).translateToString(true).startsWith('console-42')) return true; return false })()")
        echoed = time.monotonic() - started
        rows, cols = b.evaluate("[window.sandboxdTerminal.rows, window.sandboxdTerminal.cols]")
        deadline = time.monotonic() + 10
        while f"\n{rows} {cols}\n" not in self.screen():  # the PTY has the page's size
            self.assertLess(time.monotonic(), deadline, self.screen())
            time.sleep(0.05)
        b.evaluate("document.getElementById('terminal').scrollIntoView({block: 'center'})")
        b.screenshot(os.path.join(SHOTS, "terminal.png"))
        print(f"\nconsole terminal: prompt {opened * 1000:.0f} ms after the click, "
              f"a command's output {echoed * 1000:.0f} ms after Enter")

        # The files: a folder opened, a file uploaded from the page, downloaded, deleted.
        b.wait_for("document.getElementById('files').innerText.includes('made-here/')")
        b.evaluate("[...document.querySelectorAll('#files a')].find(a => a.textContent === 'made-here/').click()")
        b.wait_for("document.getElementById('files-path').value === '/home/user/made-here'"
                   " && document.getElementById('files').innerText.includes('inner.txt')")
        # Up, and a path typed with "..": both land where they should.
        b.evaluate("document.querySelectorAll('#files .path button')[1].click()")
        b.wait_for("document.getElementById('files-path').value === '/home/user'")
        b.evaluate("""(() => { document.getElementById('files-path').value = 'made-here/../made-here/.';
                      document.querySelectorAll('#files .path button')[0].click() })()""")
        b.wait_for("document.getElementById('files-path').value === '/home/user/made-here'"
                   " && document.getElementById('files').innerText.includes('inner.txt')")
        upload = os.path.join(self.server.dir, "from-the-page.txt")
        with open(upload, "wb") as f:
            f.write(b"uploaded \xff bytes\n")
        doc = b.call("DOM.getDocument")["root"]["nodeId"]
        node = b.call("DOM.querySelector", nodeId=doc, selector="#files-upload")["nodeId"]
        b.call("DOM.setFileInputFiles", files=[upload], nodeId=node)
        b.wait_for("[...document.querySelectorAll('#files tbody tr')].some(r => r.innerText.includes('from-the-page.txt'))")
        stored = self.server.read(sid, "/home/user/made-here/from-the-page.txt").json["content"]
        self.assertEqual(base64.b64decode(stored), b"uploaded \xff bytes\n")
        b.evaluate("""[...document.querySelectorAll('#files tr')].find(r => r.innerText.includes('from-the-page.txt'))
                      .querySelector('button').click()""")
        b.wait_for("document.getElementById('files-note').textContent.includes('downloaded from-the-page.txt (17 bytes)')")
        # A large one goes through a signed envd URL, both ways, streamed.
        big = os.path.join(self.server.dir, "large-from-the-page.bin")
        blob = os.urandom(3 << 20)
        with open(big, "wb") as f:
            f.write(blob)
        b.call("DOM.setFileInputFiles", files=[big], nodeId=node)
        b.wait_for("document.getElementById('files-note').textContent.includes('uploaded large-from-the-page.bin')",
                   within=60)
        digest = self.server.sh(sid, "sha256sum /home/user/made-here/large-from-the-page.bin")["stdout"].split()[0]
        self.assertEqual(digest, hashlib.sha256(blob).hexdigest())
        saved = tempfile.mkdtemp(prefix="sandboxd-console-downloads-")
        self.addCleanup(shutil.rmtree, saved, True)
        b.call("Page.setDownloadBehavior", behavior="allow", downloadPath=saved)
        b.wait_for("[...document.querySelectorAll('#files tbody tr')].some(r => r.innerText.includes('large-from-the-page.bin'))")
        b.evaluate("""[...document.querySelectorAll('#files tbody tr')].find(r => r.innerText.includes('large-from-the-page.bin'))
                      .querySelector('button').click()""")
        target = os.path.join(saved, "large-from-the-page.bin")
        self.assertTrue(eventually(lambda: os.path.exists(target) and os.path.getsize(target) == len(blob),
                                   within=30), os.listdir(saved))
        with open(target, "rb") as f:
            self.assertEqual(f.read(), blob)
        b.evaluate("document.getElementById('files').scrollIntoView({block: 'center'})")
        b.screenshot(os.path.join(SHOTS, "files.png"))
        b.evaluate("window.confirm = () => true")
        b.evaluate("""[...document.querySelectorAll('#files tr')].find(r => r.innerText.includes('from-the-page.txt'))
                      .querySelector('button.danger').click()""")
        b.wait_for("![...document.querySelectorAll('#files tbody tr')].some(r => r.innerText.includes('from-the-page.txt'))")
        self.assertEqual(self.server.sh(sid, "ls /home/user/made-here")["stdout"].split(),
                         ["inner.txt", "large-from-the-page.bin"])

        # Leaving the page closes the terminal, and its shell with it.
        b.evaluate("location.hash = '#/events'")
        self.assertTrue(eventually(lambda: "bash -i -l" not in self.server.sh(sid, "ps -eo args")["stdout"],
                                   within=10))

    def test_the_api_reference(self):
        """Swagger UI over GET /openapi.yaml, reached from the console's nav,
        with "Try it out" going to this server with the signed-in key."""
        b = self.browser
        self.signed_in_at("#/sandboxes")
        b.wait_for("document.querySelector('#nav a[href=\"/console/api.html\"]')")  # the way there
        b.navigate(self.url + "console/api.html")
        b.wait_for("document.querySelectorAll('.opblock').length > 50", within=30)
        text = b.evaluate("document.body.innerText")
        for route in ("/sandboxes/{sandboxID}/terminal", "/events/audit/verify", "/v3/templates"):
            self.assertIn(route, text)
        b.screenshot(os.path.join(SHOTS, "api.png"))
        # "Try it out" goes to this server (the spec's example server is
        # another), with the key the console is signed in with.
        sent = b.evaluate("window.sandboxdReference.getConfigs().requestInterceptor("
                          "{url: 'http://127.0.0.1:3000/v2/sandboxes?limit=1'}).url")
        self.assertEqual(sent, f"http://127.0.0.1:{self.server.port}/v2/sandboxes?limit=1")
        auth = b.evaluate("JSON.stringify(window.sandboxdReference.authSelectors.authorized().toJS())")
        self.assertIn(self.server.key, auth)
        b.navigate(self.url)

    def test_pages_carry_a_strict_content_policy(self):
        r = self.server.request("GET", "/", key=None)
        self.assertStatus(r, 200)
        self.assertIn("default-src 'self'", r.headers["Content-Security-Policy"])
        self.assertEqual(self.server.request("GET", "/console/nope.js", key=None).status, 404)


class ConsoleOff(ServerTest):
    server_args = ("--console", "false")

    def test_off_means_not_served(self):
        self.assertError(self.server.request("GET", "/", key=None), 404, "console is off")
        self.assertError(self.server.request("GET", "/console/console.js", key=None), 404)


if __name__ == "__main__":
    main()
