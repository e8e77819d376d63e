#!/usr/bin/env bash
# Every check CI runs, in order: install prerequisites, format, lint, validate the committed
# gateway configs, then all workspace tests (unit and end-to-end on loopback sockets).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh test

target_dir="${CARGO_TARGET_DIR:-$PWD/target}"

echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo machete (no unused dependencies)"
cargo machete gateway backend tests bench fuzz  # vendor/ is Pingora's own code
echo "== cargo deny (licenses, bans, duplicate versions as warnings, sources: deny.toml)"
cargo deny --log-level error check bans licenses sources
cargo deny check bans 2>&1 | grep -o "duplicate entries for crate '[^']*'" | sed 's/^/warning: /' || true
# The advisory database lives on GitHub; CI machines without a route there say so plainly.
if cargo deny fetch db >/dev/null 2>&1; then
  cargo deny check advisories
else
  echo "advisories: not checked, the RustSec database (github.com/RustSec/advisory-db) cannot be fetched here"
fi
echo "== build binaries"
cargo build --workspace --bins
echo "== gateway check, and the schema editors use (config/gateway.schema.json)"
gateway_configs=(gateway.yaml config/gateway/*.yaml deploy/kubernetes/base/gateway.yaml)
for config in "${gateway_configs[@]}"; do
  "$target_dir/debug/gateway" check "$config" >/dev/null
  echo "ok: $config"
done
# The committed schema is current (tests/src/tests/generated.rs) and agrees with gateway check on a
# table of broken files (tests/src/tests/config_schema.rs); here every committed config.
"${GATEWAY_VENV:-/var/tmp/gateway-venv}/bin/check-jsonschema" --schemafile config/gateway.schema.json "${gateway_configs[@]}"
echo "== Kubernetes manifests (render and validate offline)"
scripts/check-k8s.sh
echo "== benchmark smoke run (seconds; numbers are not asserted or kept)"
smoke_out=$(mktemp -d)
"$target_dir/debug/bench" proxy --smoke --out "$smoke_out"
"$target_dir/debug/bench" e2e --smoke --out "$smoke_out"
rm -rf "$smoke_out"
echo "== testssl.sh against the HTTPS listener (fast mode; scripts/testssl.sh for the full scan)"
scripts/testssl.sh --fast
echo "== docker engine (the compose test needs one; without one it prints SKIP)"
dockerd_pid=""
if command -v dockerd >/dev/null && ! docker info >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
  dockerd_log=$(mktemp)
  dockerd >"$dockerd_log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  echo "started dockerd (pid $dockerd_pid, log $dockerd_log)"
fi
stop_dockerd() { if [ -n "$dockerd_pid" ]; then kill "$dockerd_pid" 2>/dev/null || true; fi; }
trap stop_dockerd EXIT
docker info >/dev/null 2>&1 && echo "docker: $(docker version --format '{{.Server.Version}}')" || echo "docker: none"

echo "== tests"
log=$(mktemp)
set +e
GATEWAY_BIN="$target_dir/debug/gateway" cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole workspace (cargo prints one per test binary).
passed=$(grep -Eo '[0-9]+ passed' "$log" | awk '{s += $1} END {print s + 0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s += $1} END {print s + 0}')
rm -f "$log"
echo "tests: $passed passed, $failed failed"
exit "$status"
