#!/usr/bin/env bash
# Prints what the egress proxy (network.rules) adds to a sandbox's HTTPS
# request (default 200 requests each way). Needs root, a build and the base
# template: run ./ops/test or ./ops/run once first.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
SANDBOXD_BIN="${SANDBOXD_BIN:-$root/build/sandboxd}" exec python3 "$root/ops/bench/egress.py" "$@"
