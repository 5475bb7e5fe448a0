#!/usr/bin/env bash
# Durable event appends/s and acknowledgement latency through the event log
# actor, for 1, 8 and 32 concurrent writers (each waits for its ack), on a
# fresh RocksDB in a temporary directory on the data disk.
# Usage: ops/bench/event_log.sh [events_per_writer=1000]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${EVENT_LOG_BENCH:-$root/build/event_log_bench}"
[[ -x "$bin" ]] || cmake --build "$root/build" --target event_log_bench
n="${1:-1000}"
for writers in 1 8 32; do
  dir="$(mktemp -d "${TMPDIR:-/var/tmp}/sandboxd-bench-log.XXXXXX")"
  trap 'rm -rf "$dir"' EXIT
  "$bin" "$dir/db" "$writers" "$n"
  rm -rf "$dir"
done
