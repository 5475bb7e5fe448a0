#!/usr/bin/env bash
# SDK latency benchmark: starts a throw-away sandboxd through tests/sdk/run.sh
# (free ports, temp data dir, full cleanup) and runs ops/bench/sdk_run.mjs
# against it. Figures only. Env knobs: RUNS, WARMUP, CREATES, FILE_RUNS,
# SANDBOXD_BIN (see tests/sdk/run.sh).
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RUN_SCRIPT="$HERE/sdk_run.mjs" exec "$HERE/../../tests/sdk/run.sh" "$@"
