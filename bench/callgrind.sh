#!/usr/bin/env bash
# User-space instructions per proxied request of a gateway binary, counted by callgrind
# (deterministic: the count does not move with the machine's noise, unlike time).
#
#   bench/callgrind.sh [GATEWAY_BIN] [SECONDS]
#
# The gateway (one worker thread) proxies to an nginx that answers 19 bytes; wrk warms it
# up with instrumentation off, then instrumentation goes on for SECONDS (default 20) of
# `wrk -t1 -c16` and the total is divided by the requests wrk completed. Prints one line:
#   <instructions per request> <requests> <binary>
# Needs valgrind, nginx and wrk (scripts/install-deps.sh test installs them).
set -euo pipefail

gateway="${1:-target/dist/gateway}"
seconds="${2:-20}"
dir=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
upstream=$(free_port) http=$(free_port) admin=$(free_port)

cat >"$dir/nginx.conf" <<CONF
daemon off;
worker_processes 1;
error_log $dir/nginx.err;
pid $dir/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  server { listen 127.0.0.1:$upstream; location / { return 200 "hello from nginx!!\n"; } }
}
CONF
nginx -c "$dir/nginx.conf" -p "$dir" &
pids+=($!)

cat >"$dir/gateway.yaml" <<CONF
server: { threads: 1 }
listeners: { http: "127.0.0.1:$http", admin: "127.0.0.1:$admin" }
pools:
  u: { endpoints: ["127.0.0.1:$upstream"] }
routes:
  - { name: all, match: { path_prefix: / }, pool: u }
CONF
RUST_LOG=warn valgrind --tool=callgrind --instr-atstart=no \
  --callgrind-out-file="$dir/callgrind.out" "$gateway" --config "$dir/gateway.yaml" \
  >"$dir/gateway.log" 2>&1 &
gw=$!
pids+=($gw)

for _ in $(seq 600); do
  curl -sf "http://127.0.0.1:$admin/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$http/" >/dev/null

wrk -t1 -c16 -d5s "http://127.0.0.1:$http/" >/dev/null
callgrind_control -i on "$gw" >/dev/null 2>&1
callgrind_control -z "$gw" >/dev/null 2>&1
requests=$(wrk -t1 -c16 -d"${seconds}s" "http://127.0.0.1:$http/" | awk '/requests in/ {print $1}')
callgrind_control -d "$gw" >/dev/null 2>&1
callgrind_control -i off "$gw" >/dev/null 2>&1

total=0
for f in "$dir"/callgrind.out*; do
  ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$f")
  total=$((total + ${ir:-0}))
done
echo "$((total / requests)) $requests $gateway"
