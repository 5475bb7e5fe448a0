"""Webhook delivery against a sandboxd of its own (own data dir, free ports,
crun): (1) events/s while one webhook drains a backlog, (2) p50/p99 event ->
receiver latency at a moderate live rate; checks every event arrives once and
in seq order. Events are pause/resume cycles of a few sandboxes. Standard
library only; prints figures, asserts nothing; removes all it made on exit."""
import argparse, http.client, json, os, shutil, signal, socket, subprocess
import sys, tempfile, threading, time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
TYPES = ["sandbox.lifecycle." + t for t in ("created", "paused", "resumed", "killed", "updated")]

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def ts(rfc3339):  # the payload's and the deliveries API's ms-precision times
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()

def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")

class Server:
    """sandboxd on its own data dir; cleanup() removes only what it made."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="sandboxd-bench-wh-")
        self.port, self.made, self.proc, self.key = free_port(), set(), None, ""

    def start(self, binary, agent):
        args = [binary, "serve", "--data-dir", self.dir, "--api-listen", f"127.0.0.1:{self.port}",
                "--envd-listen", f"127.0.0.1:{free_port()}", "--oci-runtime", "crun",
                "--templates", os.path.join(ROOT, "ops", "templates.json"),
                "--template-cache", "/var/cache/sandboxd/templates", "--agent", agent,
                # The receiver is on loopback, which the default policy refuses.
                "--allow-private-webhooks", "true"]
        log = os.path.join(self.dir, "server.log")
        # Own session: a terminal Ctrl-C reaches only us, so the sandboxes can
        # still be DELETEd through the API before the server is stopped.
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        deadline = time.time() + 60
        while self.proc.poll() is None and time.time() < deadline:
            try:
                if self.call("GET", "/health", ok=False)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        else:
            raise RuntimeError("sandboxd did not start:\n" + open(log).read()[-2000:])
        with open(os.path.join(self.dir, "api-key")) as f:
            self.key = f.read().strip()

    def call(self, method, path, body=None, ok=True, timeout=60):
        """(status, json, headers); raises on a non-2xx unless ok=False."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=None if body is None else json.dumps(body),
                      headers={"X-API-Key": self.key, "Content-Type": "application/json"})
            r = c.getresponse()
            raw = r.read()
        finally:
            c.close()
        js = json.loads(raw) if raw else None
        if ok and r.status // 100 != 2:
            raise RuntimeError(f"{method} {path}: {r.status} {js}")
        return r.status, js, dict(r.getheaders())

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            try:  # everything on this server is ours; the listing catches strays
                self.made |= {s["sandboxID"] for s in self.call(
                    "GET", "/sandboxes?status=running,paused,creating", timeout=10)[1]}
                for sid in self.made:
                    self.call("DELETE", f"/sandboxes/{sid}", ok=False, timeout=30)
            except Exception:
                pass  # crun delete below gets whatever is left
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # As tests/e2e/harness.py: leftover containers in this data dir's crun
        # root only, then any mount under the data dir, then the dir itself.
        state, ids = os.path.join(self.dir, "runtime", "state"), set()
        for d in (state, os.path.join(self.dir, "sandboxes")):
            ids.update(os.listdir(d) if os.path.isdir(d) else [])
        for sid in ids:
            subprocess.run(["crun", "--root", state, "delete", "--force", sid], capture_output=True)
        with open("/proc/self/mountinfo") as f:
            mounts = [l.split()[4] for l in f if l.split()[4].startswith(self.dir + "/")]
        for m in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)

