#!/usr/bin/python3
"""sandboxd's code interpreter: E2B's execution API on port 49999.

Runs inside a `code_interpreter` sandbox as `user`, started with the sandbox
(the template's start command). Speaks what `@e2b/code-interpreter` sends:

  GET  /health                     "OK"
  POST /execute                    {code, language?, context_id?, env_vars?}
                                   -> newline-delimited JSON, streamed
  POST /contexts                   {language?, cwd?} -> {id, language, cwd}
  GET  /contexts                   -> [{id, language, cwd}]
  POST /contexts/<id>/restart      restarts the context's kernel
  DELETE /contexts/<id>            stops it

Each context is a Jupyter kernel (Debian's python3-ipykernel, r-cran-irkernel,
and bash_kernel.py beside this file) driven with jupyter_client. One event
loop, one thread: executions in a context run one at a time, in order.
"""

import asyncio
import datetime
import json
import os
import re
import sys
import uuid

PORT = 49999
HOME = "/home/user"
# Language -> kernelspec name.
KERNELS = {"python": "python3", "r": "ir", "bash": "bash"}
STARTUP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ipython_startup.py")

MAX_HEAD = 64 * 1024            # request line and headers
MAX_BODY = 16 * 1024 * 1024     # the code and its env vars
DRAIN_MAX = 64 * 1024 * 1024    # a larger body is read and dropped before the 413
MAX_CONNECTIONS = 64            # more get 503 at once
HEAD_TIMEOUT = 30               # seconds to send the request
KEEPALIVE = 5                   # seconds between keepalive lines while a cell runs
POLL = 0.25                     # seconds between checks that the client is still there
KERNEL_START_TIMEOUT = 60

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class HttpError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           413: "Payload Too Large", 500: "Internal Server Error", 503: "Service Unavailable"}


def normalize_language(language):
    if not language:
        return "python"
    language = language.lower().strip()
    return {"js": "javascript", "ts": "typescript"}.get(language, language)


def check_language(language):
    if language not in KERNELS:
        # 404 so that the SDK shows this text (it shows only the status for others).
        raise HttpError(404, "language %r is not available in this sandbox; available: %s"
                        % (language, ", ".join(sorted(KERNELS))))


def is_idle(msg, msg_id):
    """Whether `msg` says the kernel is done with request `msg_id`."""
    return (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status"
            and msg["content"].get("execution_state") == "idle")


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def result_of(data, is_main):
    """E2B's Result: the MIME bundle under short names, the rest in `extra`."""
    data = dict(data)
    out = {"type": "result"}
    text = data.pop("text/plain", None)
    if text and len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    names = [("html", "text/html"), ("markdown", "text/markdown"), ("svg", "image/svg+xml"),
             ("png", "image/png"), ("jpeg", "image/jpeg"), ("pdf", "application/pdf"),
             ("latex", "text/latex"), ("json", "application/json"),
             ("javascript", "application/javascript"), ("data", "e2b/data"),
             ("chart", "e2b/chart")]
    if text is not None:
        out["text"] = text
    for short, mime in names:
        value = data.pop(mime, None)
        if value is not None:
            out[short] = value
    out["extra"] = data
    out["is_main_result"] = is_main
    return out


def quoted_for(language, value):
    if language == "python":
        return json.dumps(value)
    if language == "bash":
        return "'" + value.replace("'", "'\\''") + "'"
    # R: a double-quoted string.
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped + '"'


def set_env_code(language, env):
    q = lambda v: quoted_for(language, v)
    if language == "python":
        return "import os as _sbx_os\n" + "\n".join(
            "_sbx_os.environ[%s] = %s" % (q(k), q(v)) for k, v in env.items()) + "\ndel _sbx_os"
    if language == "bash":
        return "\n".join("export %s=%s" % (k, q(v)) for k, v in env.items())
    return "\n".join("Sys.setenv(%s = %s)" % (k, q(v)) for k, v in env.items())


