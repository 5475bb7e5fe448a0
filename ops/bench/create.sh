#!/usr/bin/env bash
# Prints create-to-first-exec latency p50/p99 over N sandboxes (default 100).
# Needs a build and the base template: run ./ops/test or ./ops/run once first.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
SANDBOXD_BIN="${SANDBOXD_BIN:-$root/build/sandboxd}" exec python3 "$root/ops/bench/create.py" "$@"
