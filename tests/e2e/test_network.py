"""Sandbox networking against the real server: veth + NAT + nftables.

The "internet" is a stand-in this test makes: a network namespace
(sbxtest-<tag>) linked to the host by a veth, on an address outside the
sandbox pool (198.18.0.0/15, the benchmarking range), serving HTTP with
python3 -m http.server. Only addresses inside namespaces this test creates are
used, and everything made here is removed at the end, even on failure.

Policies (allow_internet_access, network{allowOut, denyOut}, PUT
/sandboxes/:id/network) are driven through the API here; the rule logic in
depth by tests/unit/network_test.cpp against runtime/network directly.
"""
import ipaddress
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

from harness import OCI, Server, ServerTest, eventually, main

made_ids = []  # every sandbox this module creates, for the final check


def run(*argv, check=True):
    out = subprocess.run(list(argv), capture_output=True, text=True, timeout=60)
    if check and out.returncode != 0:
        raise AssertionError(f"{argv}: {out.stdout}{out.stderr}")
    return out


def host_addresses():
    out = run("ip", "-4", "-o", "addr", "show").stdout
    return [ipaddress.ip_interface(line.split()[3]) for line in out.splitlines()]


def veth_of(sid):
    return "sbx" + sid[:12]


def link_exists(name):
    return run("ip", "link", "show", "dev", name, check=False).returncode == 0


def nft_table():
    return run("nft", "list", "table", "inet", "sandboxd", check=False).stdout


class Internet:
    """A netns serving HTTP at `addr`:8080, linked to the host at `host_addr`."""

    def __init__(self):
        self.tag = os.urandom(3).hex()
        self.netns = f"sbxtest-{self.tag}"
        self.veth = f"sbt{self.tag}h"
        used = host_addresses()
        for _ in range(100):
            net = ipaddress.ip_network(f"198.18.{random.randrange(256)}.0/30")
            if not any(i.ip in net or net.overlaps(i.network) for i in used):
                break
        else:
            raise unittest.SkipTest("no free /30 in 198.18.0.0/16")
        self.host_addr = str(net.network_address + 1)
        self.addr = str(net.network_address + 2)
        self.dir = tempfile.mkdtemp(prefix="sbxtest-www-")
        with open(os.path.join(self.dir, "hello.txt"), "w") as f:
            f.write("internet\n")
        self.made_netns = False
        self.web = None

    def start(self):
        self.link()
        self.web = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, sys.executable, "-m", "http.server", "8080",
             "--bind", self.addr, "--directory", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(f"http://{self.addr}:8080/hello.txt")

    def link(self):
        """The namespace and its veth to the host, addressed and up."""
        run("ip", "netns", "add", self.netns)
        self.made_netns = True
        run("ip", "link", "add", self.veth, "type", "veth", "peer", "name", "eth0",
            "netns", self.netns)
        run("ip", "addr", "add", f"{self.host_addr}/30", "dev", self.veth)
        run("ip", "link", "set", self.veth, "up")
        run("ip", "-n", self.netns, "link", "set", "lo", "up")
        run("ip", "-n", self.netns, "addr", "add", f"{self.addr}/30", "dev", "eth0")
        run("ip", "-n", self.netns, "link", "set", "eth0", "up")

    @property
    def url(self):
        return f"http://{self.addr}:8080/hello.txt"

    def stop(self):
        if self.web:
            self.web.kill()
            self.web.wait()
        if self.made_netns:
            run("ip", "link", "del", self.veth, check=False)
            run("ip", "netns", "del", self.netns, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_http(url, timeout=20):
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.read()
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.1)


class Listener:
    """A TCP listener of the test's own on a host address."""

    def __init__(self, addr):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr, 0))
        self.sock.listen(16)
        self.addr, self.port = self.sock.getsockname()

    def close(self):
        self.sock.close()


internet = None


def setUpModule():
    global internet
    if os.geteuid() != 0:
        raise unittest.SkipTest("needs root")
    for tool in ("nft", "ip"):
        if shutil.which(tool) is None:
            raise unittest.SkipTest(f"{tool} is not installed")
    internet = Internet()
    unittest.addModuleCleanup(cleanup_module)
    internet.start()


