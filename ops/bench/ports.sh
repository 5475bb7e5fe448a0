#!/usr/bin/env bash
# Prints what the port proxy adds to a small GET (default 500 requests).
# Needs a build and the base template: run ./ops/test or ./ops/run once first.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
SANDBOXD_BIN="${SANDBOXD_BIN:-$root/build/sandboxd}" exec python3 "$root/ops/bench/ports.py" "$@"
