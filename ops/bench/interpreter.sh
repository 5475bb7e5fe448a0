#!/usr/bin/env bash
# Code interpreter benchmark: a throw-away sandboxd through tests/sdk/run.sh
# (free ports, temp data dir, full cleanup) running ops/bench/interpreter.mjs.
# Figures only. Env knobs: CREATES, RUNS, SANDBOXD_BIN (see tests/sdk/run.sh).
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RUN_SCRIPT="$HERE/interpreter.mjs" exec "$HERE/../../tests/sdk/run.sh" "$@"