class Receiver:
    """Answers 200, records (arrival time, body). While `gate` is closed it
    holds each request up to 8 s (under sandboxd's 10 s attempt timeout, so no
    retry): the webhook's actor, one POST at a time, stops draining."""

    def __init__(self):
        self.got, self.lock, self.gate = [], threading.Lock(), threading.Event()
        rec = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                now = time.time()
                with rec.lock:
                    rec.got.append((now, json.loads(body)))
                rec.gate.wait(8)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def snapshot(self):
        with self.lock:
            return list(self.got)

    def wait_all(self, ids, idle=30):
        """Until every id arrived, or nothing new for `idle` s; returns the missing."""
        last_n, last_t = -1, time.time()
        while True:
            seen = {b["id"] for _, b in self.snapshot()}
            if ids <= seen or time.time() - last_t > idle:
                return ids - seen
            if len(seen) != last_n:
                last_n, last_t = len(seen), time.time()
            time.sleep(0.05)

def cycle(srv, sid, paused):
    """One lifecycle event: pause a running sandbox or resume a paused one."""
    srv.call("POST", f"/sandboxes/{sid}/{'resume' if paused else 'pause'}",
             {"timeout": 3600} if paused else None)

def burst(srv, sids, n):
    """n events (rounded up to even per sandbox) as fast as the server takes
    them, one thread per sandbox; every sandbox is left running."""
    errors = []

    def work(sid):
        try:
            for i in range(-(-n // len(sids) // 2) * 2):
                cycle(srv, sid, i % 2 == 1)
        except Exception as e:
            errors.append(e)
    threads = [threading.Thread(target=work, args=(s,), daemon=True) for s in sids]
    [t.start() for t in threads]
    [t.join() for t in threads]
    if errors:
        raise errors[0]

def events_after(srv, seq):
    """Every event of the org after `seq`, ascending (all of them are ours)."""
    out, cur = [], format(seq, "x")
    while cur:
        _, js, hdrs = srv.call("GET", f"/events/sandboxes?orderAsc=true&limit=100&cursor={cur}")
        out += js
        cur = js and (hdrs.get("X-Next-Token") or hdrs.get("x-next-token"))
    return out

def first_attempts(srv, wid):
    """event id -> its first attempt {timestamp (start), durationMs (curl)}."""
    out, cur = {}, ""
    while cur is not None:
        _, js, _ = srv.call("GET", f"/events/webhooks/{wid}/deliveries?limit=100&cursor={cur}")
        out.update({d["eventId"]: min(d["attempts"], key=lambda a: a["timestamp"]) for d in js["data"]})
        cur = js.get("nextCursor")
    return out

def check(name, want, arrivals):
    """want: the events API's events; arrivals: [(t, body)] in arrival order."""
    seq_of = {b["id"]: b["seq"] for _, b in arrivals}
    seqs = [seq_of[i] for i in dict.fromkeys(b["id"] for _, b in arrivals)]  # first arrivals
    seen = set(seq_of)
    print(f"  {name}: {len(want)} events in the log, {len(seen)} distinct received, missing "
          f"{len({e['id'] for e in want} - seen)}, duplicates {len(arrivals) - len(seen)}, "
          f"out of seq order {sum(1 for x, y in zip(seqs, seqs[1:]) if y <= x)}")

def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sandboxes", type=int, default=4)
    p.add_argument("--backlog", type=int, default=2000, help="events queued before the drain")
    p.add_argument("--live", type=int, default=400, help="events in the live phase")
    p.add_argument("--rate", type=float, default=20.0, help="live events per second")
    a = p.parse_args()
    binary = os.environ.get("SANDBOXD_BIN") or os.path.join(ROOT, "build", "sandboxd")
    agent = os.environ.get("SANDBOXD_AGENT") or os.path.join(os.path.dirname(binary), "sandboxd-agent")
    for s in (signal.SIGTERM, signal.SIGHUP):  # unwind like Ctrl-C: the finally runs
        signal.signal(s, lambda *_: sys.exit(130))
    srv = None
    try:
        srv = Server()
        srv.start(binary, agent)
        rec = Receiver()
        for _ in range(a.sandboxes):
            srv.made.add(srv.call("POST", "/sandboxes", {"templateID": "base", "timeout": 3600})[1]["sandboxID"])
        sids = sorted(srv.made)
        start = srv.call("GET", "/events/audit/head")[1]["seq"]  # the new webhook's cursor
        wid = srv.call("POST", "/events/webhooks", {"name": "bench", "url": rec.url, "events": TYPES,
                                                    "signatureSecret": "bench-secret"})[1]["id"]
        print(f"sandboxd webhooks bench: {len(sids)} sandboxes (base), {os.cpu_count()} cores, "
              f"data dir {srv.dir}")

        # 1. Backlog: events pile up behind the held request. (Making them with
        # the webhook disabled would not do: a disabled webhook's cursor moves
        # past events, enabling it later does not replay them.)
        t0 = time.time()
        burst(srv, sids, a.backlog)
        gen_s = time.time() - t0
        mid = srv.call("GET", "/events/audit/head")[1]["seq"]
        want1 = events_after(srv, start)
        release = time.time()
        rec.gate.set()
        lost = rec.wait_all({e["id"] for e in want1})
        got1 = rec.snapshot()
        drained = [t for t, _ in got1 if t >= release]
        span = drained[-1] - drained[0] if len(drained) > 1 else float("nan")
        print(f"1. backlog: {len(want1)} events made in {gen_s:.1f} s ({len(want1) / gen_s:.0f}/s) while"
              f" the receiver held each request (<= 8 s); {len(got1) - len(drained)} got through.\n"
              f"   released: {len(drained)} arrived in {span:.2f} s, first to last arrival: "
              f"{(len(drained) - 1) / span:.0f} events/s drained")

        # 2. Live: a paced trickle; latency = arrival - the payload's timestamp.
        t0, k = time.time(), len(sids)
        for i in range(-(-a.live // (2 * k)) * 2 * k):  # whole pause+resume pairs
            time.sleep(max(0.0, t0 + i / a.rate - time.time()))
            cycle(srv, sids[i % k], (i // k) % 2 == 1)
        want2 = events_after(srv, mid)
        lost |= rec.wait_all({e["id"] for e in want2})
        got2 = [(t, b) for t, b in rec.snapshot() if b["seq"] > mid]
        lat = [(t - ts(b["timestamp"])) * 1000 for t, b in got2]
        print(f"2. live: {len(want2)} events at ~{a.rate:g}/s; event timestamp -> receiver arrival "
              f"p50 {pct(lat, 50):.1f} ms, p99 {pct(lat, 99):.1f} ms, max {max(lat):.1f} ms")

        # Where the time goes, from the server's own record of each attempt.
        time.sleep(0.5)  # the delivery record is written after the POST returns
        att = first_attempts(srv, wid)
        known = [(t, b) for t, b in got2 if b["id"] in att]
        d1 = sorted((ts(att[b["id"]]["timestamp"]), att[b["id"]]["durationMs"])
                    for t, b in got1 if t >= release and b["id"] in att)
        gaps = [(y[0] - x[0]) * 1000 for x, y in zip(d1, d1[1:])]
        print(f"   drain, mean per event: {sum(gaps) / len(gaps):.2f} ms from attempt start to the next"
              f", {sum(d for _, d in d1) / len(d1):.2f} ms of it in the POST (curl, a new connection)")
        q = [(ts(att[b["id"]]["timestamp"]) - ts(b["timestamp"])) * 1000 for _, b in known]
        w = [(t - ts(att[b["id"]]["timestamp"])) * 1000 for t, b in known]
        print(f"   live, p50/p99 (ms timestamps): event -> attempt start {pct(q, 50):.0f}/"
              f"{pct(q, 99):.0f} ms, attempt start -> arrival {pct(w, 50):.0f}/{pct(w, 99):.0f} ms")
        print("checks (every event id once, in seq order):")
        check("backlog", want1, [x for x in got1 if x[1]["seq"] <= mid])
        check("live", want2, got2)
        if lost:
            print(f"  WARNING: {len(lost)} events never arrived (30 s without progress)")
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
    finally:
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)  # let the cleanup finish
        if srv:
            srv.cleanup()


if __name__ == "__main__":
    main()
