"""A webhook receiver for the end-to-end tests: a threaded HTTP server on
127.0.0.1 that records every request and checks both signatures sandboxd
sends, each written from its public spec (not from sandboxd's code):

* E2B (e2b.dev/docs/sandbox/lifecycle-events-webhooks): `e2b-signature` is
  SHA-256 over signatureSecret + raw body, base64 with the trailing '='
  removed. Not an HMAC. E2B's own verification snippets (JS, Python, Go) use
  the *standard* base64 alphabet (`base64.StdEncoding`, `b64encode`) and
  strip the padding, so that is what `e2b_ok` checks; `e2b_urlsafe_ok`
  records whether the header is instead the base64url form, for diagnosis.
* Standard Webhooks (standardwebhooks.com): `webhook-signature` is a
  space-separated list of `v1,<base64 HMAC-SHA256>` over
  `{webhook-id}.{webhook-timestamp}.{body}`; the key is the base64 decoding
  of what follows `whsec_`, else the secret's raw UTF-8 bytes.

It can be told to answer a status for the next N requests or until a time
(optionally with Retry-After), or to sleep before answering.

In-process:   r = Receiver(secret); r.start(); ... r.url ... r.stop()
As a process: python3 webhook_receiver.py --port P --log FILE [--secret S]
              (one JSON line per request)
"""
import argparse
import base64
import hashlib
import hmac
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def e2b_signature(secret: str, body: bytes, urlsafe=False) -> str:
    digest = hashlib.sha256(secret.encode() + body).digest()
    enc = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    return enc(digest).decode().rstrip("=")