def cleanup_module():
    # The servers' own cleanup kills their sandboxes (and so their networks);
    # whatever of ours is still there (a crashed server) goes now.
    for sid in made_ids:
        if link_exists(veth_of(sid)):
            run("ip", "link", "del", veth_of(sid), check=False)
        v, c = veth_of(sid), f"sbx_{sid}"
        # Each entry on its own: any of them may be gone already.
        for script in (f'delete element inet sandboxd egress {{ "{v}" }}\n',
                       f'delete element inet sandboxd ifaces {{ "{v}" }}\n',
                       f'add chain inet sandboxd {c}\nflush chain inet sandboxd {c}\n'
                       f'delete chain inet sandboxd {c}\n'):
            subprocess.run(["nft", "-f", "-"], input=script, text=True, capture_output=True)
    if internet:
        internet.stop()


PROBE = """
import socket, sys
s = socket.socket()
s.settimeout(float(sys.argv[3]))
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print("connected")
except OSError as e:
    print("blocked", e)
"""

MY_ADDRESS = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((sys.argv[1], 9))
print(s.getsockname()[0])
"""

GATEWAY = """
for line in open("/proc/net/route").read().splitlines()[1:]:
    f = line.split()
    if f[1] == "00000000":
        g = int(f[2], 16)
        print(".".join(str((g >> s) & 255) for s in (0, 8, 16, 24)))
