# Shared set-up for ops/run and ops/test: install what is missing, prepare
# the host for crun, build, and build the default templates. Idempotent.
set -euo pipefail

SANDBOXD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${SANDBOXD_BUILD_DIR:-$SANDBOXD_ROOT/build}"

say() { printf '\033[1m[sandboxd]\033[0m %s\n' "$*" >&2; }

# Debian 12 packages only.
PACKAGES=(
  build-essential cmake pkg-config git
  libcaf-dev librocksdb-dev libpistache-dev libcereal-dev libspdlog-dev
  libgtest-dev libgmock-dev nlohmann-json3-dev libssl-dev libcurl4-openssl-dev
  libmicrohttpd-dev zlib1g-dev libnftables-dev libmnl-dev libseccomp-dev
  crun mmdebstrap python3 curl ca-certificates libjs-chart.js
  nftables iproute2 e2fsprogs runsc
)

install_packages() {
  if [ "$(id -u)" != 0 ]; then
    say "run as root: sandboxd creates containers, mounts and cgroups"
    exit 1
  fi
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  fi
}

# crun refuses cgroup v1+v2 hybrid layouts while any controller is attached to
# the v2 hierarchy. This host change moves each such controller (on the
# machines seen so far: only hugetlb) to a v1 hierarchy of its own. It lasts
# until reboot and touches nothing else.
prepare_host() {
  modprobe overlay 2>/dev/null || true
  local unified=/sys/fs/cgroup/unified
  if [ -f "$unified/cgroup.controllers" ]; then
    for ctrl in $(cat "$unified/cgroup.controllers"); do
      if ! mountpoint -q "/sys/fs/cgroup/$ctrl"; then
        say "host change: mounting cgroup v1 controller '$ctrl' at /sys/fs/cgroup/$ctrl (crun needs no controllers on the v2 hierarchy)"
        mkdir -p "/sys/fs/cgroup/$ctrl"
        mount -t cgroup -o "$ctrl" cgroup "/sys/fs/cgroup/$ctrl"
      fi
    done
  fi
  # Sandboxes reach the network through the host (veth + NAT): forwarding
  # on, for the running system only (nothing written to /etc/sysctl.d).
  if [ "$(cat /proc/sys/net/ipv4/ip_forward)" != 1 ]; then
    say "host change: net.ipv4.ip_forward=1 (sandbox egress is routed and NATed by this host; until reboot)"
    echo 1 > /proc/sys/net/ipv4/ip_forward
  fi
  mkdir -p /var/cache/sandboxd/templates
}

# The test clients: the official E2B JS SDK from npm (tests/sdk, pinned by
# its package-lock.json). Node comes from apt when the machine has none.
install_test_clients() {
  # tmux drives `sandboxd sandbox shell` (tests/e2e/test_cli.py); headless
  # Chromium drives the web console (tests/e2e/test_console.py).
  local missing=()
  command -v tmux >/dev/null || missing+=(tmux)
  command -v chromium >/dev/null || missing+=(chromium)
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing the test clients: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  ensure_npm
  if [ ! -d "$SANDBOXD_ROOT/tests/sdk/node_modules/@e2b/code-interpreter" ]; then
    say "installing the E2B SDK test client (npm ci)"
    (cd "$SANDBOXD_ROOT/tests/sdk" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

# Node and npm from apt when the machine has none.
ensure_npm() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    say "installing nodejs and npm"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
}

# The console's browser libraries (xterm.js), pinned with their integrity by
# http/console/vendor/package-lock.json, fetched from npm into the build dir;
# CMake builds them into the binary. Fetched again only when the lock changes.
vendor_console_libs() {
  local src="$SANDBOXD_ROOT/http/console/vendor" dst="$BUILD_DIR/console-vendor"
  if [ -d "$dst/node_modules" ] && cmp -s "$src/package-lock.json" "$dst/package-lock.json"; then
    return
  fi
  ensure_npm
  export_npm_config
  say "fetching the console's browser libraries (npm ci)"
  rm -rf "$dst"
  mkdir -p "$dst"
  cp "$src/package.json" "$src/package-lock.json" "$dst/"
  (cd "$dst" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
}

build() {
  vendor_console_libs
  say "building into $BUILD_DIR"
  cmake -S "$SANDBOXD_ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD_DIR" -j"$(nproc)"
}

# Run steps (npm install -g) reach the npm registry as this host does: its
# npm registry, proxy and CA settings go to template builds explicitly (those
# of `template build` and those a server makes with --build-templates).
export_npm_config() {
  if command -v npm >/dev/null; then
    local key value
    for key in registry proxy https-proxy cafile strict-ssl; do
      value="$(npm config get "$key" 2>/dev/null || true)"
      if [ -n "$value" ] && [ "$value" != null ] && [ "$value" != undefined ]; then
        export "npm_config_${key//-/_}=$value"
      fi
    done
  fi
}

# build_templates NAME|all
build_templates() {
  say "building template(s) $1 (cached in /var/cache/sandboxd/templates)"
  export_npm_config
  "$BUILD_DIR/sandboxd" template build "$1"
}

setup() {
  install_packages
  prepare_host
  build
}