def reset_env_code(language, keys):
    """Back to the sandbox's own value (what this server started with), or unset."""
    lines = []
    for k in keys:
        if k in os.environ:
            lines.append(set_env_code(language, {k: os.environ[k]}))
        elif language == "python":
            lines.append("import os as _sbx_os\n_sbx_os.environ.pop(%s, None)\ndel _sbx_os"
                         % quoted_for(language, k))
        elif language == "bash":
            lines.append("unset %s" % k)
        else:
            lines.append("Sys.unsetenv(%s)" % quoted_for(language, k))
    return "\n".join(lines)


class Context:
    """One kernel, its language and working directory."""

    def __init__(self, language, cwd, context_id=None):
        self.id = context_id or str(uuid.uuid4())
        self.language = language
        self.cwd = cwd
        self.km = None
        self.kc = None
        self.lock = asyncio.Lock()
        self.started = asyncio.get_running_loop().create_future()

    def describe(self):
        return {"id": self.id, "language": self.language, "cwd": self.cwd}

    async def start(self):
        try:
            from jupyter_client import AsyncKernelManager
            self.km = AsyncKernelManager(kernel_name=KERNELS[self.language])
            extra = []
            if self.language == "python" and os.path.exists(STARTUP):
                extra = ["--IPKernelApp.exec_files=%s" % json.dumps([STARTUP])]
            await self.km.start_kernel(cwd=self.cwd, env=dict(os.environ), extra_arguments=extra)
            self.kc = self.km.client()
            self.kc.start_channels()
            await self.kc.wait_for_ready(timeout=KERNEL_START_TIMEOUT)
            if not self.started.done():
                self.started.set_result(True)
        except BaseException as e:
            if not self.started.done():
                self.started.set_exception(e)
            raise

    async def ready(self):
        try:
            await asyncio.wait_for(asyncio.shield(self.started), KERNEL_START_TIMEOUT)
        except asyncio.TimeoutError:
            raise HttpError(500, "the %s kernel did not start in %d s" % (self.language, KERNEL_START_TIMEOUT))
        except HttpError:
            raise
        except Exception as e:
            raise HttpError(500, "the %s kernel failed to start: %s" % (self.language, e))

    async def stop(self):
        if self.kc is not None:
            self.kc.stop_channels()
        if self.km is not None:
            try:
                await self.km.shutdown_kernel(now=True)
            except Exception:
                pass

    async def restart(self):
        await self.ready()
        self.kc.stop_channels()
        await self.km.restart_kernel(now=True)
        self.kc = self.km.client()
        self.kc.start_channels()
        await self.kc.wait_for_ready(timeout=KERNEL_START_TIMEOUT)

    async def silent(self, code):
        """Runs `code` without output or history, waiting until it is done."""
        msg_id = self.kc.execute(code, silent=True, store_history=False, allow_stdin=False)
        if not await self._wait_idle(msg_id, KERNEL_START_TIMEOUT):
            raise HttpError(500, "the %s kernel did not set the env vars in %d s"
                            % (self.language, KERNEL_START_TIMEOUT))

    async def execute(self, code, env, emit, gone):
        """Runs one cell, calling `emit(dict)` per output line; the caller
        writes them. Raises ConnectionError when the client went away (`gone`
        is set, or a write fails): the cell is interrupted then."""
        await self.ready()
        async with self.lock:
            if gone.is_set():
                raise ConnectionResetError("the client went away")
            if env:
                await self.silent(set_env_code(self.language, env))
            try:
                await self._run(code, emit, gone)
            finally:
                if env:
                    await self.silent(reset_env_code(self.language, list(env)))

    async def _run(self, code, emit, gone):
        from queue import Empty
        loop = asyncio.get_running_loop()
        # stop_on_error=False: cells never queue in the kernel (the context's
        # lock runs one at a time), except the next one after an abandoned
        # cell whose interrupt lands late; ipykernel would abort that one,
        # unasked, when the interrupted cell fails.
        msg_id = self.kc.execute(code, store_history=True, allow_stdin=False, stop_on_error=False)
        errored = False
        quiet_since = loop.time()
        try:
            while True:
                try:
                    msg = await self.kc.get_iopub_msg(timeout=POLL)
                except Empty:
                    if gone.is_set():
                        raise ConnectionResetError("the client went away")
                    if loop.time() - quiet_since < KEEPALIVE:
                        continue
                    quiet_since = loop.time()
                    if not await self.km.is_alive():
                        await emit({"type": "error", "name": "ContextRestarting",
                                    "value": "The kernel died (its state is lost) and was restarted",
                                    "traceback": ""})
                        await self.restart()
                        return
                    await emit({"type": "keepalive"})
                    continue
                quiet_since = loop.time()
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                kind, content = msg["msg_type"], msg["content"]
                if kind == "stream":
                    await emit({"type": "stdout" if content.get("name") == "stdout" else "stderr",
                                "text": content.get("text", ""),
                                "timestamp": str(msg["header"].get("date", now_iso()))})
                elif kind == "execute_result":
                    await emit(result_of(content.get("data", {}), True))
                elif kind == "display_data":
                    await emit(result_of(content.get("data", {}), False))
                elif kind == "error":
                    if not errored:
                        errored = True
                        await emit({"type": "error", "name": content.get("ename", ""),
                                    "value": content.get("evalue", ""),
                                    "traceback": "".join(content.get("traceback", []))})
                elif kind == "execute_input":
                    await emit({"type": "number_of_executions",
                                "execution_count": content.get("execution_count")})
                elif is_idle(msg, msg_id):
                    return
        except ConnectionError:
            # The client left (or timed out): stop the cell so the next one runs.
            await self.km.interrupt_kernel()
            await self._wait_idle(msg_id, 10)
            raise

    async def _wait_idle(self, msg_id, seconds):
        """Whether the kernel finished `msg_id` within `seconds`; other
        messages are dropped meanwhile."""
        from queue import Empty
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while loop.time() < end:
            try:
                msg = await self.kc.get_iopub_msg(timeout=1)
            except Empty:
                continue
            if is_idle(msg, msg_id):
                return True
        return False


