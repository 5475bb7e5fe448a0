#!/usr/bin/python3
"""A Jupyter kernel for bash: one long-lived bash per context, so variables,
functions and the working directory carry over between cells.

Each cell is written to a file the bash sources (stdin from /dev/null, so a
cell can't eat the next one), followed by a marker line on stdout and on
stderr that carries the exit status; output is streamed until both markers
are seen. A failed cell (non-zero status) is an error whose value is the
status, as bash_kernel reports it.
"""

import codecs
import os
import selectors
import signal
import subprocess
import tempfile
import uuid

from ipykernel.kernelapp import IPKernelApp
from ipykernel.kernelbase import Kernel


class BashKernel(Kernel):
    implementation = "sandboxd-bash"
    implementation_version = "1.0"
    language = "bash"
    language_version = "5"
    language_info = {"name": "bash", "mimetype": "text/x-sh", "file_extension": ".sh"}
    banner = "bash"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.bash = None
        self.cells = tempfile.mkdtemp(prefix="sandboxd-bash-")
        self.start_bash()

    def start_bash(self):
        self.marker = "__sandboxd_cell_done_%s__" % uuid.uuid4().hex
        self.bash = subprocess.Popen(["/bin/bash", "--noprofile", "--norc"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True)

    def do_execute(self, code, silent, store_history=True, user_expressions=None,
                   allow_stdin=False, **kwargs):
        if self.bash.poll() is not None:
            self.start_bash()
        cell = os.path.join(self.cells, "cell.sh")
        with open(cell, "w") as f:
            f.write(code + "\n")
        command = (". %s </dev/null\n__sandboxd_rc=$?; printf '\\n%s %%d\\n' \"$__sandboxd_rc\"; "
                   "printf '\\n%s\\n' >&2\n" % (cell, self.marker, self.marker))
        status = None
        try:
            self.bash.stdin.write(command.encode())
            self.bash.stdin.flush()
            status = self.relay(silent)
        except KeyboardInterrupt:
            # Interrupted: stop what the cell runs, then bash itself if it
            # doesn't come back at once (its variables are lost then).
            self.signal_group(signal.SIGINT)
            try:
                status = self.relay(silent, timeout=2)
            except (KeyboardInterrupt, TimeoutError):
                pass
            if status is None:
                self.signal_group(signal.SIGKILL)
                self.bash.wait()
            return self.error("Interrupted", "the cell was interrupted")
        except (BrokenPipeError, OSError):
            pass
        if status is None:
            # bash exited (`exit` in the cell): the next cell gets a new one.
            self.bash.wait()
            code = self.bash.returncode
            return self.error("", str(code if code >= 0 else 128 - code))
        if status != 0:
            return self.error("", str(status))
        return {"status": "ok", "execution_count": self.execution_count,
                "payload": [], "user_expressions": {}}

    def error(self, name, value):
        content = {"execution_count": self.execution_count, "ename": name,
                   "evalue": value, "traceback": []}
        self.send_response(self.iopub_socket, "error", content)
        return dict(content, status="error")

    def signal_group(self, sig):
        try:
            os.killpg(self.bash.pid, sig)
        except ProcessLookupError:
            pass

    def relay(self, silent, timeout=None):
        """Streams the cell's output; returns its exit status, or None when
        bash ended first."""
        streams = {self.bash.stdout.fileno(): "stdout", self.bash.stderr.fileno(): "stderr"}
        decoders = {name: codecs.getincrementaldecoder("utf-8")("replace") for name in streams.values()}
        pending = {name: "" for name in streams.values()}
        done = {}
        end = "\n" + self.marker
        sel = selectors.DefaultSelector()
        for fd in streams:
            sel.register(fd, selectors.EVENT_READ)
        try:
            while len(done) < 2:
                ready = sel.select(timeout)
                if not ready:
                    raise TimeoutError()
                for key, _ in ready:
                    name = streams[key.fd]
                    data = os.read(key.fd, 65536)
                    if not data:
                        sel.unregister(key.fd)
                        done.setdefault(name, None)
                        continue
                    text = pending[name] + decoders[name].decode(data)
                    at = text.find(end)
                    if at >= 0:
                        tail = text[at + len(end):]
                        if name == "stdout":
                            line = tail.split("\n", 1)
                            if len(line) < 2:
                                pending[name] = text  # the status is not all there yet
                                continue
                            done[name] = int(line[0].strip() or 0)
                        else:
                            done[name] = 0
                        text = text[:at]
                        sel.unregister(key.fd)
                        pending[name] = ""
                        self.emit(name, text, silent)
                        continue
                    # Hold back what could be the start of the marker.
                    keep = len(end) - 1
                    self.emit(name, text[:-keep] if len(text) > keep else "", silent)
                    pending[name] = text[-keep:] if len(text) > keep else text
        finally:
            sel.close()
        for name, rest in pending.items():
            self.emit(name, rest, silent)
        if done.get("stdout") is None or "stderr" not in done or done["stderr"] is None:
            return None
        return done["stdout"]

    def emit(self, name, text, silent):
        if text and not silent:
            self.send_response(self.iopub_socket, "stream", {"name": name, "text": text})

    def do_shutdown(self, restart):
        self.signal_group(signal.SIGKILL)
        return {"status": "ok", "restart": restart}


if __name__ == "__main__":
    IPKernelApp.launch_instance(kernel_class=BashKernel)
