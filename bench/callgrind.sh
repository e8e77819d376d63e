#!/usr/bin/env bash
# User-space instructions per proxied request, counted by callgrind (deterministic: the
# count does not move with the machine's noise, unlike time).
#
#   bench/callgrind.sh [GATEWAY_BIN] [SECONDS]          the gateway alone
#   bench/callgrind.sh --compare [GATEWAY_BIN] [SECONDS] the gateway and nginx, and the goal
#
# The proxy under test (one worker) forwards to an nginx that answers 19 bytes; wrk warms it
# up with instrumentation off, then instrumentation goes on for SECONDS (default 20) of
# `wrk -t1 -c16` and the total is divided by the requests wrk completed. nginx as the proxy
# runs as one process (`master_process off`) with upstream keep-alive, as in `bench proxy`.
# Prints one line per proxy:
#   <instructions per request> <requests> <proxy>
# and with --compare a last line with the issue's goal (gateway <= 2x nginx) and its verdict.
# With CALLGRIND_OUT=DIR the profiles are copied there, for `callgrind_annotate DIR/FILE`.
# Needs valgrind, nginx and wrk (scripts/install-deps.sh test installs them).
set -euo pipefail

compare=false
if [[ "${1:-}" == "--compare" ]]; then
  compare=true
  shift
fi
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
upstream=$(free_port)

# nginx_conf NAME HTTP_BLOCK [MAIN_DIRECTIVE]: one worker, its log and pid under $dir.
nginx_conf() {
  cat >"$dir/$1.conf" <<CONF
daemon off;
${3:-}
worker_processes 1;
error_log $dir/$1.err;
pid $dir/$1.pid;
events { worker_connections 1024; }
http {
  access_log off;
  $2
}
CONF
}

nginx_conf upstream "server { listen 127.0.0.1:$upstream; location / { return 200 \"hello from nginx!!\\n\"; } }"
nginx -c "$dir/upstream.conf" -p "$dir" &
pids+=($!)

# measure NAME PID URL: warm up, count SECONDS of load, print the line.
measure() {
  local name=$1 pid=$2 url=$3 requests total ir
  curl -sf "$url" >/dev/null
  wrk -t1 -c16 -d5s "$url" >/dev/null
  callgrind_control -i on "$pid" >/dev/null 2>&1
  callgrind_control -z "$pid" >/dev/null 2>&1
  requests=$(wrk -t1 -c16 -d"${seconds}s" "$url" | awk '/requests in/ {print $1}')
  callgrind_control -d "$pid" >/dev/null 2>&1
  callgrind_control -i off "$pid" >/dev/null 2>&1
  total=0
  for f in "$dir/$name".callgrind.out*; do
    ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$f")
    total=$((total + ${ir:-0}))
  done
  if [[ -n "${CALLGRIND_OUT:-}" ]]; then
    mkdir -p "$CALLGRIND_OUT" && cp "$dir/$name".callgrind.out* "$CALLGRIND_OUT"/
  fi
  echo "$((total / requests)) $requests $name"
}

wait_ready() {
  for _ in $(seq 600); do
    curl -sf "$1" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "not ready: $1" >&2
  return 1
}

http=$(free_port) admin=$(free_port)
cat >"$dir/gateway.yaml" <<CONF
server: { threads: 1 }
listeners: { http: "127.0.0.1:$http", admin: "127.0.0.1:$admin" }
pools:
  u: { endpoints: ["127.0.0.1:$upstream"] }
routes:
  - { name: all, match: { path_prefix: / }, pool: u }
CONF
RUST_LOG=warn valgrind --tool=callgrind --instr-atstart=no \
  --callgrind-out-file="$dir/gateway.callgrind.out" "$gateway" --config "$dir/gateway.yaml" \
  >"$dir/gateway.log" 2>&1 &
gw=$!
pids+=($gw)
wait_ready "http://127.0.0.1:$admin/readyz"
gateway_line=$(measure gateway "$gw" "http://127.0.0.1:$http/")
echo "$gateway_line $gateway"
kill "$gw" 2>/dev/null || true

if $compare; then
  proxy=$(free_port)
  nginx_conf proxy "upstream up { server 127.0.0.1:$upstream; keepalive 1024; }
  server {
    listen 127.0.0.1:$proxy;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
  }" "master_process off;"
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$dir/nginx.callgrind.out" \
    nginx -c "$dir/proxy.conf" -p "$dir" >"$dir/proxy.log" 2>&1 &
  ngx=$!
  pids+=($ngx)
  wait_ready "http://127.0.0.1:$proxy/"
  nginx_line=$(measure nginx "$ngx" "http://127.0.0.1:$proxy/")
  echo "$nginx_line"
  g=${gateway_line%% *} n=${nginx_line%% *}
  awk -v g="$g" -v n="$n" 'BEGIN {
    r = g / n
    printf "- instructions per proxied request: gateway %d vs nginx %d = %.2fx (goal <= 2x: %s)\n",
      g, n, r, (r <= 2.0 ? "met" : "missed")
  }'
fi