class Interpreter:
    def __init__(self):
        self.contexts = {}    # id -> Context
        self.defaults = {}    # language -> Context

    async def new_context(self, language, cwd):
        check_language(language)
        if not os.path.isdir(cwd):
            raise HttpError(400, "cwd %s is not a directory in the sandbox" % cwd)
        ctx = Context(language, cwd)
        self.contexts[ctx.id] = ctx
        try:
            await ctx.start()
        except Exception as e:
            self.contexts.pop(ctx.id, None)
            await ctx.stop()
            raise HttpError(500, "the %s kernel failed to start: %s" % (language, e))
        return ctx

    def default(self, language):
        """The language's default context, started on first use."""
        check_language(language)
        ctx = self.defaults.get(language)
        if ctx is None:
            ctx = Context(language, HOME)
            self.defaults[language] = ctx
            self.contexts[ctx.id] = ctx
            asyncio.get_running_loop().create_task(self._start_default(ctx))
        return ctx

    async def _start_default(self, ctx):
        try:
            await ctx.start()
        except Exception as e:
            print("default %s context failed: %s" % (ctx.language, e), file=sys.stderr)
            # Not kept: the next use tries again.
            self.defaults.pop(ctx.language, None)
            self.contexts.pop(ctx.id, None)
            await ctx.stop()

    def find(self, context_id):
        ctx = self.contexts.get(context_id)
        if ctx is None:
            raise HttpError(404, "Context %s not found" % context_id)
        return ctx

    async def remove(self, context_id):
        ctx = self.find(context_id)
        del self.contexts[context_id]
        if self.defaults.get(ctx.language) is ctx:
            del self.defaults[ctx.language]
        await ctx.stop()


# --- HTTP/1.1, just enough for the proxy in front of us -----------------------

