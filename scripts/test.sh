#!/usr/bin/env bash
# Every check CI runs, in order: install prerequisites, format, lint, validate the committed
# gateway configs, then all workspace tests (unit and end-to-end on loopback sockets).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

target_dir="${CARGO_TARGET_DIR:-$PWD/target}"

echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== build binaries"
cargo build --workspace --bins
echo "== gateway check"
for config in gateway.yaml config/gateway/*.yaml; do
  "$target_dir/debug/gateway" check "$config" >/dev/null
  echo "ok: $config"
done
echo "== benchmark smoke run (seconds; numbers are not asserted or kept)"
smoke_out=$(mktemp -d)
"$target_dir/debug/bench" proxy --smoke --out "$smoke_out"
rm -rf "$smoke_out"
echo "== tests"
log=$(mktemp)
set +e
GATEWAY_BIN="$target_dir/debug/gateway" cargo test --workspace 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole workspace (cargo prints one per test binary).
passed=$(grep -Eo '[0-9]+ passed' "$log" | awk '{s += $1} END {print s + 0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s += $1} END {print s + 0}')
rm -f "$log"
echo "tests: $passed passed, $failed failed"
exit "$status"
