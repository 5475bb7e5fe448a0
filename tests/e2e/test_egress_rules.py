"""network.rules with secrets (E2B's `${e2b.secrets.<name>}` placeholders):
the egress proxy sets a rule's headers on the sandbox's HTTPS requests to the
rule's host, resolving secrets on the host, so their values never enter the
sandbox.

The "internet" is made here: two network namespaces linked to the host, on
addresses outside the sandbox pool (198.18.0.0/15), each serving HTTPS with
tests/e2e/fixtures/https_echo.py (it answers with the headers it got):
  - good: api.sbxtest.example and other.sbxtest.example, certificates from a
    CA this test makes, which the server trusts (--egress-trust-file) and
    the sandboxes do not;
  - evil: a self-signed certificate for api.sbxtest.example (an attacker's
    server the sandbox points the name at).
Every namespace, file and sandbox made here is removed at the end.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

from harness import Server, ServerTest, main
from test_network import GATEWAY, Internet, run, veth_of, nft_table

API = "api.sbxtest.example"
OTHER = "other.sbxtest.example"
VALUE = "sk-egress-canary-4b1d9e0c7a"
HERE = os.path.dirname(os.path.abspath(__file__))

pki = None
good = evil = None


def openssl(*args):
    run("openssl", *args)


def make_pki(d):
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem", "-days", "2",
            "-subj", "/CN=sbxtest upstream CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign")
    for name in (API, OTHER):
        openssl("req", "-new", *ec, "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.csr",
                "-subj", f"/CN={name}")
        with open(f"{d}/{name}.ext", "w") as f:
            f.write(f"subjectAltName=DNS:{name}\nbasicConstraints=CA:FALSE\n"
                    "extendedKeyUsage=serverAuth\n")
        openssl("x509", "-req", "-in", f"{d}/{name}.csr", "-CA", f"{d}/ca.pem", "-CAkey",
                f"{d}/ca.key", "-CAcreateserial", "-out", f"{d}/{name}.pem", "-days", "2",
                "-extfile", f"{d}/{name}.ext")
    openssl("req", "-x509", *ec, "-keyout", f"{d}/evil.key", "-out", f"{d}/evil.pem", "-days",
            "2", "-subj", f"/CN={API}", "-addext", f"subjectAltName=DNS:{API}")


class HttpsNet(Internet):
    """An Internet namespace whose server is https_echo.py on port 443."""

    def __init__(self, pairs):
        super().__init__()
        self.pairs = pairs
        self.log = os.path.join(self.dir, "requests.log")

    def start(self):
        self.link()
        open(self.log, "w").close()
        self.web = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, sys.executable,
             os.path.join(HERE, "fixtures", "https_echo.py"), self.addr, self.log] + self.pairs,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        ready = self.web.stdout.readline().strip()
        self.web.stdout.close()
        if ready != "ready":
            raise AssertionError("https_echo did not start")

    def requests(self):
        with open(self.log) as f:
            return [json.loads(line) for line in f if line.strip()]


def setUpModule():
    global pki, good, evil
    if os.geteuid() != 0:
        raise unittest.SkipTest("needs root")
    for tool in ("nft", "ip", "openssl"):
        if shutil.which(tool) is None:
            raise unittest.SkipTest(f"{tool} is not installed")
    unittest.addModuleCleanup(cleanup_module)
    pki = tempfile.mkdtemp(prefix="sbxtest-pki-")
    make_pki(pki)
    good = HttpsNet([f"{n}={pki}/{n}.pem:{pki}/{n}.key" for n in (API, OTHER)])
    good.start()
    evil = HttpsNet([f"{API}={pki}/evil.pem:{pki}/evil.key"])
    evil.start()
    EgressTest.server_args = ("--egress-trust-file", f"{pki}/ca.pem")


def cleanup_module():
    for net in (good, evil):
        if net:
            net.stop()
    if pki:
        shutil.rmtree(pki, ignore_errors=True)


def rules(value="Bearer ${e2b.secrets.api-key}", host=API):
    return {"rules": {host: [{"transform": {"headers": {"Authorization": value,
                                                        "X-Egress": "sandboxd"}}}]}}


class EgressTest(ServerTest):
    server_args = ()

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        r = cls.server.request("POST", "/secrets", {"name": "api-key", "value": VALUE})
        assert r.status == 201, r

    def create(self, network, key="default"):
        r = self.server.request("POST", "/sandboxes", {"templateID": "base", "network": network},
                                key=key)
        self.assertStatus(r, 201)
        sid = r.json["sandboxID"]
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{sid}", key=key)
        return sid

    def curl(self, sid, name, addr, *extra, path="/echo"):
        r = self.server.run(sid, "curl", "-sS", "-m", "10", "--resolve", f"{name}:443:{addr}",
                            *extra, f"https://{name}{path}", timeout=60)
        self.assertStatus(r, 200)
        return r.json

    def gateway(self, sid):
        """The sandbox's default gateway: its veth's host side."""
        return self.server.run(sid, "python3", "-c", GATEWAY).json["stdout"].strip()

    def headers_of(self, out):
        self.assertEqual(out["exitCode"], 0, out)
        return {k.lower(): v for k, v in json.loads(out["stdout"])["headers"]}

    def test_a_rule_sets_its_headers_with_the_secret_on_the_host(self):
        sid = self.create(rules())
        # curl inside verifies the proxy's certificate with the sandbox's own
        # trust store (the install's egress CA was added at boot).
        h = self.headers_of(self.curl(sid, API, good.addr, "-H", "Authorization: Bearer mine",
                                      "-H", "Connection: keep-alive"))
        self.assertEqual(h["authorization"], f"Bearer {VALUE}", "the rule replaces the header")
        self.assertEqual(h["x-egress"], "sandboxd")
        self.assertEqual(h["connection"], "close")
        # Python's TLS (default verify paths) trusts it too, and a POST body passes.
        out = self.server.run(sid, "python3", "-c", (
            "import socket,ssl,sys;"
            "c=ssl.create_default_context();"
            f"s=c.wrap_socket(socket.create_connection(('{good.addr}',443),timeout=10),"
            f"server_hostname='{API}');"
            f"s.sendall(b'POST /p HTTP/1.1\\r\\nHost: {API}\\r\\nContent-Length: 5\\r\\n\\r\\nhello');"
            "d=b''\n"
            "while True:\n"
            " b=s.recv(65536)\n"
            " if not b: break\n"
            " d+=b\n"
            "print(d.decode())"), timeout=60)
        self.assertStatus(out, 200)
        self.assertEqual(out.json["exitCode"], 0, out.json)
        echoed = json.loads(out.json["stdout"].split("\r\n\r\n", 1)[1])
        self.assertEqual(echoed["body"], "hello")
        self.assertIn(["Authorization", f"Bearer {VALUE}"], echoed["headers"])
        # The value is nowhere inside: not in the environment, not in a file.
        env = self.server.sh(sid, "cat /proc/1/environ /proc/self/environ | tr '\\0' '\\n'; "
                                  f"grep -rl {VALUE} /etc /home /tmp /root 2>/dev/null; true")
        self.assertNotIn(VALUE, env["stdout"])
        # Sandbox info shows the rule with its placeholder, never the value.
        info = self.server.request("GET", f"/sandboxes/{sid}")
        self.assertIn("${e2b.secrets.api-key}", info.raw.decode())
        self.assertNotIn(VALUE, info.raw.decode())
        self.assertNotIn(VALUE, self.server.log())

    def test_other_names_pass_through_untouched(self):
        sid = self.create(rules())
        with open(f"{pki}/ca.pem", "rb") as f:
            ca = f.read()
        self.assertStatus(self.server.write(sid, "/tmp/upstream-ca.pem", ca), 200)
        # The real certificate reaches the sandbox (verified with the upstream's
        # CA, which only the test gave it), and no header is added.
        h = self.headers_of(self.curl(sid, OTHER, good.addr, "--cacert", "/tmp/upstream-ca.pem"))
        self.assertNotIn("authorization", h)
        self.assertNotIn("x-egress", h)

    def test_an_impostor_gets_no_secret(self):
        # The sandbox points the rule's name at a server that cannot prove it.
        sid = self.create(rules())
        before = len(evil.requests())
        out = self.curl(sid, API, evil.addr, "-i")
        self.assertEqual(out["exitCode"], 0, out)
        self.assertIn("502", out["stdout"].splitlines()[0])
        self.assertIn("did not prove its name", out["stdout"])
        self.assertEqual(len(evil.requests()), before, "the impostor got a request")
        self.assertNotIn(VALUE, out["stdout"])

    def test_rules_do_not_open_what_the_policy_closes(self):
        sid = self.create({**rules(), "denyOut": [f"{good.addr}/32"]})
        before = len(good.requests())
        out = self.curl(sid, API, good.addr)
        self.assertNotEqual(out["exitCode"], 0, out)
        self.assertEqual(len(good.requests()), before)

    def test_the_proxy_is_not_reachable_directly(self):
        sid = self.create(rules())
        # The gateway is the veth's host side, where the proxy listens.
        gw = self.gateway(sid)
        self.assertTrue(gw)
        out = self.server.run(sid, "curl", "-sk", "-m", "3", f"https://{gw}/", timeout=30).json
        self.assertNotEqual(out["exitCode"], 0, out)

    def test_secret_changes_apply_per_request_and_a_deleted_one_fails_closed(self):
        r = self.server.request("POST", "/secrets", {"name": "rotating", "value": "v1-abc"})
        self.assertStatus(r, 201)
        sec = r.json["secretID"]
        self.addCleanup(self.server.request, "DELETE", f"/secrets/{sec}")
        sid = self.create(rules("${e2b.secrets.rotating}"))
        self.assertEqual(self.headers_of(self.curl(sid, API, good.addr))["authorization"], "v1-abc")
        self.assertStatus(self.server.request("POST", f"/secrets/{sec}", {"value": "v2-def"}), 200)
        self.assertEqual(self.headers_of(self.curl(sid, API, good.addr))["authorization"], "v2-def")
        self.assertStatus(self.server.request("DELETE", f"/secrets/{sec}"), 204)
        before = len(good.requests())
        out = self.curl(sid, API, good.addr, "-i")
        self.assertIn("502", out["stdout"].splitlines()[0])
        self.assertIn("'rotating' does not exist", out["stdout"])
        self.assertEqual(len(good.requests()), before)

    def test_live_updates_add_and_remove_rules(self):
        sid = self.create({})
        with open(f"{pki}/ca.pem", "rb") as f:
            ca = f.read()
        self.assertStatus(self.server.write(sid, "/tmp/upstream-ca.pem", ca), 200)
        h = self.headers_of(self.curl(sid, API, good.addr, "--cacert", "/tmp/upstream-ca.pem"))
        self.assertNotIn("x-egress", h)
        self.assertStatus(self.server.request("PUT", f"/sandboxes/{sid}/network", rules()), 204)
        self.assertIn(f'"{veth_of(sid)}"', nft_table().split("set intercept")[1].split("}")[0])
        h = self.headers_of(self.curl(sid, API, good.addr))
        self.assertEqual(h["x-egress"], "sandboxd")
        self.assertStatus(self.server.request("PUT", f"/sandboxes/{sid}/network", {}), 204)
        h = self.headers_of(self.curl(sid, API, good.addr, "--cacert", "/tmp/upstream-ca.pem"))
        self.assertNotIn("x-egress", h)

    def test_rules_survive_a_restart(self):
        sid = self.create(rules())
        # A connection held open through the proxy does not hold up the stop.
        self.server.sh(sid, (
            "nohup python3 -c \"import socket,time\n"
            f"s=socket.create_connection(('{good.addr}',443))\n"
            "time.sleep(120)\" >/dev/null 2>&1 &"))
        time.sleep(0.5)
        started = time.time()
        self.server.stop()  # sandboxes keep running across a restart
        self.assertLess(time.time() - started, 5)
        self.server.start()
        h = self.headers_of(self.curl(sid, API, good.addr))
        self.assertEqual(h["authorization"], f"Bearer {VALUE}")

    def test_a_sandbox_hogging_the_proxy_does_not_starve_another(self):
        hog = self.create(rules())
        other = self.create(rules())
        # 40 connections that never send a byte, held open while the other works.
        self.server.run(hog, "sh", "-c", (
            "nohup python3 -c \"import socket,time\n"
            "ss=[]\n"
            "for i in range(40):\n"
            "  s=socket.socket(); s.settimeout(5)\n"
            "  try: s.connect(('%s',443)); ss.append(s)\n"
            "  except OSError: pass\n"
            "time.sleep(60)\" >/dev/null 2>&1 &" % good.addr))
        time.sleep(1)
        started = time.time()
        h = self.headers_of(self.curl(other, API, good.addr))
        self.assertEqual(h["authorization"], f"Bearer {VALUE}")
        self.assertLess(time.time() - started, 5)

    def test_a_crafted_server_name_gets_no_certificate(self):
        # A wildcard rule makes the proxy mint certificates for names under
        # it: a name that would smuggle another subjectAltName is refused.
        sid = self.create(rules(host="*.sbxtest.example"))
        out = self.server.run(sid, "sh", "-c", (
            f"echo | openssl s_client -connect {good.addr}:443 "
            "-servername 'evil.example,DNS:a.sbxtest.example' 2>&1 | head -40"), timeout=60).json
        self.assertNotIn("BEGIN CERTIFICATE", out["stdout"])
        self.assertNotIn("sandboxd egress CA", out["stdout"])
        # A well-formed name under it does get one, from the install's CA.
        out = self.server.run(sid, "sh", "-c", (
            f"echo | openssl s_client -connect {good.addr}:443 "
            "-servername 'b.sbxtest.example' 2>&1 | head -40"), timeout=60).json
        self.assertIn("issuer=O = sandboxd, CN = sandboxd egress CA", out["stdout"])

    def test_killing_the_sandbox_closes_its_listener(self):
        sid = self.create(rules())
        gw = self.gateway(sid)
        listening = lambda: f"{gw}:443" in run("ss", "-ltnH").stdout
        self.assertTrue(listening())
        self.assertStatus(self.server.request("DELETE", f"/sandboxes/{sid}"), 204)
        deadline = time.time() + 5
        while listening() and time.time() < deadline:
            time.sleep(0.05)
        self.assertFalse(listening())
        self.assertNotIn(f'"{veth_of(sid)}"', nft_table())

    def test_bad_rules_are_refused(self):
        for network, words in [
                (rules("${e2b.secrets.nope}"), "secret 'nope' does not exist"),
                (rules("${e2b.identity.tokens.aws}"), "workload identity"),
                (rules(host="10.0.0.1"), "DNS name"),
                (rules(host="*"), "DNS name"),
                ({"rules": {API: [{"transform": {"headers": {"Host": "x"}}}]}}, "Host"),
                ({"rules": {API: {"transform": {}}}}, "array"),
                ({"rules": []}, "object"),
                ({"egressProxy": {"address": "p.example.com:1080"}}, "egressProxy")]:
            r = self.server.request("POST", "/sandboxes", {"templateID": "base",
                                                           "network": network})
            self.assertError(r, 400, words)
        # Another org's secret is not this org's.
        other = self.server.new_key("egress-other-org")
        r = self.server.request("POST", "/sandboxes", {"templateID": "base", "network": rules()},
                                key=other)
        self.assertError(r, 400, "secret 'api-key' does not exist")


if __name__ == "__main__":
    main()
