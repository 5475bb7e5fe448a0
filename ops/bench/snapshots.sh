#!/usr/bin/env bash
# Prints pause/resume latency with 256 MiB of touched memory, snapshot,
# create-from-snapshot and fork times. Needs a build and the base template.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
SANDBOXD_BIN="${SANDBOXD_BIN:-$root/build/sandboxd}" exec python3 "$root/ops/bench/snapshots.py" "$@"
