#!/usr/bin/env bash
# Prints webhook delivery figures: backlog drain events/s and live-mode
# event->receiver latency p50/p99, against a sandboxd of its own (removed on exit).
# Needs a build and the base template (./ops/test or ./ops/run once), and root.
# SANDBOXD_BIN / SANDBOXD_AGENT pick the binaries (default: build/sandboxd; the
# agent next to SANDBOXD_BIN, else build/runtime/agent/sandboxd-agent).
# Flags: --sandboxes N (4) --backlog N (2000) --live N (400) --rate R (20/s).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
SANDBOXD_BIN="${SANDBOXD_BIN:-$root/build/sandboxd}"
if [[ -z "${SANDBOXD_AGENT:-}" && ! -x "$(dirname "$SANDBOXD_BIN")/sandboxd-agent" ]]; then
  SANDBOXD_AGENT="$root/build/runtime/agent/sandboxd-agent"
fi
export SANDBOXD_BIN ${SANDBOXD_AGENT:+SANDBOXD_AGENT}
exec python3 "$root/ops/bench/webhooks.py" "$@"
