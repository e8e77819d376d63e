#!/usr/bin/env bash
# testssl.sh against the gateway's HTTPS listener, with a certificate from a throwaway CA
# (trusted through --add-ca, so the scan judges the gateway rather than a self-signed
# test certificate). Fails on any HIGH or CRITICAL finding.
#   scripts/testssl.sh            the full scan (about a minute)
#   scripts/testssl.sh --fast     what CI runs: testssl's fast mode
# Needs openssl and testssl.sh (scripts/install-deps.sh test installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=()
if [ "${1:-}" = "--fast" ]; then mode=(--fast); fi

target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build -q --bin gateway
work=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# A CA, and a server certificate it signs: ECDSA P-256, one year, with a CRL location.
openssl req -x509 -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 30 \
  -keyout "$work/ca.key" -out "$work/ca.crt" -subj "/CN=gateway testssl CA" 2>/dev/null
openssl req -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
  -keyout "$work/site.key" -out "$work/site.csr" -subj "/CN=example.test" 2>/dev/null
cat >"$work/ext.cnf" <<EXT
subjectAltName=DNS:example.test
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
crlDistributionPoints=URI:http://crl.example.test/ca.crl
EXT
openssl x509 -req -in "$work/site.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" \
  -CAcreateserial -days 365 -extfile "$work/ext.cnf" -out "$work/site.crt" 2>/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
https_port=$(free_port)
cat >"$work/gateway.yaml" <<YAML
listeners: { http: "127.0.0.1:$(free_port)", admin: "127.0.0.1:$(free_port)", https: "127.0.0.1:$https_port" }
tls:
  certificates: [{ cert_file: site.crt, key_file: site.key }]
  hsts: { max_age: 365d }
routes:
  - { match: { path_prefix: / }, respond: { status: 200, body: ok } }
YAML
"$target_dir/debug/gateway" --config "$work/gateway.yaml" >"$work/gateway.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$https_port") 2>/dev/null; then break; fi
  sleep 0.1
done

testssl --quiet --color 0 --warnings off "${mode[@]}" --add-ca "$work/ca.crt" \
  --jsonfile-pretty "$work/testssl.json" --ip 127.0.0.1 "https://example.test:$https_port" \
  >"$work/testssl.txt" 2>&1 || true
python3 - "$work/testssl.json" <<'PY'
import collections, json, sys
findings = [
    f
    for scan in json.load(open(sys.argv[1])).get("scanResult", [])
    for section in scan.values() if isinstance(section, list)
    for f in section if isinstance(f, dict) and "severity" in f
]
if not findings:
    sys.exit("testssl produced no findings: the scan did not run")
counts = collections.Counter(f["severity"] for f in findings)
print("testssl findings by severity:", dict(sorted(counts.items())))
for f in findings:
    if f["severity"] in ("WARN", "LOW", "MEDIUM", "HIGH", "CRITICAL"):
        print(f"  {f['severity']:8} {f['id']}: {f['finding']}")
bad = [f for f in findings if f["severity"] in ("HIGH", "CRITICAL")]
sys.exit(f"{len(bad)} HIGH or CRITICAL findings" if bad else 0)
PY
