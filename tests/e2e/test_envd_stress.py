"""200 concurrent streaming commands over envd, half of whose clients hang
up mid-stream: every stream that runs to the end is complete and in order,
the server stays healthy, and its threads and descriptors come back down."""
import base64
import os
import threading
import time

from harness import Envd, ServerTest, main

STREAMS = 200
LINES = 20


def task_count(pid):
    return len(os.listdir(f"/proc/{pid}/task"))


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class Stress(ServerTest):
    def test_200_concurrent_streams_with_disconnects(self):
        # Two sandboxes, so each stays well inside its pids limit.
        boxes = [Envd(self.server, self.server.request("POST", "/sandboxes",
                                                        {"templateID": "base", "timeout": 600}).json)
                 for _ in range(2)]
        pid = self.server.proc.pid
        time.sleep(0.5)
        tasks0, fds0 = task_count(pid), fd_count(pid)
        script = f"i=0; while [ $i -lt {LINES} ]; do echo line$i; i=$((i+1)); sleep 0.05; done"
        results = [None] * STREAMS
        errors = []
        start = threading.Barrier(STREAMS)

        def worker(n):
            envd = boxes[n % 2]
            hang_up = n % 2 == 1
            try:
                start.wait(30)
                out = b""
                end = None
                stream = envd.stream("process.Process/Start",
                                     {"process": {"cmd": "/bin/sh", "args": ["-c", script]}},
                                     timeout=60)
                for flags, m in stream:
                    ev = m.get("event", {})
                    out += base64.b64decode(ev.get("data", {}).get("stdout", ""))
                    if hang_up and out:
                        stream.close()
                        results[n] = "hung up"
                        return
                    if "end" in ev:
                        end = ev["end"]
                    if flags & 2:
                        assert m == {}, m
                results[n] = (out.decode(), end)
            except Exception as e:  # noqa: BLE001
                errors.append(f"{n}: {e!r}")

        t0 = time.time()
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(STREAMS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        elapsed = time.time() - t0
        self.assertEqual(errors, [])
        expected = "".join(f"line{i}\n" for i in range(LINES))
        complete = [r for r in results if isinstance(r, tuple)]
        self.assertEqual(len(complete), STREAMS // 2)
        for out, end in complete:
            self.assertEqual(out, expected)
            self.assertEqual(end["exitCode"], 0)
        self.assertEqual(results.count("hung up"), STREAMS // 2)
        print(f"\n{STREAMS} concurrent streams in {elapsed:.2f} s")
        # Still healthy, and the per-stream threads and fds are released.
        for envd in boxes:
            out, _, end, _ = envd.run("echo ok")
            self.assertEqual(out, "ok\n")
        deadline = time.time() + 20
        while time.time() < deadline and (task_count(pid) > tasks0 + 8 or fd_count(pid) > fds0 + 8):
            time.sleep(0.5)
        self.assertLessEqual(task_count(pid), tasks0 + 8, "threads not released")
        self.assertLessEqual(fd_count(pid), fds0 + 8, "descriptors not released")


if __name__ == "__main__":
    main()
