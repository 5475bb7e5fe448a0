"""Restart with a long log: N live sandboxes (default 1000) plus M events of
ended sandboxes (default 1,000,000, appended to the stopped server's store by
build/log_fill), then a restart. Prints the time from the new process's start
to its first 200 on GET /sandboxes and until every live sandbox is reconciled
(the server's own log line), its RSS, and an exec in the first and last
sandbox. Prints figures; asserts nothing."""
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "e2e"))
sys.path.insert(0, os.path.dirname(__file__))
from harness import BIN, Server  # noqa: E402
from create import rss_kib  # noqa: E402

FILL = os.environ.get("LOG_FILL", os.path.join(os.path.dirname(BIN), "log_fill"))


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    m = int(sys.argv[2]) if len(sys.argv) > 2 else 1000000
    server = Server(["--max-sandboxes", str(n + 100), "--max-sandboxes-per-org", str(n + 100),
                     "--warm-pool", "0"])
    try:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(lambda _: server.create(timeout=3600), range(n)))
        print(f"{n} live sandboxes created in {time.perf_counter() - t0:.1f} s")
        org = server.events(ids[0])[0]["sandboxTeamId"]
        server.stop()
        t0 = time.perf_counter()
        out = subprocess.run([FILL, os.path.join(server.dir, "db"), org, str(m)],
                             capture_output=True, text=True, check=True)
        print(f"{out.stdout.strip()} in {time.perf_counter() - t0:.1f} s")
        for attempt in range(2):
            mark = os.path.getsize(server.log_path)
            t0 = time.perf_counter()
            server.start_async()
            first = None
            while first is None:
                try:
                    if server.request("GET", "/sandboxes", timeout=30).status == 200:
                        first = time.perf_counter() - t0
                except OSError:
                    time.sleep(0.01)
            done = None
            while done is None:
                with open(server.log_path, errors="replace") as f:
                    f.seek(mark)
                    m_ = re.search(r"reconciled \d+ live sandboxes in", f.read())
                if m_:
                    done = time.perf_counter() - t0
                else:
                    time.sleep(0.01)
            print(
                  f"restart {attempt + 1} with {n} live, log of {m + 4 * n} events: first 200 "
                  f"after {first:.2f} s, all reconciled after {done:.2f} s; RSS "
                  f"{rss_kib(server.proc.pid) / 1024:.0f} MiB; exec in the first and last: "
                  f"{server.run(ids[0], 'true').status} {server.run(ids[-1], 'true').status}")
            server.stop()
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
