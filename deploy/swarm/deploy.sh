#!/usr/bin/env bash
# Deploy the stack to a Docker Swarm, or roll out a change to it:
#
#   deploy/swarm/deploy.sh STACK [EXTRA_COMPOSE_FILE...]
#
# Swarm configs never change, so each version of gateway.yaml (GATEWAY_CONFIG_DIR and
# GATEWAY_CONFIG_FILE, as for compose), of deploy/swarm/prometheus.yml and of the alert rules
# (config/prometheus/alerts.yml) becomes a config
# named after its content. Deploying an edited gateway.yaml therefore creates a new config and
# rolls the gateway tasks over to it, start-first, failing no request; deploying unchanged
# files changes nothing. The config is checked with `gateway check` first, so a broken edit
# stops here with its file, line and column instead of at the rollout's health check.
#
# Before the first deploy: images built (`docker compose build`, or pushed to a registry the
# nodes can reach), the JWT signing key created as a secret, and a node labelled for the
# data (deploy/README.md has the commands). RESOLVE_IMAGE=never skips asking a registry for
# image digests, for images that exist only on this node.
set -euo pipefail
cd "$(dirname "$0")/../.."
stack="${1:?usage: deploy/swarm/deploy.sh STACK [EXTRA_COMPOSE_FILE...]}"
shift

config_dir="$(cd "${GATEWAY_CONFIG_DIR:-.}" && pwd)"
config_file="${GATEWAY_CONFIG_FILE:-gateway.yaml}"
image="${GATEWAY_IMAGE:-todo-stack/gateway:dev}"
if docker image inspect "$image" >/dev/null 2>&1; then
  docker run --rm --network none -v "$config_dir:/etc/gateway:ro" "$image" \
    check "/etc/gateway/$config_file" >/dev/null
fi

version_of() { sha256sum "$1" | cut -c 1-16; }
export STACK_NAME="$stack"
GATEWAY_CONFIG_VERSION="$(version_of "$config_dir/$config_file")"
PROMETHEUS_CONFIG_VERSION="$(version_of deploy/swarm/prometheus.yml)"
PROMETHEUS_ALERTS_VERSION="$(version_of config/prometheus/alerts.yml)"
export GATEWAY_CONFIG_VERSION PROMETHEUS_CONFIG_VERSION PROMETHEUS_ALERTS_VERSION

files=(-c docker-compose.yml -c deploy/swarm/stack.yml)
for extra in "$@"; do files+=(-c "$extra"); done
exec docker stack deploy --resolve-image "${RESOLVE_IMAGE:-always}" "${files[@]}" "$stack"
