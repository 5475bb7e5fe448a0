"""The sandbox's syscall filter is default-deny and still runs normal programs.

Code inside a sandbox is hostile; its first move against the kernel is
usually a fresh user namespace (a full capability set over code that
otherwise needs CAP_SYS_ADMIN) or one of the large, exploit-prone kernel
interfaces. From inside real sandboxes, as root and as `user`, through
POST /sandboxes/:id/processes, with python3 ctypes calling syscall(2):

* Refused: clone and unshare with namespace flags (CLONE_NEWUSER, NEWNS,
  NEWNET, NEWTIME), clone3 (ENOSYS, so glibc falls back to clone whose flags
  the filter reads), io_uring, keyrings, bpf, perf_event_open, userfaultfd,
  mount/umount2/setns, ptrace(PTRACE_TRACEME), finit_module, sockets of other
  families than unix/inet/inet6/netlink (AF_VSOCK, AF_ALG, AF_PACKET),
  personality(ADDR_NO_RANDOMIZE); util-linux `unshare --user` fails.
  The same through the x86 32-bit ABI (int 0x80) and x32, on x86_64.
* Allowed: clone without namespace flags, unshare(CLONE_FS), inet and
  netlink sockets, the personality query.
* Legitimate use works: python3 threads, subprocess, multiprocessing and
  asyncio; bash pipelines and coreutils; apt-get --version, dpkg -l; in the
  `agent` template node (worker thread, child_process), npm, claude and
  codex --version; in `browser` headless Chromium dumping a page. A template
  not built on this host is skipped with the reason.

On the host afterwards: the sandbox's config.json carries the default-deny
profile and its init runs under a seccomp filter (/proc/<pid>/status).
"""
import base64
import errno
import json
import os
import platform

from harness import ServerTest, main

# Syscall numbers differ per architecture; the probe picks its own.
PROBE = r'''
import ctypes, json, os, platform, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
NR = {"x86_64": dict(clone=56, unshare=272, clone3=435, io_uring_setup=425, io_uring_enter=426,
                     io_uring_register=427, keyctl=250, add_key=248, request_key=249, bpf=321,
                     perf_event_open=298, mount=165, umount2=166, setns=308, ptrace=101,
                     userfaultfd=323, socket=41, personality=135, finit_module=313,
                     process_vm_readv=310),
      "aarch64": dict(clone=220, unshare=97, clone3=435, io_uring_setup=425, io_uring_enter=426,
                      io_uring_register=427, keyctl=219, add_key=217, request_key=218, bpf=280,
                      perf_event_open=241, mount=40, umount2=39, setns=268, ptrace=117,
                      userfaultfd=282, socket=198, personality=92, finit_module=273,
                      process_vm_readv=270)}[platform.machine()]
SIGCHLD = 17
out = {}
def probe(label, name, *args, forks=False):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(NR[name]), *[ctypes.c_ulong(a) for a in args])
    e = ctypes.get_errno()
    if forks and r == 0:
        os._exit(0)  # the child of a clone that went through
    if forks and r > 0:
        os.waitpid(r, 0)
    out[label] = 0 if r >= 0 else e
probe("clone_newuser", "clone", 0x10000000 | SIGCHLD, 0, 0, 0, 0, forks=True)
probe("clone_newns", "clone", 0x00020000 | SIGCHLD, 0, 0, 0, 0, forks=True)
probe("clone_newnet", "clone", 0x40000000 | SIGCHLD, 0, 0, 0, 0, forks=True)
probe("clone_plain", "clone", SIGCHLD, 0, 0, 0, 0, forks=True)
probe("unshare_newuser", "unshare", 0x10000000)
probe("unshare_newuser_newns", "unshare", 0x10000000 | 0x00020000)
probe("unshare_newtime", "unshare", 0x80)
probe("unshare_fs", "unshare", 0x200)
probe("clone3", "clone3", 0, 0)
probe("io_uring_setup", "io_uring_setup", 8, 0)
probe("io_uring_enter", "io_uring_enter", 0, 0, 0, 0, 0, 0)
probe("io_uring_register", "io_uring_register", 0, 0, 0, 0)
probe("keyctl", "keyctl", 0, 0)
probe("add_key", "add_key", 0, 0, 0, 0, 0)
probe("request_key", "request_key", 0, 0, 0, 0)
probe("bpf", "bpf", 0, 0, 0)
probe("perf_event_open", "perf_event_open", 0, 0, (1 << 64) - 1, (1 << 64) - 1, 0)
probe("userfaultfd", "userfaultfd", 0)
probe("mount", "mount", 0, 0, 0, 0, 0)
probe("umount2", "umount2", 0, 0)
probe("setns", "setns", 0xffffffff, 0)
probe("ptrace_traceme", "ptrace", 0, 0, 0, 0)
probe("process_vm_readv", "process_vm_readv", 1, 0, 0, 0, 0, 0)
probe("finit_module", "finit_module", 0xffffffff, 0, 0)
probe("socket_vsock", "socket", 40, 1, 0)
probe("socket_alg", "socket", 38, 5, 0)
probe("socket_packet", "socket", 17, 3, 0)
probe("socket_inet", "socket", 2, 1, 0)
probe("socket_netlink", "socket", 16, 3, 0)
probe("personality_query", "personality", 0xffffffff)
probe("personality_no_aslr", "personality", 0x0040000)
print(json.dumps(out))
'''

