#!/usr/bin/env bash
# Prints the console terminal's open time, keystroke echo latency and output
# throughput beside `crun exec -t` into the same sandbox. Needs root, a build
# and the base template: run ./ops/test or ./ops/run once first.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
SANDBOXD_BIN="${SANDBOXD_BIN:-$root/build/sandboxd}" exec python3 -u "$root/ops/bench/terminal.py" "$@"
