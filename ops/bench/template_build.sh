#!/usr/bin/env bash
# Template.build benchmark: starts a throw-away sandboxd through
# tests/sdk/run.sh (free ports, temp data dir, full cleanup) and runs
# ops/bench/template_build.mjs against it. Figures only. Env: RUNS (3).
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RUN_SCRIPT="$HERE/template_build.mjs" exec "$HERE/../../tests/sdk/run.sh" "$@"