def standard_key(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        return base64.b64decode(secret[len("whsec_"):])
    return secret.encode()


def standard_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    mac = hmac.new(standard_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify_e2b(secret, headers, body, urlsafe=False):
    got = headers.get("e2b-signature")
    return got is not None and hmac.compare_digest(got, e2b_signature(secret, body, urlsafe))


def verify_standard(secret, headers, body):
    msg_id, ts, sigs = (headers.get("webhook-id"), headers.get("webhook-timestamp"),
                        headers.get("webhook-signature"))
    if not (msg_id and ts and sigs):
        return False
    want = standard_signature(secret, msg_id, ts, body)
    return any(hmac.compare_digest(s, want) for s in sigs.split(" ") if s.startswith("v1,"))


class Request:
    """One request as received. headers: lower-cased names."""

    def __init__(self, method, path, headers, body, received):
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.received = received      # time.time() when the body was read
        self.answered = None          # time.time() when the answer was sent
        self.at = time.monotonic()    # the same two on the monotonic clock,
        self.done_at = None           # for intervals
        self.status = None            # what we answered
        self.e2b_ok = False
        self.e2b_urlsafe_ok = False
        self.standard_ok = False

    @property
    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def event_id(self):
        j = self.json
        return j.get("id") if isinstance(j, dict) else None

    def as_dict(self):
        return {"method": self.method, "path": self.path, "headers": self.headers,
                "body": self.body.decode(errors="replace"), "received": self.received,
                "answered": self.answered, "status": self.status, "e2b_ok": self.e2b_ok,
                "e2b_urlsafe_ok": self.e2b_urlsafe_ok, "standard_ok": self.standard_ok}

    def __repr__(self):
        return (f"<{self.method} {self.path} event={self.event_id} "
                f"webhook-id={self.headers.get('webhook-id')} at={self.at:.3f} "
                f"answered={self.status} at={self.done_at or 0:.3f}>")


class Receiver:
    def __init__(self, secret="", port=0, log=None):
        self.secret = secret
        self.requests = []
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.log = log
        self._fail_status = None
        self._fail_count = 0
        self._fail_until = 0.0
        self._retry_after = None
        self._delay = 0.0
        self._delay_count = None
        self._stopping = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                receiver._handle(self)

            do_PUT = do_GET = do_PATCH = do_DELETE = do_POST

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/hook"

    # -- control --------------------------------------------------------------

    def start(self):
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self._stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def fail(self, status=500, count=None, until=None, seconds=None, retry_after=None):
        """Answer `status` for the next `count` requests, or until the time
        `until` (or for `seconds` from now); Retry-After if given."""
        with self.lock:
            self._fail_status = status
            self._fail_count = count or 0
            self._fail_until = until if until is not None else (
                time.time() + seconds if seconds is not None else 0.0)
            self._retry_after = retry_after

    def healthy(self):
        """Answer 200 at once from now on."""
        with self.lock:
            self._fail_status = None
            self._fail_count = 0
            self._fail_until = 0.0
            self._retry_after = None
            self._delay = 0.0
            self._delay_count = None

    def delay(self, seconds, count=None):
        """Sleep this long before answering each request (only the next
        `count` requests if given)."""
        with self.lock:
            self._delay = seconds
            self._delay_count = count

    # -- queries --------------------------------------------------------------

    def snapshot(self, sandboxes=None):
        """Requests so far, optionally only those about these sandbox ids."""
        with self.lock:
            out = list(self.requests)
        if sandboxes is not None:
            out = [r for r in out if (r.json or {}).get("sandboxId") in sandboxes]
        return out

    def wait_for(self, predicate, timeout):
        """Waits until predicate(list of requests) is true; returns it (or the
        last falsy value at the deadline)."""
        deadline = time.time() + timeout
        with self.lock:
            while True:
                result = predicate(list(self.requests))
                left = deadline - time.time()
                if result or left <= 0:
                    return result
                self.changed.wait(min(left, 0.2))

    def wait_events(self, event_ids, timeout, answered_ok=True):
        """Waits until each event id was received (and, by default, answered
        2xx by us). True if all arrived."""
        want = set(event_ids)

        def done(reqs):
            got = {r.event_id for r in reqs
                   if not answered_ok or (r.status is not None and 200 <= r.status < 300)}
            return want <= got
        return bool(self.wait_for(done, timeout))

    # -- serving --------------------------------------------------------------

    def _read_body(self, h):
        if "chunked" in (h.headers.get("Transfer-Encoding") or "").lower():
            body = b""
            while True:
                line = h.rfile.readline()
                n = int(line.split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return body
                body += h.rfile.read(n)
                h.rfile.readline()
        n = int(h.headers.get("Content-Length") or 0)
        return h.rfile.read(n) if n else b""

    def _handle(self, h):
        body = self._read_body(h)
        headers = {k.lower(): v for k, v in h.headers.items()}
        req = Request(h.command, h.path, headers, body, time.time())
        req.e2b_ok = verify_e2b(self.secret, headers, body)
        req.e2b_urlsafe_ok = verify_e2b(self.secret, headers, body, urlsafe=True)
        req.standard_ok = verify_standard(self.secret, headers, body)
        with self.lock:
            self.requests.append(req)
            delay = self._delay
            if self._delay_count is not None:
                if self._delay_count > 0:
                    self._delay_count -= 1
                else:
                    delay = 0.0
            now = time.time()
            status, retry_after = 200, None
            if self._fail_status is not None:
                if self._fail_count > 0:
                    self._fail_count -= 1
                    status, retry_after = self._fail_status, self._retry_after
                elif now < self._fail_until:
                    status, retry_after = self._fail_status, self._retry_after
            self.changed.notify_all()
        if delay:
            self._stopping.wait(delay)
        payload = b'{"ok":true}' if status < 300 else b'{"error":"told to fail"}'
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(payload)))
            if retry_after is not None:
                h.send_header("Retry-After", str(retry_after))
            h.end_headers()
            h.wfile.write(payload)
            h.wfile.flush()
        except OSError:
            pass  # the sender gave up (its timeout) before we answered
        with self.lock:
            req.answered = time.time()
            req.done_at = time.monotonic()
            req.status = status
            self.changed.notify_all()
        if self.log:
            with self.lock, open(self.log, "a") as f:
                f.write(json.dumps(req.as_dict()) + "\n")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--log", required=True, help="one JSON line per request")
    p.add_argument("--secret", default="", help="to check signatures")
    p.add_argument("--fail-status", type=int)
    p.add_argument("--fail-seconds", type=float)
    p.add_argument("--fail-count", type=int)
    p.add_argument("--retry-after", type=int)
    p.add_argument("--delay", type=float, default=0.0)
    a = p.parse_args(argv)
    r = Receiver(a.secret, port=a.port, log=a.log)
    if a.fail_status:
        r.fail(a.fail_status, count=a.fail_count, seconds=a.fail_seconds, retry_after=a.retry_after)
    r.delay(a.delay)
    print(r.port, flush=True)
    try:
        r.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
