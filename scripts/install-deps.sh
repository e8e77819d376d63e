#!/usr/bin/env bash
# Installs what a task needs on a fresh Debian machine; a no-op for what is present.
#   scripts/install-deps.sh          build and run the stack (scripts/stack.sh, scripts/demo.sh)
#   scripts/install-deps.sh image    ... and build local base images (scripts/compose-local.sh)
#   scripts/install-deps.sh test     ... and everything CI runs (scripts/test.sh, bench/)
#
# build and run:
#   the toolchain pinned in rust-toolchain.toml, with rustfmt and clippy
#   cmake, cc     Pingora builds zlib-ng through cmake; ring and zstd need a C compiler
#   redis-server  the stack and the tests start their own (limits, the backend's cache and queue)
#   postgresql    server binaries (initdb, postgres) for the stack's and the tests' own PostgreSQL
# image:
#   debootstrap   builds the base images from Debian packages (the engine has no registry)
# test, in addition:
#   promtool      (package prometheus) checks the gateway's /metrics output
#   nginx-light haproxy wrk   the benchmark (bench/) compares the gateway with them
#   openssl curl  the HTTPS tests make certificates and speak TLS, HTTP/2 with real clients
#   testssl.sh    scans the HTTPS listener (scripts/testssl.sh)
#   pebble        Let's Encrypt's ACME test server: the ACME tests obtain and renew certificates
#   nghttp2-client  h2load: the benchmark's HTTP/2 and TLS handshake rows
#   chromium      a real browser: the CORS test loads pages in headless Chromium
#   cargo-machete, cargo-deny  unused dependencies; licenses, bans and sources (deny.toml)
#   scripts/python-tools.txt (PyPI, in a venv at $GATEWAY_VENV, default /var/tmp/gateway-venv):
#                 kubernetes-validate (the rendered Kubernetes manifests, offline; kubectl,
#                 which renders them with its kustomize, must be installed already),
#                 check-jsonschema (gateway configs against their schema), and the tools
#                 that check the backend's OpenAPI document
set -euo pipefail
cd "$(dirname "$0")/.."

want="${1:-run}"
case "$want" in
  run | image | test) ;;
  *)
    echo "usage: $0 [run|image|test]" >&2
    exit 2
    ;;
esac

missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v cc >/dev/null || missing+=(build-essential)
command -v redis-server >/dev/null || missing+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
if [ "$want" != run ]; then
  command -v debootstrap >/dev/null || missing+=(debootstrap)
fi
if [ "$want" = test ]; then
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v nginx >/dev/null || missing+=(nginx-light)
  command -v haproxy >/dev/null || missing+=(haproxy)
  command -v wrk >/dev/null || missing+=(wrk)
  command -v testssl >/dev/null || missing+=(testssl.sh)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v curl >/dev/null || missing+=(curl)
  command -v pebble >/dev/null || missing+=(pebble)
  command -v h2load >/dev/null || missing+=(nghttp2-client)
  command -v chromium >/dev/null || missing+=(chromium fonts-dejavu-core)
fi

if ((${#missing[@]})); then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The pinned toolchain. rustup fetches it where it can; on a machine whose rustup cannot reach
# its server but whose installed toolchain is that very release, the installed one is linked
# under the pinned name (rustup refuses `toolchain link` for official-looking names).
pinned=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
if ! rustup toolchain list | grep -q "^$pinned-"; then
  if ! rustup toolchain install "$pinned" --profile minimal -c rustfmt -c clippy >/dev/null 2>&1; then
    home="${RUSTUP_HOME:-$HOME/.rustup}"
    stable_dir=$(ls -d "$home"/toolchains/stable-* 2>/dev/null | head -n1)
    if [ -n "$stable_dir" ] && "$stable_dir/bin/rustc" --version | grep -q "^rustc $pinned "; then
      ln -s "$stable_dir" "$home/toolchains/$pinned-${stable_dir##*/stable-}"
      echo "toolchain $pinned: linked to the installed stable"
    else
      echo "toolchain $pinned (rust-toolchain.toml) is neither installed nor installable" >&2
      exit 1
    fi
  fi
fi
# rustfmt and clippy ship with the machine's toolchain; add them if this one lacks them.
cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy

if [ "$want" = test ]; then
  command -v cargo-machete >/dev/null || cargo install --locked cargo-machete
  command -v cargo-deny >/dev/null || cargo install --locked cargo-deny
fi

if [ "$want" = test ]; then
  # The PyPI tools of scripts/python-tools.txt, reinstalled when that list changes.
  venv="${GATEWAY_VENV:-/var/tmp/gateway-venv}"
  if ! cmp -s scripts/python-tools.txt "$venv/python-tools.txt"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/python-tools.txt
    cp scripts/python-tools.txt "$venv/python-tools.txt"
  fi
  command -v kubectl >/dev/null || {
    echo "kubectl is missing: scripts/check-k8s.sh renders the Kubernetes overlays with it" >&2
    exit 1
  }
fi
