#!/usr/bin/env bash
# Builds local stand-ins for the public images that docker-compose.yml names, for a Docker
# engine that cannot pull (this project's CI has no image registry):
#
#   stack-local/debian:<suite>   a Debian root filesystem made with debootstrap, from the
#                                machine's own apt mirror, with PostgreSQL, Redis, Prometheus
#                                and the C toolchain Pingora's build needs
#   stack-local/rust:<v>-<lock>  that image plus this machine's Rust toolchain and cargo
#                                registry cache, so `cargo build --locked` works offline
#   stack-local/postgres:<suite> an entrypoint that honours the official image's POSTGRES_*
#
# tests/compose/local.yml substitutes them for the public images. Images that exist are
# reused, so only the first run pays for debootstrap (a few minutes).
#
# Usage: tests/compose/local-images.sh        (prints the three image names, one per line)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

suite="$(. /etc/os-release && echo "${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}")"

# The first mirror this machine's apt sources use for "$suite" (deb822 .sources files or a
# one-line sources.list). Never a host name written here.
mirror_of_apt_sources() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    awk -v suite="$suite" '
      /^[[:space:]]*$/ { if (uri != "" && hit) { print uri; exit } uri = ""; hit = 0; next }
      /^URIs:/ { uri = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) hit = 1 }
      END { if (uri != "" && hit) print uri }
    ' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -e "$f" ] || continue
    awk -v suite="$suite" '
      $1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                    if ($(i + 1) == suite) print $i }
    ' "$f"
  done
}
mirror="$(mirror_of_apt_sources | head -n 1)"
[ -n "$mirror" ] || { echo "local-images: no apt source for $suite found" >&2; exit 1; }

debian="stack-local/debian:$suite"
rust_version="$(rustc --version | awk '{print $2}')"
# The registry cache copied in must hold every crate of this Cargo.lock.
lock_hash="$(sha256sum "$here/../../Cargo.lock" | cut -c 1-12)"
rust="stack-local/rust:$rust_version-$lock_hash"
postgres="stack-local/postgres:$suite"

have() { docker image inspect "$1" >/dev/null 2>&1; }

if ! have "$debian"; then
  rootfs="$(mktemp -d /var/tmp/stack-rootfs.XXXXXX)"
  trap 'rm -rf "$rootfs"' EXIT
  echo "local-images: debootstrap $suite from $mirror (a few minutes)" >&2
  packages=ca-certificates,postgresql,redis-server,prometheus,build-essential,cmake,pkg-config
  debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >&2
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  pgbin="$(ls -d "$rootfs"/usr/lib/postgresql/*/bin | sort | tail -n 1)"
  tar -C "$rootfs" -c . | docker import \
    --change "ENV PATH=/usr/local/cargo/bin:${pgbin#"$rootfs"}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change 'CMD ["bash"]' - "$debian" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
fi

if ! have "$rust"; then
  echo "local-images: $rust from this machine's toolchain" >&2
  ctx="$(mktemp -d /var/tmp/stack-rust.XXXXXX)"
  trap 'rm -rf "$ctx"' EXIT
  sysroot="$(rustc --print sysroot)"
  mkdir -p "$ctx/cargo/registry"
  cp -a "$sysroot/bin" "$sysroot/lib" "$ctx/cargo/"
  cargo_home="${CARGO_HOME:-$HOME/.cargo}"
  # The index and the downloaded crates; sources are unpacked again on use.
  cp -a "$cargo_home/registry/index" "$cargo_home/registry/cache" "$ctx/cargo/registry/"
  cat >"$ctx/Dockerfile" <<EOF
FROM $debian
COPY cargo /usr/local/cargo
ENV CARGO_HOME=/usr/local/cargo CARGO_NET_OFFLINE=true
EOF
  docker build -q -t "$rust" "$ctx" >/dev/null
  # Older toolchain images (another Cargo.lock or rustc) are dead weight of ~2 GB each.
  docker images stack-local/rust --format '{{.Repository}}:{{.Tag}}' | grep -vxF "$rust" \
    | xargs -r docker rmi >/dev/null 2>&1 || true
  rm -rf "$ctx"
  trap - EXIT
fi

if ! have "$postgres"; then
  docker build -q -t "$postgres" --build-arg BASE="$debian" -f "$here/postgres.Dockerfile" "$here" >/dev/null
fi

echo "$debian"
echo "$rust"
echo "$postgres"
