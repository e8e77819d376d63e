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
echo "== tests"
GATEWAY_BIN="$target_dir/debug/gateway" cargo test --workspace
