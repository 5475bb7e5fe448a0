#!/usr/bin/env bash
# Runs the official E2B JS SDK test suite (tests/sdk/*.test.mjs) against a
# fresh sandboxd started on free loopback ports with a data dir of its own.
# Cleans up everything it made (sandboxes, containers, mounts, data dir) on exit.
#
# Usage: tests/sdk/run.sh [test files...]     (default: all *.test.mjs)
# Env:   SANDBOXD_BIN   server binary (default /work/main/build/sandboxd)
#        KEEP_LOG=1     print the server log on exit
#        RUN_SCRIPT=/path/to/script.mjs  run `node $RUN_SCRIPT [args...]` instead of
#                       the test runner (same env, same cleanup; used by ops/bench/sdk_run.sh)
# The tests/script also see SANDBOXD_DATA_DIR (the server's data dir) and
# SANDBOXD_BIN (absolute path of the binary), e.g. for `sandboxd keys create`.
#        SDK_TEST_TIMEOUT  per-test timeout for node --test in ms (default 300000)
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BIN="${SANDBOXD_BIN:-$HERE/../../build/sandboxd}"
OCI=crun

if [[ ! -x "$BIN" ]]; then
  echo "run.sh: sandboxd binary not found at $BIN (build with: cmake --build /work/main/build -j2)" >&2
  exit 2
fi
# e2b 2.51.0 needs Node >= 20.18.1; exit 77 (ctest: skipped) without it.
if ! node -e 'const [a,b,c]=process.versions.node.split(".").map(Number);
  process.exit((a===20&&(b>18||(b===18&&c>=1)))||a>=22?0:1)' 2>/dev/null; then
  echo "run.sh: SKIPPED: the e2b SDK needs Node >= 20.18.1 (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 77
fi
if [[ ! -d "$HERE/node_modules/@e2b/code-interpreter" ]]; then
  (cd "$HERE" && npm ci --no-audit --no-fund >/dev/null) || { echo "run.sh: npm ci failed" >&2; exit 2; }
fi

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

