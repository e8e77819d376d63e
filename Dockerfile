# The gateway and backend images, built from one Rust build stage:
#   docker build --target gateway -t todo-stack/gateway .
#   docker build --target backend -t todo-stack/backend .
# docker-compose.yml builds both. RUST_IMAGE and RUNTIME_IMAGE may name other images:
# tests/compose/local.yml does, for a Docker engine that cannot pull.
ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
# Pingora builds zlib-ng with cmake; the official Rust image lacks it.
RUN command -v cmake >/dev/null \
    || (apt-get update && apt-get install -y --no-install-recommends cmake \
        && rm -rf /var/lib/apt/lists/*)
WORKDIR /src
# Dependencies first, from the manifests alone (with stub sources), so that a change to the
# project's own code rebuilds only its crates, not Pingora and sqlx.
COPY Cargo.toml Cargo.lock ./
COPY gateway/Cargo.toml gateway/
COPY backend/Cargo.toml backend/
COPY tests/Cargo.toml tests/
COPY bench/Cargo.toml bench/
# Pingora crates carried with patches (vendor/pingora/PATCHES.md): dependencies, built here.
COPY vendor vendor
RUN for crate in gateway backend tests bench; do \
        mkdir -p "$crate/src" && touch "$crate/src/lib.rs" && echo 'fn main() {}' >"$crate/src/main.rs"; \
    done \
    && cargo build --profile dist --locked -p gateway -p backend --bins \
    && cargo clean --profile dist -p gateway -p backend \
    && rm -rf gateway/src backend/src tests/src bench/src
COPY gateway gateway
COPY backend backend
# The test harness and the benchmark are workspace members the images never contain: stubs,
# so that editing a test does not rebuild the images.
RUN for crate in tests bench; do \
        mkdir -p "$crate/src" && touch "$crate/src/lib.rs" && echo 'fn main() {}' >"$crate/src/main.rs"; \
    done
# The `dist` profile: release with fat LTO (Cargo.toml says why).
RUN cargo build --profile dist --locked -p gateway -p backend --bins \
    && mkdir /out \
    && cp target/dist/gateway target/dist/backend /out/

# The gateway: runs as an unprivileged user. It binds port 80 without CAP_NET_BIND_SERVICE
# because Docker (20.10 and later) opens ports below 1024 to every user inside a
# container's network namespace (net.ipv4.ip_unprivileged_port_start=0); docker-compose.yml
# sets that sysctl explicitly.
FROM ${RUNTIME_IMAGE} AS gateway
# System roots (ca-certificates) let tls.acme reach Let's Encrypt and pools verify public
# HTTPS upstreams; the local base image has them, the slim one gets them here.
RUN [ -e /etc/ssl/certs/ca-certificates.crt ] \
    || (apt-get update && apt-get install -y --no-install-recommends ca-certificates \
        && rm -rf /var/lib/apt/lists/*)
# /var/lib/gateway/tls belongs to the gateway user, so that a fresh named volume mounted there
# is writable for tls.self_signed and tls.acme.
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin gateway \
    && mkdir -p /var/lib/gateway/tls \
    && chown gateway: /var/lib/gateway/tls \
    && chmod 700 /var/lib/gateway/tls
COPY --from=build /out/gateway /usr/local/bin/gateway
COPY gateway.yaml /etc/gateway/gateway.yaml
USER gateway
EXPOSE 80 443 9091
# No curl in a slim image: bash's /dev/tcp asks the admin listener for /healthz.
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9091 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && head -c 12 <&3 | grep -q ' 200'"]
ENTRYPOINT ["gateway"]
CMD ["--config", "/etc/gateway/gateway.yaml"]

# The backend: the API and its job workers. The signing key is never in the image: it is
# read from JWT_PRIVATE_KEY_FILE (compose generates a dev key into a volume on first start;
# production mounts a secret). /var/lib/todo/keys belongs to the service user so that a
# fresh named volume mounted there is writable by `backend keygen`.
FROM ${RUNTIME_IMAGE} AS backend
RUN useradd --system --uid 10002 --no-create-home --shell /usr/sbin/nologin backend \
    && mkdir -p /var/lib/todo/keys \
    && chown backend: /var/lib/todo/keys \
    && chmod 700 /var/lib/todo/keys
COPY --from=build /out/backend /usr/local/bin/backend
USER backend
ENV PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && head -c 12 <&3 | grep -q ' 200'"]
ENTRYPOINT ["backend"]
