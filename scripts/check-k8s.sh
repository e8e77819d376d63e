#!/usr/bin/env bash
# Checks deploy/kubernetes as far as a machine without a cluster can: every overlay renders
# with kubectl's kustomize, and every rendered object validates, strictly (no unknown field),
# against the OpenAPI schemas of a current Kubernetes release, offline. The invariants of the
# rendered objects (probes, non-root, the headless backend Service, the network policies)
# are asserted by tests/src/tests/deploy.rs.
#   scripts/check-k8s.sh [KUBERNETES_VERSION]     (default 1.37.0)
set -euo pipefail
cd "$(dirname "$0")/.."

version="${1:-1.37.0}"
validate="${GATEWAY_VENV:-/var/tmp/gateway-venv}/bin/kubernetes-validate"
[ -x "$validate" ] || { echo "$validate is missing: run scripts/install-deps.sh test" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for overlay in deploy/kubernetes/overlays/*/; do
  name=$(basename "$overlay")
  kubectl kustomize "$overlay" >"$out/$name.yaml"
  "$validate" --strict --quiet --kubernetes-version "$version" "$out/$name.yaml"
  echo "ok: $name ($(grep -c '^kind:' "$out/$name.yaml") objects, Kubernetes $version schemas)"
done
