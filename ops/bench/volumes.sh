#!/usr/bin/env bash
# Volumes benchmark: starts a throw-away sandboxd through tests/sdk/run.sh
# (free ports, temp data dir, full cleanup) and runs ops/bench/volumes.mjs
# against it. Figures only. Env: RUNS (10), MB (64).
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RUN_SCRIPT="$HERE/volumes.mjs" exec "$HERE/../../tests/sdk/run.sh" "$@"
