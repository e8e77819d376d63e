#!/usr/bin/env bash
# The whole stack without Docker: an ephemeral PostgreSQL and Redis, N backend replicas and
# the gateway running the root gateway.yaml (edits are applied live). Arguments go to the
# `stack` binary: --replicas N (3), --port P (8080), --admin-port P (9091), --config FILE.
# Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
exec cargo run --release --bin stack -- "$@"