"""


class NetworkTest(ServerTest):
    def create(self):
        sid = self.server.create()
        made_ids.append(sid)
        return sid

    def py(self, sid, script, *args, timeout=30):
        r = self.server.run(sid, "python3", "-c", script, *map(str, args), timeout=timeout)
        self.assertStatus(r, 200)
        return r.json["stdout"].strip()

    def connects(self, sid, addr, port, timeout=2):
        return self.py(sid, PROBE, addr, port, timeout) == "connected"

    def fetch(self, sid, url):
        r = self.server.run(sid, "curl", "-s", "-m", "5", url)
        self.assertStatus(r, 200)
        return r.json["stdout"]


class DefaultPolicy(NetworkTest):
    def test_a_default_sandbox_reaches_the_internet(self):
        sid = self.create()
        self.assertEqual(self.fetch(sid, internet.url), "internet\n")
        # Its own address comes from the pool; the stand-in has no route to
        # it, so the answer above came through the host's masquerade.
        mine = ipaddress.ip_address(self.py(sid, MY_ADDRESS, internet.addr))
        self.assertIn(mine, ipaddress.ip_network("10.201.0.0/16"))
        gw = self.py(sid, GATEWAY)
        self.assertEqual(ipaddress.ip_address(gw), mine - 1)

    def test_dns_uses_the_hosts_nameservers(self):
        sid = self.create()
        expected = []
        with open("/etc/resolv.conf") as f:
            for line in f:
                w = line.split()
                if len(w) >= 2 and w[0] == "nameserver":
                    try:
                        a = ipaddress.ip_address(w[1])
                    except ValueError:
                        continue
                    if a.version == 4 and not a.is_loopback and str(a) not in expected:
                        expected.append(str(a))
        got = self.server.sh(sid, "grep ^nameserver /etc/resolv.conf | cut -d' ' -f2")["stdout"].split()
        self.assertEqual(got, expected)

    def test_the_host_is_unreachable(self):
        sid = self.create()
        gw = self.py(sid, GATEWAY)
        # Two host addresses: the sandbox's own gateway, and the host side
        # of the stand-in's link, one hop from the reachable stand-in.
        for addr in (gw, internet.host_addr):
            listener = Listener(addr)
            try:
                socket.create_connection((addr, listener.port), timeout=2).close()
                self.assertFalse(self.connects(sid, addr, listener.port),
                                 f"sandbox reached the host at {addr}")
            finally:
                listener.close()
        self.assertTrue(self.connects(sid, internet.addr, 8080))

    def test_sandboxes_cannot_reach_each_other(self):
        a, b = self.create(), self.create()
        b_addr = self.py(b, MY_ADDRESS, internet.addr)
        a_addr = self.py(a, MY_ADDRESS, internet.addr)
        self.assertNotEqual(a_addr, b_addr)
        self.server.sh(b, "nohup python3 -m http.server 8000 >/dev/null 2>&1 &")
        wait_http(f"http://{b_addr}:8000/")  # the host reaches it
        self.assertFalse(self.connects(a, b_addr, 8000))
        # Nor B's gateway (a host address) from A.
        self.assertFalse(self.connects(a, str(ipaddress.ip_address(b_addr) - 1), 8000))

    def test_kill_leaves_no_veth_and_no_rules(self):
        sid = self.create()
        self.assertTrue(link_exists(veth_of(sid)))
        table = nft_table()
        # The default policy is a verdict in the map, with no chain of its own.
        self.assertIn(f'"{veth_of(sid)}" : accept', table)
        self.assertNotIn(f"chain sbx_{sid} ", table)
        self.assertStatus(self.server.request("DELETE", f"/sandboxes/{sid}"), 204)
        self.assertTrue(eventually(lambda: not link_exists(veth_of(sid))))
        # The table names the sandbox by its veth (a prefix of its id): the
        # rules go with the network, just after the link.
        self.assertTrue(eventually(lambda: veth_of(sid) not in nft_table()))
        table = nft_table()
        self.assertNotIn(sid, table)
        self.assertNotIn(veth_of(sid), table)


class Policies(NetworkTest):
    def make(self, **fields):
        r = self.server.request("POST", "/sandboxes", {"templateID": "base", **fields})
        self.assertStatus(r, 201)
        sid = r.json["sandboxID"]
        made_ids.append(sid)
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{sid}")
        return sid

    def reaches(self, sid):
        return self.connects(sid, internet.addr, 8080)

    def put(self, sid, body, key="default"):
        return self.server.request("PUT", f"/sandboxes/{sid}/network", body, key=key)

    def test_no_internet_and_allow_out_beats_it(self):
        off = self.make(allow_internet_access=False)
        self.assertFalse(self.reaches(off))
        got = self.server.request("GET", f"/sandboxes/{off}").json
        self.assertEqual(got["allowInternetAccess"], False)
        hole = self.make(allowInternetAccess=False, network={"allowOut": [f"{internet.addr}/32"]})
        self.assertTrue(self.reaches(hole))
        got = self.server.request("GET", f"/sandboxes/{hole}").json
        self.assertEqual(got["network"], {"allowOut": [f"{internet.addr}/32"], "denyOut": []})
        default = self.server.request("GET", f"/sandboxes/{self.make()}").json
        self.assertIsNone(default["allowInternetAccess"])

    def test_a_warm_sandbox_takes_the_callers_policy_at_claim(self):
        # The server runs the default warm pool: these creates claim sandboxes
        # booted with the open policy before anyone asked for them.
        for want_open in (False, True):
            deadline = time.time() + 30
            while True:
                live = {s["sandboxID"] for s in
                        self.server.request("GET", "/sandboxes?status=running,paused").json}
                warm = set(os.listdir(os.path.join(self.server.dir, "sandboxes"))) - live
                if len(warm) == 2 or time.time() > deadline:
                    break
                time.sleep(0.05)
            fields = {} if want_open else {"allowInternetAccess": False}
            sid = self.make(**fields)
            self.assertIn(sid, warm, "the create did not claim a warm sandbox")
            self.assertEqual(self.reaches(sid), want_open)

    def test_deny_out_and_live_updates_are_events(self):
        sid = self.make(network={"denyOut": [internet.addr]})
        self.assertFalse(self.reaches(sid))
        self.assertStatus(self.put(sid, {}), 204)  # omitted fields are cleared
        self.assertTrue(self.reaches(sid))
        self.assertStatus(self.put(sid, {"denyOut": ["198.18.0.0/15"]}), 204)
        self.assertFalse(self.reaches(sid))
        self.assertEqual(self.server.request("GET", f"/sandboxes/{sid}").json["network"]["denyOut"],
                         ["198.18.0.0/15"])
        types = [e["type"] for e in self.server.events(sid)]
        self.assertEqual(types.count("sandbox.lifecycle.updated"), 2, types)
        # Paused (memory kept or not), the policy still changes and holds after resume.
        self.assertStatus(self.server.request("POST", f"/sandboxes/{sid}/pause", {"memory": False}), 204)
        self.assertStatus(self.put(sid, {"allowOut": [internet.addr], "denyOut": ["0.0.0.0/0"]}), 204)
        self.assertStatus(self.server.request("POST", f"/sandboxes/{sid}/connect", {"timeout": 300}), 201)
        self.assertTrue(self.reaches(sid))
        self.assertFalse(self.connects(sid, "198.18.255.254", 80, timeout=1))

    def test_policies_survive_a_restart(self):
        sid = self.make(network={"denyOut": [internet.addr]})
        self.assertFalse(self.reaches(sid))
        self.server.crash()
        run("nft", "flush", "chain", "inet", "sandboxd", f"sbx_{sid}")  # as if flushed meanwhile
        self.server.start()
        self.assertFalse(self.reaches(sid), "the logged policy is applied again on start")

    def test_bad_policies(self):
        sid = self.make()
        cases = [
            ({"network": {"denyOut": ["example.com"]}}, "domains"),
            ({"network": {"allowOut": "1.2.3.4"}}, "allowOut"),
            ({"network": {"allowOut": ["not an address!"]}}, "allowOut"),
            ({"network": {"egressProxy": {"address": "p:1080"}}}, "egressProxy"),
            ({"network": {"rules": {"a.com": [{"transform": {"headers": {"Host": "x"}}}]}}},
             "rules"),
            ({"allow_internet_access": "no"}, "allow_internet_access"),
            ({"network": [1]}, "network"),
        ]
        for fields, word in cases:
            with self.subTest(fields=fields):
                r = self.server.request("POST", "/sandboxes", {"templateID": "base", **fields})
                self.assertError(r, 400, word)
                if "network" in fields and isinstance(fields["network"], dict):
                    self.assertError(self.put(sid, fields["network"]), 400, word)
        self.assertError(self.put("nosuchsandbox0000000", {}), 404)
        other = self.server.new_key("network-other")
        self.assertError(self.put(sid, {"denyOut": ["0.0.0.0/0"]}, key=other), 404)
        self.assertTrue(self.reaches(sid))


class CleanupCommand(NetworkTest):
    def test_cleanup_removes_what_a_stopped_server_left(self):
        from harness import BIN
        other = self.server.new_key("cleanup-other")
        mine = self.create()
        theirs = self.server.create(key=other)
        made_ids.append(theirs)
        cold = self.create()
        self.assertStatus(self.server.request("POST", f"/sandboxes/{cold}/pause", {"memory": False}), 204)
        busy = run(BIN, "cleanup", "--data-dir", self.server.dir, check=False)
        self.assertNotEqual(busy.returncode, 0)
        self.assertIn("stop it first", busy.stderr)
        self.assertTrue(link_exists(veth_of(mine)))
        self.server.crash()
        # Warm sandboxes the crash left go too.
        left = os.listdir(os.path.join(self.server.dir, "sandboxes"))
        self.assertTrue({mine, theirs, cold} <= set(left))
        out = run(BIN, "cleanup", "--data-dir", self.server.dir)
        self.assertIn(f"removed {len(left)} sandboxes", out.stdout)
        for sid in (mine, theirs, cold):
            self.assertFalse(link_exists(veth_of(sid)), sid)
            self.assertNotIn(f"chain sbx_{sid} ", nft_table())
            self.assertNotIn(f'"{veth_of(sid)}"', nft_table())
            self.assertFalse(os.path.exists(os.path.join(self.server.dir, "sandboxes", sid)))
            self.assertFalse(os.path.exists(f"/sys/fs/cgroup/memory/sandboxd/{sid}"))
        self.server.start()  # for the class's own cleanup


class Restarts(NetworkTest):
    def test_restart_keeps_networks_and_never_reuses_a_live_address(self):
        s1 = self.create()
        a1 = self.py(s1, MY_ADDRESS, internet.addr)
        self.server.stop()  # sandboxes keep running across a restart
        self.server.start()
        self.assertEqual(self.fetch(s1, internet.url), "internet\n")
        s2 = self.create()
        self.assertNotEqual(self.py(s2, MY_ADDRESS, internet.addr), a1)
        self.assertEqual(self.fetch(s2, internet.url), "internet\n")

    def test_leftovers_of_a_lost_container_are_removed_on_start(self):
        sid = self.create()
        self.server.crash()
        # The container disappears while no sandboxd runs: its netns and veth
        # go with it, its rules stay behind.
        run(OCI, "--root", os.path.join(self.server.dir, "runtime", "state"),
            "delete", "--force", sid)
        deadline = time.time() + 10
        while link_exists(veth_of(sid)) and time.time() < deadline:
            time.sleep(0.05)
        self.assertIn(f'"{veth_of(sid)}"', nft_table())
        self.server.start()
        # Reconciles go on once the server serves: the orphan's leftovers go within moments.
        deadline = time.time() + 10
        while sid in nft_table() and time.time() < deadline:
            time.sleep(0.05)
        self.assertNotIn(sid, nft_table())
        self.assertNotIn(veth_of(sid), nft_table())
        self.assertFalse(link_exists(veth_of(sid)))


if __name__ == "__main__":
    main()
