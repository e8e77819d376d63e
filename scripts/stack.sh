#!/usr/bin/env bash
# The whole stack without Docker: an ephemeral PostgreSQL and Redis, N backend replicas and
# the gateway running the root gateway.yaml (edits are applied live). Arguments go to the
# `stack` binary: --replicas N (3), --port P (8080), --admin-port P (9091), --config FILE.
# Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# The whole workspace: the selection every entry point builds, so the next one costs seconds.
cargo build --release --workspace --bins
exec "${CARGO_TARGET_DIR:-$PWD/target}/release/stack" "$@"