class Request:
    def __init__(self, method, path, query, headers, body):
        self.method, self.path, self.query, self.headers, self.body = method, path, query, headers, body
        self.reader = None

    def json(self):
        if not self.body:
            return {}
        try:
            value = json.loads(self.body)
        except ValueError as e:
            raise HttpError(400, "the body is not JSON: %s" % e)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise HttpError(400, "the body must be a JSON object")
        return value


async def discard(reader, n):
    """Reads and drops `n` bytes of a body too large to keep, so that the
    proxy in front delivers our 413 rather than a failed upload; beyond
    DRAIN_MAX the connection is just closed."""
    if n > DRAIN_MAX:
        raise HttpError(413, "the body is limited to %d bytes" % MAX_BODY)
    while n > 0:
        got = await reader.read(min(n, 1 << 16))
        if not got:
            raise asyncio.IncompleteReadError(b"", n)
        n -= len(got)


async def read_request(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    if len(head) > MAX_HEAD:
        raise HttpError(413, "request head too large")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpError(400, "not an HTTP/1.x request")
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    target = parts[1]
    path, _, query = target.partition("?")
    body = b""
    if "content-length" in headers:
        try:
            n = int(headers["content-length"])
        except ValueError:
            raise HttpError(400, "bad content-length")
        if n < 0:
            raise HttpError(400, "bad content-length")
        if n > MAX_BODY:
            await discard(reader, n)
            raise HttpError(413, "the body is limited to %d bytes" % MAX_BODY)
        body = await reader.readexactly(n)
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        chunks = []
        total = 0
        while True:
            size_line = await reader.readuntil(b"\r\n")
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError:
                raise HttpError(400, "bad chunk size")
            total += size
            if total > DRAIN_MAX:
                raise HttpError(413, "the body is limited to %d bytes" % MAX_BODY)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                break
            if total > MAX_BODY:
                chunks = []
                await discard(reader, size + 2)
                continue
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
        if total > MAX_BODY:
            raise HttpError(413, "the body is limited to %d bytes" % MAX_BODY)
        body = b"".join(chunks)
    return Request(parts[0], path, query, headers, body)


class Response:
    def __init__(self, writer):
        self.writer = writer
        self.started = False

    async def send(self, status, body, content_type):
        data = body.encode() if isinstance(body, str) else body
        self.writer.write(("HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n"
                           "connection: close\r\n\r\n" % (status, REASONS.get(status, "Error"),
                                                           content_type, len(data))).encode() + data)
        await self.writer.drain()

    async def json(self, value, status=200):
        await self.send(status, json.dumps(value), "application/json")

    async def text(self, status, message):
        await self.send(status, message, "text/plain; charset=utf-8")

    async def start_stream(self):
        self.started = True
        self.writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\n"
                          b"transfer-encoding: chunked\r\nconnection: close\r\n\r\n")
        await self.writer.drain()

    async def line(self, value):
        try:
            text = json.dumps(value, allow_nan=False)
        except ValueError:
            text = json.dumps(finite(value))  # NaN is not JSON: the SDK would choke on it
        data = (text + "\n").encode()
        self.writer.write(b"%x\r\n%s\r\n" % (len(data), data))
        await self.writer.drain()

    async def end_stream(self):
        self.writer.write(b"0\r\n\r\n")
        await self.writer.drain()


