#!/usr/bin/env bash
# Prints what HTTPS (serve --tls-cert/--tls-key) costs against plain HTTP on
# the API and envd listeners, and an API request's latency while silent
# clients hold handshakes open. Needs root, a build and the base template:
# run ./ops/test or ./ops/run once first.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
SANDBOXD_BIN="${SANDBOXD_BIN:-$root/build/sandboxd}" exec python3 "$root/ops/bench/tls.py" "$@"
