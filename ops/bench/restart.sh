#!/usr/bin/env bash
# Restart with a long log: LIVE sandboxes (default 1000) plus EVENTS events of
# ended sandboxes (default 1,000,000): time to the first answer and until every
# live sandbox is reconciled. Needs a build and the base template.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
[[ -x "$root/build/log_fill" ]] || cmake --build "$root/build" --target log_fill
SANDBOXD_BIN="${SANDBOXD_BIN:-$root/build/sandboxd}" exec python3 "$root/ops/bench/restart.py" "$@"