# x86_64 only: the 32-bit ABI (int 0x80) and x32 (syscall numbers with bit
# 30) are filtered too. A tiny function: eax=nr, ebx=a, ecx=b, int 0x80.
COMPAT_PROBE = r'''
import ctypes, json, mmap, os
code = bytes([0x53, 0x89, 0xF8, 0x89, 0xF3, 0x89, 0xD1, 0x31, 0xD2, 0xCD, 0x80, 0x5B, 0xC3])
buf = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
buf.write(code)
int80 = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_uint, ctypes.c_uint)(
    ctypes.addressof(ctypes.c_char.from_buffer(buf)))
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def x32(nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(0x40000000 | nr), *[ctypes.c_ulong(a) for a in args])
    return 0 if r >= 0 else ctypes.get_errno()
out = {"x32_unshare_newuser": x32(272, 0x10000000), "x32_io_uring_setup": x32(425, 8, 0)}
# A kernel without the 32-bit ABI answers int 0x80 with SIGSEGV: probe in a child.
r, w = os.pipe()
child = os.fork()
if child == 0:
    res = {"i386_ran": True, "i386_getpid": -int80(20, 0, 0)}
    res["i386_unshare_newuser"] = -int80(310, 0x10000000, 0)
    res["i386_socketcall"] = -int80(102, 1, 0)  # SYS_SOCKET, its arguments by pointer
    res["i386_socket_vsock"] = -int80(359, 40, 1)
    res["i386_io_uring_setup"] = -int80(425, 8, 0)
    res["i386_keyctl"] = -int80(288, 0, 0)
    os.write(w, json.dumps(res).encode())
    os._exit(0)
os.close(w)
data = os.read(r, 65536)
os.waitpid(child, 0)
out.update(json.loads(data) if data else {"i386_ran": False})
print(json.dumps(out))
'''

# label -> errno the filter must give (0: the call must go through).
EXPECTED = {
    "clone_newuser": errno.EPERM, "clone_newns": errno.EPERM, "clone_newnet": errno.EPERM,
    "clone_plain": 0,
    "unshare_newuser": errno.EPERM, "unshare_newuser_newns": errno.EPERM,
    "unshare_newtime": errno.EPERM, "unshare_fs": 0,
    "clone3": errno.ENOSYS,
    "io_uring_setup": errno.EPERM, "io_uring_enter": errno.EPERM,
    "io_uring_register": errno.EPERM,
    "keyctl": errno.EPERM, "add_key": errno.EPERM, "request_key": errno.EPERM,
    "bpf": errno.EPERM, "perf_event_open": errno.EPERM, "userfaultfd": errno.EPERM,
    "mount": errno.EPERM, "umount2": errno.EPERM, "setns": errno.EPERM,
    "ptrace_traceme": errno.EPERM, "process_vm_readv": errno.EPERM,
    "finit_module": errno.EPERM,
    "socket_vsock": errno.EPERM, "socket_alg": errno.EPERM, "socket_packet": errno.EPERM,
    "socket_inet": 0, "socket_netlink": 0,
    "personality_query": 0, "personality_no_aslr": errno.EPERM,
}


