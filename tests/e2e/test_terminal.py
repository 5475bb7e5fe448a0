"""The console's terminal as a real client uses it: POST /sandboxes/:id/terminal
gives a ticket, envd's GET /terminal upgrades to a WebSocket with a login shell
on a PTY in the sandbox. Commands run, the PTY resizes, the exit code comes
back; closing the socket hangs the shell up (its jobs too); tickets are per
sandbox, per org, open one terminal as the default user and expire; hostile
frames are refused with the right close code and leave no shell behind."""
import hashlib
import hmac
import json
import os
import re
import subprocess
import time

from browser import WebSocket
from harness import BIN, ServerTest, eventually, main

STORE_SECRET = os.environ.get("SANDBOXD_STORE_SECRET") or os.path.join(
    os.path.dirname(BIN), "tests", "store_secret")


class Terminal:
    """One terminal session: keystrokes in, the screen's bytes out."""

    def __init__(self, url, headers=None):
        self.ws = WebSocket(url, timeout=30, headers=headers)
        self.out = b""
        self.closed = None  # (code, reason) once the server closed
        self.texts = []     # the server's text messages (exit, error)

    def type(self, text):
        self.ws.send_bytes(text.encode())

    def pump(self):
        op, payload = self.ws.recv_frame()
        if op == 0x2:
            self.out += payload
        elif op == 0x1:
            self.texts.append(json.loads(payload))
        elif op == 0x8:
            self.closed = (int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None,
                           payload[2:].decode(errors="replace"))
        return op

    def wait_for(self, pattern, within=20):
        deadline = time.time() + within
        while time.time() < deadline and self.closed is None:
            m = re.search(pattern, self.out)
            if m:
                return m
            self.pump()
        m = re.search(pattern, self.out)
        if not m:
            raise AssertionError(f"{pattern!r} not seen; screen: {self.out[-2000:]!r}, closed {self.closed}")
        return m

    def wait_closed(self, within=20):
        deadline = time.time() + within
        while self.closed is None and time.time() < deadline:
            self.pump()
        return self.closed

    def close(self):
        self.ws.close()


class Terminals(ServerTest):
    """What the tests below share: sandboxes, tickets, sessions."""

    def sandbox(self):
        sid = self.server.create()
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{sid}")
        return sid

    def ticket(self, sid, key="default"):
        r = self.server.request("POST", f"/sandboxes/{sid}/terminal", key=key)
        self.assertStatus(r, 201)
        return r.json

    def open(self, url):
        t = Terminal(url)
        self.addCleanup(t.close)
        return t

    def shells(self, sid):
        """The pids of the login shells the terminal started (bash -i -l) in the sandbox."""
        out = self.server.sh(sid, "ps -eo pid,args | grep '[b]ash -i -l' || true")
        return [line.split()[0] for line in out["stdout"].splitlines() if line.strip()]

    def envd_url(self, path):
        return f"ws://127.0.0.1:{self.server.envd_port}{path}"



