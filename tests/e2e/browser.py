"""Headless Chromium (Debian's) driven over the DevTools protocol, for the
console's tests: a browser of the test's own (its own profile directory,
removed after), one page, JavaScript evaluated in it, screenshots. The
WebSocket client is the few lines CDP needs (text frames, fragments, pings)."""
import base64
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request


class WebSocket:
    def __init__(self, url, timeout=60, tls=None, headers=None):
        # tls: an ssl.SSLContext for wss:// URLs; headers: more request headers.
        u = urllib.parse.urlparse(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
        if u.scheme == "wss":
            self.sock = tls.wrap_socket(self.sock, server_hostname=u.hostname)
        key = base64.b64encode(os.urandom(16)).decode()
        target = u.path + (f"?{u.query}" if u.query else "")
        self.sock.sendall((f"GET {target} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                           + "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
                           + "\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("the browser closed the DevTools connection")
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            # A refusal: its head and body (Content-Length) in the error.
            m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            try:
                while m and len(self.buf) < int(m.group(1)):
                    chunk = self.sock.recv(4096)
                    if not chunk:
                        break
                    self.buf += chunk
            finally:
                self.sock.close()
            raise ConnectionError((head + b"\r\n\r\n" + self.buf).decode(errors="replace"))

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("the browser closed the DevTools connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        size = bytes([0x80 | n]) if n < 126 else (bytes([0x80 | 126]) + struct.pack(">H", n)
                                                  if n < 65536 else bytes([0x80 | 127]) + struct.pack(">Q", n))
        self.sock.sendall(bytes([0x80 | opcode]) + size + mask
                          + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def send(self, text):
        self._send(0x1, text.encode())

    def send_bytes(self, data):
        self._send(0x2, data)

    def _frame(self):
        b0, b1 = self._read(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", self._read(8))[0]
        return b0 & 0x0F, self._read(n), bool(b0 & 0x80)

    def recv_frame(self):
        """One frame as (opcode, payload): a close frame is returned, not raised."""
        opcode, payload, _ = self._frame()
        return opcode, payload

    def recv(self):
        message = b""
        while True:
            opcode, payload, fin = self._frame()
            if opcode == 0x9:  # ping
                self._send(0xA, payload)
                continue
            if opcode == 0x8:
                raise ConnectionError("the browser closed the DevTools connection")
            message += payload
            if fin:
                return message.decode()

    def close(self):
        self.sock.close()


class Browser:
    """One headless Chromium with one page."""

    def __init__(self, width=1280, height=900):
        exe = shutil.which("chromium") or shutil.which("chromium-browser")
        if not exe:
            raise FileNotFoundError("chromium is not installed")
        self.profile = tempfile.mkdtemp(prefix="sandboxd-chromium-")
        self.proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-extensions", "--disable-background-networking", "--remote-debugging-port=0",
             f"--user-data-dir={self.profile}", f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.ws = None
        try:
            port = None
            deadline = time.monotonic() + 60
            while port is None and time.monotonic() < deadline:
                line = self.proc.stderr.readline().decode(errors="replace")
                if not line and self.proc.poll() is not None:
                    raise RuntimeError("chromium exited")
                m = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
                if m:
                    port = int(m.group(1))
            if port is None:
                raise RuntimeError("chromium did not start")
            # Keep reading its stderr so that it never blocks on a full pipe.
            import threading
            threading.Thread(target=self._drain, daemon=True).start()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as r:
                page = next(t for t in json.load(r) if t["type"] == "page")
            self.ws = WebSocket(page["webSocketDebuggerUrl"])
            self.next_id = 0
            self.call("Page.enable")
            self.call("Runtime.enable")
        except BaseException:
            self.close()
            raise

    def _drain(self):
        try:
            while self.proc.stderr.read(65536):
                pass
        except (OSError, ValueError):
            pass

    def call(self, method, **params):
        self.next_id += 1
        me = self.next_id
        self.ws.send(json.dumps({"id": me, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == me:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def evaluate(self, expression):
        r = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def navigate(self, url):
        self.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'")

    def wait_for(self, predicate, within=20.0):
        """Waits until the JavaScript `predicate` is true; the time it took."""
        started = time.monotonic()
        while True:
            if self.evaluate(f"!!({predicate})"):
                return time.monotonic() - started
            if time.monotonic() - started > within:
                raise AssertionError(f"never true: {predicate}\npage: "
                                     + str(self.evaluate("document.body.innerText"))[:2000])
            time.sleep(0.02)

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        if self.ws:
            try:
                self.ws.close()
            except OSError:
                pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)