class SyscallTest(ServerTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.sid = cls.server.create("base", timeout=600)

    def exec_(self, cmd, *args, sid=None, user=None, timeout=60):
        fields = {"timeout": timeout}
        if user:
            fields["user"] = user
        r = self.server.run(sid or self.sid, cmd, *args, **fields)
        self.assertStatus(r, 200)
        return r.json

    def python(self, source, user=None):
        out = self.exec_("python3", "-c", source, user=user)
        self.assertEqual(out["exitCode"], 0, out)
        return json.loads(out["stdout"].strip().splitlines()[-1])

    def check_probe(self, user):
        got = self.python(PROBE, user=user)
        for label, want in EXPECTED.items():
            with self.subTest(user=user, call=label):
                self.assertEqual(got[label], want,
                                 f"{label}: errno {got[label]} ({os.strerror(got[label])}), "
                                 f"want {want} ({os.strerror(want)})")

    # -- attacks ---------------------------------------------------------------

    def test_refused_as_root(self):
        self.check_probe("root")

    def test_refused_as_user(self):
        self.check_probe(None)

    def test_unshare_tool_cannot_make_a_user_namespace(self):
        for user in ("root", None):
            out = self.exec_("unshare", "--user", "--map-root-user", "id", user=user)
            self.assertNotEqual(out["exitCode"], 0, out)
            self.assertIn("Operation not permitted", out["stderr"])

    def compat_probe(self):
        if platform.machine() != "x86_64":
            self.skipTest("the x86 compat ABIs exist on x86_64 only")
        if not hasattr(SyscallTest, "_compat"):
            SyscallTest._compat = self.python(COMPAT_PROBE, user="root")
        return SyscallTest._compat

    def test_x32_abi_is_filtered_too(self):
        got = self.compat_probe()
        # EPERM from the filter, which sees x32 numbers before the kernel
        # (a kernel without x32 would say ENOSYS without the filter).
        self.assertEqual(got["x32_unshare_newuser"], errno.EPERM, got)
        self.assertEqual(got["x32_io_uring_setup"], errno.EPERM, got)

    def test_i386_abi_is_filtered_too(self):
        got = self.compat_probe()
        if not got["i386_ran"]:
            self.skipTest("this kernel runs no 32-bit x86 code (int 0x80 faults)")
        # The whole 32-bit ABI is refused, getpid too: its socketcall would
        # otherwise make sockets of any family (arguments by pointer).
        for label in ("i386_getpid", "i386_unshare_newuser", "i386_socketcall",
                      "i386_socket_vsock", "i386_io_uring_setup", "i386_keyctl"):
            with self.subTest(call=label):
                self.assertEqual(got[label], errno.EPERM, got)

    def test_host_sees_the_default_deny_filter(self):
        d = os.path.join(self.server.dir, "sandboxes", self.sid)
        with open(os.path.join(d, "config.json")) as f:
            config = json.load(f)
        # crun gets the profile compiled once by the server (a BPF program of
        # 8-byte instructions), not the list it would compile on each start:
        # the probes above show that program refuses what the list refuses.
        self.assertNotIn("seccomp", config["linux"])
        program = base64.b64decode(config["annotations"]["run.oci.seccomp_bpf_data"])
        self.assertGreater(len(program), 8 * 100)
        self.assertEqual(len(program) % 8, 0)
        with open(os.path.join(d, "init.pid")) as f:
            pid = int(f.read())
        with open(f"/proc/{pid}/status") as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        self.assertEqual(status["Seccomp"].strip(), "2")  # SECCOMP_MODE_FILTER
        # Off so that `sudo` works for `user` (as on E2B); the filter holds for
        # root inside too (test_user_namespace: sudo's root is the range's).
        self.assertEqual(status["NoNewPrivs"].strip(), "0")

    # -- legitimate use -------------------------------------------------------

    def test_python_threads_subprocess_multiprocessing(self):
        src = r'''
import asyncio, concurrent.futures, json, multiprocessing, shutil, socket, subprocess, tempfile, threading
def sq(x): return x * x
if __name__ == "__main__":
    box = []
    ts = [threading.Thread(target=lambda i=i: box.append(i)) for i in range(8)]
    [t.start() for t in ts]; [t.join() for t in ts]
    sub = subprocess.run(["sh", "-c", "echo sub"], capture_output=True, text=True).stdout.strip()
    with multiprocessing.Pool(2) as p: pool = p.map(sq, range(5))
    with concurrent.futures.ProcessPoolExecutor(2) as ex: ppe = list(ex.map(sq, [6, 7]))
    with concurrent.futures.ThreadPoolExecutor(4) as ex: tpe = list(ex.map(sq, [8]))
    q = multiprocessing.Queue(); pr = multiprocessing.Process(target=q.put, args=(42,)); pr.start()
    got = q.get(timeout=30); pr.join()
    async def aio():
        p = await asyncio.create_subprocess_exec("echo", "aio", stdout=asyncio.subprocess.PIPE)
        return (await p.communicate())[0].decode().strip()
    d = tempfile.mkdtemp(); open(d + "/a", "w").write("x"); shutil.copy(d + "/a", d + "/b"); shutil.rmtree(d)
    s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(); c = socket.create_connection(s.getsockname())
    a, _ = s.accept(); c.sendall(b"hi"); echoed = a.recv(2).decode(); [x.close() for x in (a, c, s)]
    print(json.dumps([len(box), sub, pool, ppe, tpe, got, asyncio.run(aio()), echoed]))
'''
        for user in (None, "root"):
            with self.subTest(user=user):
                self.assertEqual(self.python(src, user=user),
                                 [8, "sub", [0, 1, 4, 9, 16], [36, 49], [64], 42, "aio", "hi"])

    def test_bash_pipelines_and_coreutils(self):
        script = ("set -euo pipefail; printf 'c\\nb\\na\\n' | sort | tr a-z A-Z | head -2 | wc -l; "
                  "cd /tmp && mkdir -p d && cp -a /etc/hostname d/ && tar cf d.tar d && rm -r d && "
                  "tar xf d.tar && ls -la d >/dev/null && stat d >/dev/null && mkfifo f && rm f d.tar && "
                  "rm -r d; timeout 5 sleep 0.1; id -u; nproc >/dev/null; df / >/dev/null; "
                  "ps ax >/dev/null; date +%Y >/dev/null; echo $(( $(seq 1 100 | paste -sd+) ))")
        for user in (None, "root"):
            with self.subTest(user=user):
                out = self.exec_("bash", "-c", script, user=user)
                self.assertEqual(out["exitCode"], 0, out)
                lines = out["stdout"].split()
                self.assertEqual(lines[0], "2")
                self.assertEqual(lines[-1], "5050")

    def test_apt_and_dpkg(self):
        out = self.exec_("apt-get", "--version", user="root")
        self.assertEqual(out["exitCode"], 0, out)
        self.assertIn("apt ", out["stdout"])
        out = self.exec_("dpkg", "-l", user="root")
        self.assertEqual(out["exitCode"], 0, out)
        self.assertIn("python3", out["stdout"])
        out = self.exec_("apt-cache", "policy", "bash", user="root")
        self.assertEqual(out["exitCode"], 0, out)

    # -- the larger templates, when built ------------------------------------

    def sandbox_of(self, template):
        r = self.server.request("POST", "/sandboxes", {"templateID": template, "timeout": 300})
        if r.status == 503 and "not built" in (r.json or {}).get("message", ""):
            self.skipTest(f"template {template} is not built on this host: {r.json['message']}")
        self.assertStatus(r, 201)
        sid = r.json["sandboxID"]
        self.addCleanup(self.server.request, "DELETE", f"/sandboxes/{sid}")
        return sid

    def test_node_workers_child_process_and_agent_clis(self):
        sid = self.sandbox_of("agent")
        js = ("const {Worker}=require('worker_threads'); const cp=require('child_process');"
              "const w=new Worker(\"require('worker_threads').parentPort.postMessage(6*7)\",{eval:true});"
              "w.on('message',async m=>{"
              " const child=cp.execFileSync('sh',['-c','echo child']).toString().trim();"
              " const spawned=await new Promise(r=>cp.spawn('true').on('exit',r));"
              " await require('fs').promises.writeFile('/tmp/n','x');"
              " const rnd=require('crypto').randomBytes(8).length;"
              " const ifs=Object.keys(require('os').networkInterfaces()).length>0;"
              " const host=await new Promise(r=>require('dns').lookup('127.0.0.1',(e,a)=>r(a)));"
              " console.log(JSON.stringify([m,child,spawned,rnd,ifs,host]));});")
        out = self.exec_("node", "-e", js, sid=sid, timeout=120)
        self.assertEqual(out["exitCode"], 0, out)
        self.assertEqual(json.loads(out["stdout"].strip()), [42, "child", 0, 8, True, "127.0.0.1"])
        for cli in ("npm", "claude", "codex"):
            with self.subTest(cli=cli):
                out = self.exec_(cli, "--version", sid=sid, timeout=120)
                self.assertEqual(out["exitCode"], 0, out)
                self.assertRegex(out["stdout"], r"\d+\.\d+")

    def test_headless_chromium(self):
        sid = self.sandbox_of("browser")
        out = self.exec_("chromium", "--headless", "--no-sandbox", "--disable-gpu",
                         "--dump-dom", "data:text/html,<p id=x>sandboxd-seccomp-ok</p>",
                         sid=sid, timeout=150)
        self.assertEqual(out["exitCode"], 0, out)
        self.assertIn('<p id="x">sandboxd-seccomp-ok</p>', out["stdout"], out)


if __name__ == "__main__":
    main()
