#!/usr/bin/env bash
# A sandbox on a worker node vs one on the control node: create→first exec and
# exec `true` throughput through the control node (cluster.py). Needs a build
# and the base template; makes a bridge and a network namespace, removed after.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
SANDBOXD_BIN="${SANDBOXD_BIN:-$root/build/sandboxd}" exec python3 "$root/ops/bench/cluster.py" "$@"
