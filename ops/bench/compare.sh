#!/usr/bin/env bash
# sandboxd beside raw crun and podman, interleaved rounds (default 30), same
# template rootfs: create, create -> first exec, pause, resume, kill, and N
# concurrent creates (COMPARE_BURST, default 50). Installs podman with apt-get
# when missing (COMPARE_PODMAN=0 skips it). Needs a build and the base
# template: run ./ops/test or ./ops/run once first.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
SANDBOXD_BIN="${SANDBOXD_BIN:-$root/build/sandboxd}" exec python3 "$root/ops/bench/compare.py" "$@"