class Server:
    def __init__(self):
        self.interp = Interpreter()
        self.connections = 0

    async def handle(self, reader, writer):
        res = Response(writer)
        self.connections += 1
        try:
            if self.connections > MAX_CONNECTIONS:
                await res.text(503, "too many connections to the code interpreter")
                return
            try:
                req = await asyncio.wait_for(read_request(reader), HEAD_TIMEOUT)
                req.reader = reader
            except HttpError as e:
                await res.text(e.status, e.message)
                return
            except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                return
            try:
                await self.route(req, res)
            except HttpError as e:
                await self.fail(res, e.status, e.message)
            except ConnectionError:
                raise
            except Exception as e:  # a fault of ours: said, never a silent hang-up
                print("interpreter: %s %s failed: %r" % (req.method, req.path, e), file=sys.stderr)
                await self.fail(res, 500, "the code interpreter failed: %r" % e)
        except ConnectionError:
            pass
        finally:
            self.connections -= 1
            try:
                writer.close()
            except Exception:
                pass

    async def fail(self, res, status, message):
        if not res.started:
            return await res.text(status, message)
        await res.line({"type": "error", "name": "InterpreterError", "value": message, "traceback": ""})
        await res.line({"type": "end_of_execution"})
        await res.end_stream()

    async def route(self, req, res):
        path = req.path.rstrip("/") or "/"
        segs = [s for s in path.split("/") if s]
        m = req.method
        if segs == ["health"] and m == "GET":
            return await res.json("OK")
        if segs == ["execute"] and m == "POST":
            return await self.execute(req, res)
        if segs == ["contexts"] and m == "GET":
            return await res.json([c.describe() for c in self.interp.contexts.values()])
        if segs == ["contexts"] and m == "POST":
            body = req.json()
            language = normalize_language(string_field(body, "language"))
            cwd = string_field(body, "cwd") or HOME
            ctx = await self.interp.new_context(language, cwd)
            return await res.json(ctx.describe())
        if len(segs) == 3 and segs[0] == "contexts" and segs[2] == "restart" and m == "POST":
            ctx = self.interp.find(segs[1])
            try:
                await ctx.restart()
            except HttpError:
                raise
            except Exception as e:
                raise HttpError(500, "Failed to restart context %s: %s" % (ctx.id, e))
            return await res.json(None)
        if len(segs) == 2 and segs[0] == "contexts" and m == "DELETE":
            await self.interp.remove(segs[1])
            return await res.json(None)
        if segs and segs[0] in ("health", "execute", "contexts"):
            raise HttpError(405, "%s is not allowed on %s" % (m, req.path))
        raise HttpError(404, "no such endpoint: %s" % req.path)

    async def execute(self, req, res):
        body = req.json()
        code = body.get("code")
        if not isinstance(code, str):
            raise HttpError(400, "code must be a string")
        language = string_field(body, "language")
        context_id = string_field(body, "context_id")
        if language and context_id:
            raise HttpError(400, "Only one of context_id or language can be provided")
        env = body.get("env_vars") or {}
        if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
            raise HttpError(400, "env_vars must be an object of strings")
        for k in env:
            if not ENV_NAME.match(k):
                raise HttpError(400, "env_vars: %r is not a variable name" % k)
        if context_id:
            ctx = self.interp.find(context_id)
        else:
            ctx = self.interp.default(normalize_language(language))
        await ctx.ready()
        await res.start_stream()
        # The client has sent all it will: end of input means it left (the
        # SDK's timeoutMs), and the cell is then interrupted.
        gone = asyncio.Event()
        async def watch():
            try:
                while await req.reader.read(4096):
                    pass
            except Exception:
                pass
            gone.set()
        watcher = asyncio.get_running_loop().create_task(watch())
        try:
            await ctx.execute(code, env, res.line, gone)
        finally:
            watcher.cancel()
        await res.line({"type": "end_of_execution"})
        await res.end_stream()


def finite(value):
    """`value` with NaN and infinities as null."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def string_field(body, name):
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise HttpError(400, "%s must be a string" % name)
    return value


async def main():
    # Our kernelspecs (bash) beside this file, after the system's.
    here = os.path.dirname(os.path.abspath(__file__))
    os.environ["JUPYTER_PATH"] = ":".join(p for p in (os.environ.get("JUPYTER_PATH"), here) if p)
    server = Server()
    # Listen first: the sandbox counts as started once this port answers; the
    # default Python kernel warms up meanwhile and /execute waits for it.
    listener = await asyncio.start_server(server.handle, "0.0.0.0", PORT,
                                          limit=MAX_HEAD, reuse_address=True)
    server.interp.default("python")
    async with listener:
        await listener.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
