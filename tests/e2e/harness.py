"""End-to-end harness: starts the real sandboxd on free loopback ports with a
data dir of its own, talks to it over HTTP, and on teardown removes every
container, mount and file it made (and nothing else), even when a test fails.
"""
import base64
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

BIN = os.environ.get("SANDBOXD_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "sandboxd")
OCI = "crun"


def eventually(check, within=5.0, every=0.02):
    """True once check() is, False if it is still not after `within` s. A
    kill answers once the sandbox's processes are gone; what they leave
    (cgroups, mounts, veth, files) is removed just after."""
    deadline = time.time() + within
    while True:
        if check():
            return True
        if time.time() > deadline:
            return False
        time.sleep(every)


def log_tail(path, chars):
    """The last `chars` characters of a process's log ("" before it has one)."""
    try:
        with open(path, errors="replace") as f:
            return f.read()[-chars:]
    except OSError:
        return ""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Response:
    def __init__(self, status, body, headers):
        self.status = status
        self.raw = body
        self.headers = headers

    @property
    def json(self):
        return json.loads(self.raw) if self.raw else None

    def __repr__(self):
        return f"<{self.status} {self.raw[:300]!r}>"


class Server:
    """One sandboxd process with its own data dir and ports."""

    def __init__(self, extra_args=(), tls=None):
        # tls: an ssl.SSLContext that trusts the server's certificate (the
        # server then runs with --tls-cert/--tls-key among extra_args).
        self.tls = tls
        self.dir = tempfile.mkdtemp(prefix="sandboxd-e2e-")
        self.port = free_port()
        self.envd_port = free_port()
        self.extra_args = list(extra_args)
        self.proc = None
        self.log_path = os.path.join(self.dir, "server.log")
        try:
            for attempt in range(3):
                try:
                    self.start()
                    break
                except RuntimeError as e:
                    # Another process took a port between free_port() and
                    # the bind: pick new ones (a first start only).
                    if "cannot listen on" not in str(e) or attempt == 2:
                        raise
                    self.port, self.envd_port = free_port(), free_port()
        except BaseException:
            self.cleanup()  # a server that never came up leaves nothing either
            raise
        with open(os.path.join(self.dir, "api-key")) as f:
            self.key = f.read().strip()

    def start_async(self):
        """Starts the process without waiting for it to serve."""
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [BIN, "serve", "--data-dir", self.dir,
                 "--api-listen", f"127.0.0.1:{self.port}",
                 "--envd-listen", f"127.0.0.1:{self.envd_port}"] + self.extra_args,
                stdout=log, stderr=log, stdin=subprocess.DEVNULL)

    def start(self):
        self.start_async()
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("sandboxd exited:\n" + self.log())
            try:
                if self.request("GET", "/health", key=None).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("sandboxd did not start:\n" + self.log())

    def log(self):
        return log_tail(self.log_path, 5000)

    def crash(self):
        """kill -9: no chance to clean up."""
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def request(self, method, path, body=None, key="default", headers=None,
                raw=None, timeout=120):
        conn = self.connection(self.port, timeout)
        hdrs = dict(headers or {})
        if key == "default":
            key = self.key
        if key is not None:
            hdrs["X-API-Key"] = key
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        out = Response(r.status, r.read(), dict(r.getheaders()))
        conn.close()
        return out

    def connection(self, port, timeout=120):
        """An HTTP(S) connection to one of its listeners."""
        if self.tls is not None:
            return http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=self.tls)
        return http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    # -- conveniences ---------------------------------------------------------

    def create(self, template="base", key="default", **fields):
        r = self.request("POST", "/sandboxes", {"templateID": template, **fields}, key=key)
        if r.status != 201:
            raise AssertionError(f"create failed: {r}")
        return r.json["sandboxID"]

    def run(self, sid, cmd, *args, key="default", **fields):
        return self.request("POST", f"/sandboxes/{sid}/processes",
                            {"cmd": cmd, "args": list(args), **fields}, key=key)

    def sh(self, sid, script, **fields):
        r = self.run(sid, "sh", "-c", script, **fields)
        if r.status != 200:
            raise AssertionError(f"sh {script!r}: {r}")
        return r.json

    def write(self, sid, path, data: bytes, key="default"):
        return self.request("POST", f"/sandboxes/{sid}/filesystem",
                            {"path": path, "content": base64.b64encode(data).decode()},
                            key=key)

    def read(self, sid, path, key="default"):
        from urllib.parse import quote
        return self.request("GET", f"/sandboxes/{sid}/filesystem?path={quote(path)}", key=key)

    def new_key(self, org):
        out = subprocess.run([BIN, "keys", "create", "--data-dir", self.dir, "--org", org],
                             capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            raise AssertionError(out.stderr)
        return out.stdout.strip()

    def events(self, sid, **query):
        from urllib.parse import urlencode
        q = urlencode({"orderAsc": "true", "limit": 100, **query})
        return self.request("GET", f"/events/sandboxes/{sid}?{q}").json

    # -- cleanup --------------------------------------------------------------

    def cleanup(self):
        """Kills this server's sandboxes, stops it, removes its containers,
        mounts and data dir. Touches nothing it did not make."""
        if self.proc and self.proc.poll() is None:
            try:
                for key in [self.key]:
                    r = self.request("GET", "/sandboxes?status=running,paused", key=key, timeout=10)
                    for s in (r.json or []):
                        self.request("DELETE", f"/sandboxes/{s['sandboxID']}", key=key, timeout=30)
            except Exception:
                pass
        self.stop()
        runtime = list(self.extra_args[self.extra_args.index("--oci-runtime"):][:2]) \
            if "--oci-runtime" in self.extra_args else []
        remove_data_dir(self.dir, runtime)


def remove_data_dir(data_dir, runtime=(), wrap=()):
    """Removes what a stopped server or worker left in `data_dir`: its
    sandboxes the way a kill takes them (container, network, mounts, cgroup,
    files), then the dir. `wrap` runs the cleanup inside another namespace
    (a worker's network namespace: its sandboxes' network is there)."""
    try:
        subprocess.run([*wrap, BIN, "cleanup", "--data-dir", data_dir, *runtime],
                       capture_output=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        pass  # the fallback below still removes containers and mounts
    # Should that fail, at least no container or mount stays behind.
    state_root = os.path.join(data_dir, "runtime", "state")
    sandboxes = os.path.join(data_dir, "sandboxes")
    ids = set()
    for d in (state_root, sandboxes):
        if os.path.isdir(d):
            ids.update(os.listdir(d))
    for sid in ids:
        subprocess.run([OCI, "--root", state_root, "delete", "--force", sid],
                       capture_output=True)
        # The merged root, its idmapped layers, then the disk under them.
        lowers = os.path.join(sandboxes, sid, "lower")
        layers = [os.path.join("lower", n) for n in
                  (os.listdir(lowers) if os.path.isdir(lowers) else [])]
        for mnt in ["rootfs", *layers, "disk-mapped", "disk"]:
            path = os.path.join(sandboxes, sid, mnt)
            if os.path.ismount(path):
                subprocess.run(["umount", "-l", path], capture_output=True)
        # The merged root's mount point lives under /run (rootfs links there).
        link = os.path.join(sandboxes, sid, "rootfs")
        if os.path.islink(link):
            root = os.path.realpath(link)
            for d in (root, os.path.dirname(root)):
                try:
                    os.rmdir(d)
                except OSError:
                    pass
    volumes = os.path.join(data_dir, "volumes")
    for vid in (os.listdir(volumes) if os.path.isdir(volumes) else []):
        path = os.path.join(volumes, vid, "disk")
        if os.path.ismount(path):
            subprocess.run(["umount", "-l", path], capture_output=True)
    shutil.rmtree(data_dir, ignore_errors=True)
    # This data dir's directory of roots under /run: empty by now, but for
    # the empty directory of a root unmounted a moment ago.
    digest = hashlib.sha256(os.path.abspath(data_dir).encode()).hexdigest()[:12]
    # A control node's tunnel sockets (serve --cluster-listen).
    shutil.rmtree(os.path.join("/run/sandboxd", "tunnels-" + digest), ignore_errors=True)
    roots = os.path.join("/run/sandboxd/roots", digest)
    for _ in range(20):
        if not os.path.isdir(roots):
            break
        for sid in os.listdir(roots):
            for d in (os.path.join(roots, sid, "rootfs"), os.path.join(roots, sid)):
                try:
                    os.rmdir(d)  # only ever an empty one: never a mounted root
                except OSError:
                    pass
        try:
            os.rmdir(roots)
        except OSError:
            time.sleep(0.1)


class ServerTest(unittest.TestCase):
    """One server per test class, cleaned up whatever happens."""
    server_args = ()

    @classmethod
    def setUpClass(cls):
        cls.server = Server(cls.server_args)
        cls.addClassCleanup(cls.server.cleanup)

    def assertStatus(self, resp, status):
        self.assertEqual(resp.status, status, f"{resp}\n--- server log ---\n{self.server.log()[-2000:]}")

    def assertError(self, resp, status, message=None):
        self.assertStatus(resp, status)
        body = resp.json
        self.assertEqual(body["code"], status)
        self.assertIsInstance(body["message"], str)
        if message is not None:
            self.assertIn(message, body["message"])


def main():
    unittest.main(verbosity=2)


class Envd:
    """A raw envd client speaking the Connect protocol (JSON) like the SDKs."""

    def __init__(self, server, sandbox):
        self.server = server
        self.sid = sandbox["sandboxID"]
        self.token = sandbox["envdAccessToken"]

    def headers(self, user="user", token="default", extra=None):
        h = {"E2b-Sandbox-Id": self.sid, "E2b-Sandbox-Port": "49983",
             "Authorization": "Basic " + base64.b64encode(f"{user}:".encode()).decode()}
        if token == "default":
            token = self.token
        if token is not None:
            h["X-Access-Token"] = token
        h.update(extra or {})
        return h

    def conn(self, timeout=120):
        return self.server.connection(self.server.envd_port, timeout)

    def unary(self, method, body, user="user", token="default"):
        c = self.conn()
        c.request("POST", "/" + method, body=json.dumps(body).encode(),
                  headers=self.headers(user, token, {"Content-Type": "application/json",
                                                     "Connect-Protocol-Version": "1"}))
        r = c.getresponse()
        out = Response(r.status, r.read(), dict(r.getheaders()))
        c.close()
        return out

    def stream(self, method, body, user="user", extra=None, timeout=120):
        """Yields (flags, message) for every envelope. Closing the generator
        (gen.close()) hangs up mid-stream, as a client that goes away."""
        import struct
        msg = json.dumps(body).encode()
        c = self.conn(timeout)
        try:
            hdrs = {"Content-Type": "application/connect+json", "Connect-Protocol-Version": "1"}
            hdrs.update(extra or {})
            c.request("POST", "/" + method, body=b"\x00" + struct.pack(">I", len(msg)) + msg,
                      headers=self.headers(user, extra=hdrs))
            r = c.getresponse()
            if r.status != 200:
                raise AssertionError(f"stream {method}: {r.status} {r.read()!r}")
            while True:
                h = r.read(5)
                if len(h) < 5:
                    raise AssertionError("stream ended without an end-of-stream message")
                n = struct.unpack(">I", h[1:])[0]
                yield h[0], json.loads(r.read(n))
                if h[0] & 2:
                    return
        finally:
            c.close()

    def run(self, cmd, user="user", **fields):
        """Start a command to completion: (stdout, stderr, end event, events)."""
        events = list(self.stream("process.Process/Start",
                                  {"process": {"cmd": "/bin/bash", "args": ["-l", "-c", cmd], **fields}},
                                  user=user))
        out, err, end, _ = self.collect(events)
        return out.decode(), err.decode(), end, events

    @staticmethod
    def collect(envelopes):
        """A process stream's output, gathered as it is read (nothing else is
        kept): (stdout bytes, stderr bytes, end event, last envelope)."""
        out, err, end, last = bytearray(), bytearray(), None, None
        for flags, m in envelopes:
            ev = m.get("event", {})
            if "data" in ev:
                out += base64.b64decode(ev["data"].get("stdout", ""))
                err += base64.b64decode(ev["data"].get("stderr", ""))
            if "end" in ev:
                end = ev["end"]
            last = (flags, m)
        return bytes(out), bytes(err), end, last

    def files_get(self, path, user="user", token="default", query=None):
        from urllib.parse import urlencode
        q = urlencode({"path": path, "username": user, **(query or {})})
        c = self.conn()
        c.request("GET", "/files?" + q, headers=self.headers(user, token))
        r = c.getresponse()
        out = Response(r.status, r.read(), dict(r.getheaders()))
        c.close()
        return out

    def files_post(self, body, content_type, path=None, user="user", token="default",
                   extra=None, query=None):
        from urllib.parse import urlencode
        q = {"username": user, **(query or {})}
        if path is not None:
            q["path"] = path
        c = self.conn()
        c.request("POST", "/files?" + urlencode(q), body=body,
                  headers=self.headers(user, token, {"Content-Type": content_type, **(extra or {})}))
        r = c.getresponse()
        out = Response(r.status, r.read(), dict(r.getheaders()))
        c.close()
        return out


def multipart(files):
    """files: list of (filename, bytes) → (body, content type)."""
    boundary = "----sandboxd" + os.urandom(8).hex()
    parts = []
    for name, data in files:
        parts.append((f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                      f"filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").encode()
                     + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"