class TerminalTest(Terminals):
    def test_a_shell_runs_commands_resizes_and_exits_with_its_code(self):
        sid = self.sandbox()
        t = self.ticket(sid)
        self.assertEqual(t["sandboxID"], sid)
        self.assertEqual(t["envdPort"], self.server.envd_port)
        self.assertTrue(t["url"].startswith(f"ws://127.0.0.1:{self.server.envd_port}/terminal?"))
        term = self.open(t["url"] + "&cols=100&rows=30")
        term.type("stty size; echo $((6*7))-ok; whoami\r")
        term.wait_for(rb"30 100")
        term.wait_for(rb"42-ok")
        term.wait_for(rb"\r\nuser\r\n")
        term.ws.send(json.dumps({"resize": {"cols": 120, "rows": 40}}))
        term.type("stty size\r")
        term.wait_for(rb"40 120")
        # Bytes that are not UTF-8 pass through both ways.
        term.type("printf '\\377\\376|'; echo\r")
        term.wait_for(rb"\xff\xfe\|")
        term.type("exit 3\r")
        self.assertEqual(term.wait_closed(), (1000, "exited"))
        self.assertEqual(term.texts[-1]["exit"]["exitCode"], 3)
        self.assertEqual(self.shells(sid), [])

    def test_closing_the_socket_kills_the_shell(self):
        sid = self.sandbox()
        term = self.open(self.ticket(sid)["url"])
        # A background job of the shell's goes with it (bash passes the hangup on).
        term.type("sleep 4242 & echo pid=$$\r")
        pid = term.wait_for(rb"pid=(\d+)").group(1).decode()
        self.assertIn(pid, self.shells(sid))
        self.assertIn("sleep 4242", self.server.sh(sid, "ps -eo args")["stdout"])
        term.close()  # no close frame: the client just goes away
        self.assertTrue(eventually(lambda: pid not in self.shells(sid), within=10), self.shells(sid))
        self.assertTrue(eventually(lambda: "sleep 4242" not in self.server.sh(sid, "ps -eo args")["stdout"],
                                   within=10))

    def test_tickets_are_per_sandbox_per_org_and_expire(self):
        a, b = self.sandbox(), self.sandbox()
        ta = self.ticket(a)
        ticket = ta["ticket"]

        def refused(path):
            with self.assertRaises(ConnectionError) as e:
                WebSocket(self.envd_url(path), timeout=10)
            return str(e.exception)

        self.assertIn("401", refused(f"/terminal?sandboxID={a}"))
        self.assertIn("missing ticket", refused(f"/terminal?sandboxID={a}"))
        self.assertIn("401", refused(f"/terminal?sandboxID={b}&ticket={ticket}"))  # a's, for b
        altered = ticket[:-1] + ("0" if ticket[-1] != "0" else "1")
        self.assertIn("invalid ticket", refused(f"/terminal?sandboxID={a}&ticket={altered}"))
        expiry, nonce, mac = ticket.split(".")
        later = str(int(expiry) + 3600)  # a longer life, same signature
        self.assertIn("invalid ticket", refused(f"/terminal?sandboxID={a}&ticket={later}.{nonce}.{mac}"))
        # One signed by the server for a moment that has passed.
        secret = subprocess.run([STORE_SECRET, os.path.join(self.server.dir, "db")],
                                capture_output=True, text=True, timeout=60, check=True).stdout.strip()
        past = str(int(time.time()) - 5)
        sig = hmac.new(secret.encode(), f"terminal:{a}:{past}.{nonce}".encode(), hashlib.sha256).hexdigest()
        self.assertIn("expired", refused(f"/terminal?sandboxID={a}&ticket={past}.{nonce}.{sig}"))
        # Another org cannot get one; a size out of range is refused.
        other = self.server.new_key("terminal-other")
        self.assertError(self.server.request("POST", f"/sandboxes/{a}/terminal", key=other), 404)
        self.assertIn("400", refused(f"/terminal?sandboxID={a}&ticket={ticket}&cols=0"))
        self.assertIn("400", refused(f"/terminal?sandboxID={a}&ticket={ticket}&rows=99999"))
        # A plain GET (no upgrade) is told what the route is.
        c = self.server.connection(self.server.envd_port)
        c.request("GET", f"/terminal?sandboxID={a}&ticket={ticket}")
        r = c.getresponse()
        self.assertEqual(r.status, 400)
        self.assertIn("WebSocket", json.loads(r.read())["message"])
        c.close()
        # The ticket itself still works (it is not used up by refusals), as the
        # default user whatever Authorization says, and opens one terminal.
        root = {"Authorization": "Basic cm9vdDo="}  # root:
        term = Terminal(self.envd_url(ta["path"]), headers=root)
        self.addCleanup(term.close)
        term.type("echo still-$((1+1)) $(whoami)\r")
        term.wait_for(rb"still-2 user")
        self.assertIn("opened its terminal already", refused(ta["path"]))

    def test_a_paused_sandbox_gets_no_ticket(self):
        sid = self.sandbox()
        self.assertStatus(self.server.request("POST", f"/sandboxes/{sid}/pause"), 204)
        self.assertError(self.server.request("POST", f"/sandboxes/{sid}/terminal"), 409, "resume it first")
        self.assertError(self.server.request("POST", "/sandboxes/nosuchsandbox0000000/terminal"), 404)

    def test_hostile_frames_are_refused_and_leave_no_shell(self):
        sid = self.sandbox()
        cases = [
            # (what is sent, the close code expected)
            (lambda ws: ws.sock.sendall(b"\x82\x03abc"), 1002),                        # unmasked
            (lambda ws: ws.send_bytes(b"x" * (100 * 1024)), 1009),                   # past 64 KiB
            (lambda ws: ws.sock.sendall(b"\x82\xff" + b"\x7f" * 8 + b"mask"), 1009),  # 2^63 announced
            (lambda ws: ws.send('{"resize": {"cols": 0, "rows": 5}}'), 1003),
            (lambda ws: ws.send("not json"), 1003),
            (lambda ws: ws.send('{"resize":' + "[" * 30000 + "]" * 30000 + "}"), 1003),  # deep
            # A fragment, then a continuation whose 64-bit length would wrap.
            (lambda ws: ws.sock.sendall(b"\x01\x8e" + b"mask" + b"x" * 14 + b"\x80\xff"
                                        + (2 ** 64 - 14).to_bytes(8, "big") + b"mask"), 1002),
        ]
        for send, code in cases:
            term = self.open(self.ticket(sid)["url"])  # a ticket opens one terminal
            term.type("echo ready-$((2*3))\r")
            term.wait_for(rb"ready-6")
            send(term.ws)
            closed = term.wait_closed()
            self.assertIsNotNone(closed)
            self.assertEqual(closed[0], code, closed)
        self.assertTrue(eventually(lambda: self.shells(sid) == [], within=10), self.shells(sid))
        # The sandbox and the server are fine afterwards.
        self.assertEqual(self.server.sh(sid, "echo fine")["stdout"].strip(), "fine")


class TerminalCap(Terminals):
    """serve --max-terminals: past it a terminal is refused with 1013 (try
    again later); a closed one gives its place back."""
    server_args = ("--max-terminals", "2")

    def test_past_the_cap_a_terminal_is_refused(self):
        sid = self.sandbox()
        first, second = self.open(self.ticket(sid)["url"]), self.open(self.ticket(sid)["url"])
        for term in (first, second):
            term.type("echo open-$((3*3))\r")
            term.wait_for(rb"open-9")
        third = self.open(self.ticket(sid)["url"])
        self.assertEqual(third.wait_closed()[0], 1013)
        first.close()
        self.assertTrue(eventually(lambda: len(self.shells(sid)) == 1, within=10), self.shells(sid))
        fourth = self.open(self.ticket(sid)["url"])
        fourth.type("echo again-$((4*4))\r")
        fourth.wait_for(rb"again-16")


if __name__ == "__main__":
    main()
