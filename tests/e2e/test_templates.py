"""The template catalogue's sandboxes, for real: an alias (`standard` is
`base`), the agent CLIs, headless Chromium against a page served inside the
sandbox on loopback, and a desktop (Xvfb, fluxbox, Chromium) that is driven
with xdotool and photographed with scrot.

The templates must be built (`sandboxd template build all`, as ./ops/test
does); a template that is not built fails here with the server's 503.
Everything a test makes is removed even when it fails: each sandbox is
killed by its test, and the harness removes whatever is left.
"""
import json
import struct
import subprocess
import time
import zlib

from harness import BIN, Envd, ServerTest, main

# Chromium on a closed network: nothing in the background, a fresh profile.
CHROMIUM_FLAGS = ("--no-sandbox --disable-gpu --disable-dev-shm-usage"
                  " --disable-background-networking --disable-component-update"
                  " --disable-sync --no-first-run --no-default-browser-check"
                  " --disable-quic --password-store=basic")


def png_pixels(data):
    """(width, height, bytes per pixel, rows) of an 8-bit RGB(A) PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:16]
    pos, idat = 8, b""
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    assert depth == 8 and ctype in (2, 6) and interlace == 0, (depth, ctype, interlace)
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = w * bpp
    rows, prev, i = [], bytearray(stride), 0
    for _ in range(h):
        f, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        if f == 1:
            for x in range(bpp, stride):
                line[x] = (line[x] + line[x - bpp]) & 255
        elif f == 2:
            for x in range(stride):
                line[x] = (line[x] + prev[x]) & 255
        elif f == 3:
            for x in range(stride):
                a = line[x - bpp] if x >= bpp else 0
                line[x] = (line[x] + ((a + prev[x]) >> 1)) & 255
        elif f == 4:
            for x in range(stride):
                a = line[x - bpp] if x >= bpp else 0
                b = prev[x]
                c = prev[x - bpp] if x >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[x] = (line[x] + pred) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, bpp, rows


class Templates(ServerTest):
    def new_sandbox(self, template, **fields):
        r = self.server.request("POST", "/sandboxes", {"templateID": template, **fields})
        self.assertStatus(r, 201)
        sid = r.json["sandboxID"]
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{sid}", timeout=60)
        return r.json

    def sh(self, sid, script, timeout=60, user="user", ok=True):
        r = self.server.run(sid, "bash", "-c", script, timeout=timeout, user=user)
        self.assertStatus(r, 200)
        if ok:
            self.assertEqual(r.json["exitCode"], 0, f"{script}\n{r.json}")
        return r.json

    def serve_page(self, sid, port, html):
        """python3 -m http.server on loopback inside the sandbox, serving `html`."""
        self.assertStatus(self.server.write(sid, f"/workspace/site{port}/index.html",
                                            html.encode()), 200)
        self.sh(sid, f"cd /workspace/site{port} && nohup python3 -m http.server {port}"
                     f" --bind 127.0.0.1 >/tmp/http{port}.log 2>&1 &")
        self.sh(sid, f"for i in $(seq 100); do curl -sf http://127.0.0.1:{port}/ >/dev/null"
                     f" && exit 0; sleep 0.1; done; cat /tmp/http{port}.log; exit 1")

    def test_catalogue_on_the_command_line(self):
        out = subprocess.run([BIN, "template", "list"], capture_output=True, text=True,
                             timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = {line.split()[0]: line for line in out.stdout.splitlines()}
        for name in ["base", "code_interpreter", "agent", "browser", "cua", "canvas"]:
            self.assertIn(name, lines)
            self.assertIn("built", lines[name].split()[1], lines[name])
        self.assertIn("standard", lines["base"])
        self.assertIn("mem=2048MB", lines["browser"])

    def test_standard_alias_creates_base(self):
        s = self.new_sandbox("standard")
        self.assertEqual(s["templateID"], "base")
        self.assertEqual(s["cpuCount"], 2)
        self.assertEqual(s["memoryMB"], 512)
        # What E2B's base has (issue 11): node, git, pip and `python`.
        out = self.sh(s["sandboxID"], "python -c 'print(6*7)'; command -v node git pip")
        self.assertEqual(out["stdout"], "42\n/usr/bin/node\n/usr/bin/git\n/usr/bin/pip\n")
        self.assertError(self.server.request("POST", "/sandboxes", {"templateID": "no-such"}),
                         400, "unknown template: no-such")

    def test_agent_clis_run(self):
        # `claude` (the name SandBase's documentation uses) is this template.
        s = self.new_sandbox("claude")
        self.assertEqual(s["templateID"], "agent")
        sid = s["sandboxID"]
        self.assertEqual(s["memoryMB"], 2048)
        claude = self.sh(sid, "claude --version")
        self.assertIn("Claude Code", claude["stdout"])
        codex = self.sh(sid, "codex --version")
        self.assertIn("codex-cli", codex["stdout"])
        node = self.sh(sid, "node --version")
        self.assertTrue(node["stdout"].startswith("v18."), node)
        # Nothing of the build is left in the image: npm cache, the build's CA.
        left = self.sh(sid, "ls -d /root/.npm /root/.codex /tmp/sandboxd-build 2>/dev/null; true",
                       user="root")
        self.assertEqual(left["stdout"], "")

    def test_browser_dumps_the_dom_of_a_page_served_inside(self):
        s = self.new_sandbox("browser")
        sid = s["sandboxID"]
        self.assertEqual(s["memoryMB"], 2048)
        self.serve_page(sid, 8123, "<html><head><title>t</title></head><body>"
                                   "<p id='x'>static</p><script>document.getElementById('x')"
                                   ".textContent = 'rendered ' + (6 * 7);</script></body></html>")
        out = self.sh(sid, f"chromium --headless {CHROMIUM_FLAGS}"
                           f" --user-data-dir=$(mktemp -d) --dump-dom http://127.0.0.1:8123/",
                      timeout=120)
        # The script ran: the DOM is Chromium's, not the file's.
        self.assertIn('<p id="x">rendered 42</p>', out["stdout"], out["stderr"][-2000:])

    def test_cua_desktop_runs_chromium_and_takes_a_screenshot(self):
        s = self.new_sandbox("cua")
        sid = s["sandboxID"]
        self.assertEqual(self.sh(sid, "echo $DISPLAY")["stdout"], ":1\n")
        self.serve_page(sid, 8124, "<html><head><title>sandboxd-cua-page</title></head>"
                                   "<body style='margin:0;background:rgb(51,102,204)'>"
                                   "<h1 style='color:white'>hello desktop</h1></body></html>")
        self.sh(sid, "nohup Xvfb :1 -screen 0 1024x768x24 -nolisten tcp >/tmp/xvfb.log 2>&1 &")
        self.sh(sid, "for i in $(seq 100); do xdotool getdisplaygeometry >/dev/null 2>&1"
                     " && exit 0; sleep 0.1; done; cat /tmp/xvfb.log; exit 1")
        self.sh(sid, "nohup fluxbox >/tmp/fluxbox.log 2>&1 &")
        # The window manager first (it names the desktops once it runs): a
        # window mapped before it cannot be activated.
        self.sh(sid, "for i in $(seq 300); do xdotool get_desktop >/dev/null 2>&1 && exit 0;"
                     " sleep 0.1; done; cat /tmp/fluxbox.log; exit 1", timeout=60)
        self.sh(sid, f"nohup chromium {CHROMIUM_FLAGS} --user-data-dir=/tmp/chromium-ui"
                     " --window-position=0,0 --window-size=1024,768 --start-maximized"
                     " http://127.0.0.1:8124/ >/tmp/chromium.log 2>&1 &")
        # xdotool finds the window by the page's title and focuses it.
        found = self.sh(sid, "for i in $(seq 300); do w=$(xdotool search --onlyvisible --name"
                             " sandboxd-cua-page 2>/dev/null | head -1); [ -n \"$w\" ] &&"
                             " xdotool windowactivate --sync $w && xdotool getwindowname $w &&"
                             " exit 0; sleep 0.1; done; tail -20 /tmp/chromium.log;"
                             " tail -20 /tmp/fluxbox.log; exit 1",
                        timeout=60)
        self.assertIn("sandboxd-cua-page", found["stdout"])
        envd = Envd(self.server, s)
        share = 0
        for attempt in range(10):
            self.sh(sid, "rm -f /tmp/shot.png && scrot /tmp/shot.png && test -s /tmp/shot.png")
            shot = envd.files_get("/tmp/shot.png")
            self.assertEqual(shot.status, 200, shot)
            w, h, bpp, rows = png_pixels(shot.raw)
            self.assertEqual((w, h), (1024, 768))
            blue = bytes([51, 102, 204])
            pixels = sum(1 for row in rows[::4] for x in range(0, w * bpp, bpp * 4)
                         if row[x:x + 3] == blue)
            share = pixels / ((h // 4) * (w // 4))
            # The page's background fills most of the screen once painted.
            if share > 0.3:
                break
            time.sleep(1)
        self.assertGreater(share, 0.3, "the page is not on the screenshot")

    def test_canvas_is_the_cua_desktop(self):
        s = self.new_sandbox("canvas")
        self.assertEqual(s["templateID"], "canvas")
        out = self.sh(s["sandboxID"], "command -v Xvfb fluxbox xdotool scrot chromium claude codex"
                                      " | wc -l; echo $DISPLAY")
        self.assertEqual(out["stdout"], "7\n:1\n")


if __name__ == "__main__":
    main()
