#!/usr/bin/env bash
# Installs what building and testing need on a fresh Debian machine; a no-op when present.
#   cmake      Pingora builds zlib-ng through it
#   promtool   (package prometheus) checks the gateway's /metrics output in the tests
#   redis-server  the tests start their own (rate limits, the backend's cache and queue)
#   postgresql    server binaries (initdb, postgres) for the backend tests' own PostgreSQL
#   nginx-light haproxy wrk   the benchmark (bench/) compares the gateway with them
#   debootstrap   the compose test builds its base image from Debian packages (no registry)
set -euo pipefail

missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v promtool >/dev/null || missing+=(prometheus)
command -v redis-server >/dev/null || missing+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v cc >/dev/null || missing+=(build-essential)
command -v nginx >/dev/null || missing+=(nginx-light)
command -v haproxy >/dev/null || missing+=(haproxy)
command -v wrk >/dev/null || missing+=(wrk)
command -v debootstrap >/dev/null || missing+=(debootstrap)

if ((${#missing[@]})); then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# rustfmt and clippy ship with the machine's toolchain; add them if this one lacks them.
cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy

# cargo-machete finds dependencies a crate declares but never uses (CI fails on one).
command -v cargo-machete >/dev/null || cargo install --locked cargo-machete
