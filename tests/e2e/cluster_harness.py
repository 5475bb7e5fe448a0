"""A cluster on one machine for tests and benchmarks: worker nodes each in a
network namespace made here, joined to the control node (in the host's
namespace) over a bridge made here (a random 10.254.X.0/24). Everything made is
removed by teardown(), and nothing else is touched."""
import os
import secrets
import shutil
import signal
import subprocess
import tempfile

from harness import BIN, log_tail, remove_data_dir

TAG = secrets.token_hex(3)
BRIDGE = f"clb{TAG}"
# A /24 of its own per run (runs on one host do not share a subnet).
NET = f"10.254.{secrets.randbelow(200) + 20}"


def ip(*args):
    """`ip ARGS`, failing loudly."""
    subprocess.run(["ip", *args], check=True, capture_output=True)


def write_secret(path, secret):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")


class Worker:
    """One `sandboxd worker` inside network namespace `ns`."""

    def __init__(self, name, ns, secret_file, join):
        self.name, self.ns = name, ns
        self.dir = tempfile.mkdtemp(prefix="sandboxd-e2e-worker-")
        self.args = [BIN, "worker", "--join", join, "--cluster-secret-file", secret_file,
                     "--name", name, "--data-dir", self.dir]
        self.log_path = os.path.join(self.dir, "worker.log")
        self.proc = None

    def wrap(self):
        return ["nsenter", f"--net=/run/netns/{self.ns}"]

    def start(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([*self.wrap(), *self.args], stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL)

    def log(self):
        return log_tail(self.log_path, 4000)

    def joined(self):
        return "joined" in self.log()

    def crash(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def containers(self):
        d = os.path.join(self.dir, "sandboxes")
        return set(os.listdir(d)) if os.path.isdir(d) else set()

    def cleanup(self):
        self.crash()
        remove_data_dir(self.dir, wrap=self.wrap())



class ClusterNet:
    """The bridge (the control node's address NET.1) and `count` namespaces
    (NET.2, NET.3, ...), each with a veth on the bridge."""

    def __init__(self, count):
        self.namespaces, self.links = [], []
        self.secrets_dir = tempfile.mkdtemp(prefix="sandboxd-e2e-secret-")
        try:
            ip("link", "add", BRIDGE, "type", "bridge")
            self.links.append(BRIDGE)
            ip("addr", "add", f"{NET}.1/24", "dev", BRIDGE)
            ip("link", "set", BRIDGE, "up")
            for i in range(count):
                ns, host_end, ns_end = f"clns{TAG}{i}", f"clv{TAG}{i}", f"clp{TAG}{i}"
                ip("netns", "add", ns)
                self.namespaces.append(ns)
                ip("link", "add", host_end, "type", "veth", "peer", "name", ns_end)
                self.links.append(host_end)
                ip("link", "set", host_end, "master", BRIDGE, "up")
                ip("link", "set", ns_end, "netns", ns)
                ip("-n", ns, "addr", "add", f"{NET}.{i + 2}/24", "dev", ns_end)
                ip("-n", ns, "link", "set", ns_end, "up")
                ip("-n", ns, "link", "set", "lo", "up")
        except BaseException:
            self.teardown()
            raise

    def teardown(self):
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        for link in self.links:
            subprocess.run(["ip", "link", "del", link], capture_output=True)
        shutil.rmtree(self.secrets_dir, ignore_errors=True)