DATA_DIR="$(mktemp -d /tmp/sandboxd-sdk-XXXXXX)"
API_PORT="$(free_port)"
ENVD_PORT="$(free_port)"
while [[ "$ENVD_PORT" == "$API_PORT" ]]; do ENVD_PORT="$(free_port)"; done
LOG="$DATA_DIR/server.log"
SERVER_PID=""
API_KEY=""

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null && [[ -n "$API_KEY" ]]; then
    # Delete every sandbox this server knows about (running and paused).
    local ids
    ids="$(curl -s -m 10 -H "X-API-Key: $API_KEY" \
             "http://127.0.0.1:$API_PORT/sandboxes?status=running,paused" 2>/dev/null |
           node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{for(const x of JSON.parse(s))console.log(x.sandboxID)}catch{}})')"
    for id in $ids; do
      curl -s -m 30 -o /dev/null -X DELETE -H "X-API-Key: $API_KEY" "http://127.0.0.1:$API_PORT/sandboxes/$id" || true
    done
  fi
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$SERVER_PID" 2>/dev/null; then kill -KILL "$SERVER_PID" 2>/dev/null; fi
    wait "$SERVER_PID" 2>/dev/null
  fi
  # Sandboxes left (other orgs', a crashed server's) go the way a kill takes
  # them: container, network, mounts, cgroup, files. Then, should that fail,
  # at least no container or mount stays behind.
  "$BIN" cleanup --data-dir "$DATA_DIR" >/dev/null 2>&1 || true
  local state_root="$DATA_DIR/runtime/state" sandboxes="$DATA_DIR/sandboxes" id
  local -A ids_seen=()
  for d in "$state_root" "$sandboxes"; do
    [[ -d "$d" ]] || continue
    for id in $(ls -A "$d" 2>/dev/null); do ids_seen["$id"]=1; done
  done
  for id in "${!ids_seen[@]}"; do
    "$OCI" --root "$state_root" delete --force "$id" >/dev/null 2>&1 || true
    # The merged root, its idmapped layers, then the disk under them.
    for mnt in rootfs $(cd "$sandboxes/$id/lower" 2>/dev/null && ls -A | sed 's#^#lower/#') disk-mapped disk; do
      if mountpoint -q "$sandboxes/$id/$mnt" 2>/dev/null; then
        umount -l "$sandboxes/$id/$mnt" >/dev/null 2>&1 || true
      fi
    done
    # The merged root's mount point lives under /run (rootfs links there).
    if [[ -L "$sandboxes/$id/rootfs" ]]; then
      local root
      root="$(readlink "$sandboxes/$id/rootfs")"
      rmdir "$root" "$(dirname "$root")" >/dev/null 2>&1 || true
    fi
  done
  for mnt in "$DATA_DIR"/volumes/*/disk; do
    if mountpoint -q "$mnt" 2>/dev/null; then umount -l "$mnt" >/dev/null 2>&1 || true; fi
  done
  local digest
  digest="$(printf '%s' "$(realpath -m "$DATA_DIR")" | sha256sum | cut -c1-12)"
  rmdir "/run/sandboxd/roots/$digest" >/dev/null 2>&1 || true
  if [[ "${KEEP_LOG:-0}" == "1" || $rc -ne 0 ]] && [[ -f "$LOG" ]]; then
    echo "----- sandboxd log (tail) -----" >&2
    tail -n 60 "$LOG" >&2
  fi
  rm -rf "$DATA_DIR"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$BIN" serve --data-dir "$DATA_DIR" ${SANDBOXD_ARGS:-} \
  --api-listen "127.0.0.1:$API_PORT" --envd-listen "127.0.0.1:$ENVD_PORT" --domain sandboxd.test \
  >"$LOG" 2>&1 </dev/null &
SERVER_PID=$!

for _ in $(seq 1 600); do
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "run.sh: sandboxd exited during startup" >&2
    exit 2
  fi
  if [[ -s "$DATA_DIR/api-key" ]] &&
     curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$API_PORT/health" 2>/dev/null | grep -q '^200$'; then
    break
  fi
  sleep 0.1
done
API_KEY="$(tr -d '[:space:]' <"$DATA_DIR/api-key" 2>/dev/null)"
if [[ -z "$API_KEY" ]]; then
  echo "run.sh: sandboxd did not start (no api key)" >&2
  exit 2
fi

export E2B_API_KEY="$API_KEY"
export E2B_API_URL="http://127.0.0.1:$API_PORT"
export E2B_SANDBOX_URL="http://127.0.0.1:$ENVD_PORT"
export E2B_DEBUG=false
unset E2B_DOMAIN E2B_ACCESS_TOKEN
export SANDBOXD_DATA_DIR="$DATA_DIR"
SANDBOXD_BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"
export SANDBOXD_BIN

echo "run.sh: sandboxd pid $SERVER_PID api $E2B_API_URL envd $E2B_SANDBOX_URL data $DATA_DIR" >&2

if [[ -n "${RUN_SCRIPT:-}" ]]; then
  # Path is relative to the caller's cwd. ESM ignores NODE_PATH: a script outside
  # tests/sdk must load the SDK from $SDK_TESTS_DIR/node_modules itself.
  RUN_SCRIPT="$(cd "$(dirname "$RUN_SCRIPT")" && pwd)/$(basename "$RUN_SCRIPT")"
  export SDK_TESTS_DIR="$HERE"
  node "$RUN_SCRIPT" "$@"
  exit $?
fi

cd "$HERE"
if [[ $# -gt 0 ]]; then
  TESTS=("$@")
else
  TESTS=(*.test.mjs)
fi
node --test --test-concurrency=1 --test-timeout="${SDK_TEST_TIMEOUT:-300000}" "${TESTS[@]}"
RC=$?
exit $RC
