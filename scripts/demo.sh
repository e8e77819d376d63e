#!/usr/bin/env bash
# The gateway in front of three local upstreams (config/gateway/local.yaml), no Docker.
# Ctrl-C stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# The whole workspace: the selection every entry point builds, so the next one costs seconds.
cargo build --release --workspace --bins
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

names=(a b c)
for i in 0 1 2; do
  "$target_dir/release/upstream" --listen "127.0.0.1:808$((i + 1))" --name "${names[$i]}" &
  pids+=($!)
done
"$target_dir/release/gateway" --config config/gateway/local.yaml &
pids+=($!)

cat <<MSG
gateway ready at http://127.0.0.1:8080   (admin: http://127.0.0.1:9091/metrics)
try:  for i in 1 2 3 4 5 6; do curl -s -D- -o/dev/null http://127.0.0.1:8080/echo/hi | grep -i x-upstream; done
      kill ${pids[1]}   # stop upstream b: requests keep succeeding on a and c
MSG
wait "${pids[-1]}"
