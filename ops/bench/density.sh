#!/usr/bin/env bash
# Create and kill p50 per block of 50 up to N live sandboxes (default 1000),
# listing throughput, memory per sandbox and the server's RSS.
# Needs a build and the base template: run ./ops/test or ./ops/run once first.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
SANDBOXD_BIN="${SANDBOXD_BIN:-$root/build/sandboxd}" exec python3 "$root/ops/bench/density.py" "$@"
