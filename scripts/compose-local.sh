#!/usr/bin/env bash
# docker compose for an engine that cannot pull images: builds local stand-ins for the public
# images (tests/compose/local-images.sh, debootstrap from this machine's apt mirror) and runs
# compose with tests/compose/local.yml substituting them. Arguments go to compose:
#   scripts/compose-local.sh up -d --scale backend=3
#   scripts/compose-local.sh down -v
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh image
mapfile -t images < <(tests/compose/local-images.sh)
export LOCAL_DEBIAN_IMAGE="${images[0]}" LOCAL_RUST_IMAGE="${images[1]}" LOCAL_POSTGRES_IMAGE="${images[2]}"
if docker compose version >/dev/null 2>&1; then compose=(docker compose); else compose=(docker-compose); fi
exec "${compose[@]}" -f docker-compose.yml -f docker-compose.override.yml -f tests/compose/local.yml "$@"
