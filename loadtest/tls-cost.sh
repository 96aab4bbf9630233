#!/usr/bin/env bash
# The cost of TLS termination, HTTPS and plain HTTP side by side in one run: one gateway worker
# pinned to CPU 0 serving HTTPS on server.listen and plain HTTP on server.plain_listen, the mock
# provider and oha on CPU 1.
#   1. a new connection per request (GET /healthz): connections/s, and the gateway's CPU time
#      per connection (utime + stime from /proc), which gives handshakes per second per core;
#   2. one kept-alive connection, one request at a time (POST /v1/chat/completions, not
#      streamed, to the mock): latency p50 / p99;
#   3. 32 kept-alive connections, same request: requests/s and gateway CPU per request.
# Usage: loadtest/tls-cost.sh [SECS] (default 10 per measurement)
# KEY=rsa uses an RSA-2048 certificate instead of ECDSA P-256. RINGWAY_BIN picks the binary
# (default target/release/ringway, or $CARGO_TARGET_DIR/release/ringway). Needs oha, openssl
# and python3; traffic stays on 127.0.0.1; everything started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
target_dir=${CARGO_TARGET_DIR:-target}
bin=${RINGWAY_BIN:-$target_dir/release/ringway}
[ -x "$bin" ] || { echo "no binary at $bin (cargo build --release)" >&2; exit 1; }
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# A CA and a localhost certificate it signed.
case ${KEY:-ec} in
  rsa) newkey=(-newkey rsa:2048) ;;
  *) newkey=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1) ;;
esac
( cd "$work"
  openssl req -x509 -new "${newkey[@]}" -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=bench-ca
  openssl req -new "${newkey[@]}" -nodes -keyout key.pem -out leaf.csr -subj /CN=localhost
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' > leaf.ext
  openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile leaf.ext -out cert.pem ) 2>/dev/null

# Wait for "$2 SCHEME://ADDR" in log file $1 and print ADDR.
addr_of() {
  for _ in $(seq 100); do
    a=$(sed -n "s|.*$2 https\?://\([0-9.:]*\).*|\1|p" "$1" | head -1)
    [ -n "$a" ] && { echo "$a"; return; }
    sleep 0.1
  done
  echo "no '$2' line in $1:" >&2; cat "$1" >&2; exit 1
}

taskset -c 1 "$bin" mock-upstream --listen 127.0.0.1:0 2>"$work/mock.log" &
pids+=($!)
mock=$(addr_of "$work/mock.log" "mock provider listening on")
cat > "$work/ringway.toml" <<EOF
[server]
listen = "127.0.0.1:0"
plain_listen = "127.0.0.1:0"
workers = 1
pin_workers = true

[server.tls]
cert = "cert.pem"
key = "key.pem"

[[provider]]
name = "mock"
kind = "openai"
base_url = "http://$mock/v1"

[[route]]
model = "gpt"
targets = ["mock/mock-gpt"]
EOF
"$bin" serve --config "$work/ringway.toml" 2>"$work/gw.log" &
gw=$!
pids+=($gw)
tls=$(addr_of "$work/gw.log" "listening on")
plain=$(addr_of "$work/gw.log" "plain HTTP also listening on")

body='{"model":"gpt","messages":[{"role":"user","content":"hello"}]}'

# shellcheck source=loadtest/oha-cpu.sh
source loadtest/oha-cpu.sh
# run LABEL OHA-ARGS...: one oha run, summarised with the gateway's CPU per request.
run() {
  local label=$1
  shift
  oha_cpu "$gw" "$secs" "$label" "$@"
}

echo "key ${KEY:-ec}; gateway: 1 worker on CPU 0; mock and oha on CPU 1; ${secs}s each"
echo "-- 1. new connection per request: GET /healthz"
run "plain, new connection" -c 32 --disable-keepalive "http://$plain/healthz"
run "TLS handshake + request" -c 32 --disable-keepalive --cacert "$work/ca.pem" "https://$tls/healthz"
echo "-- 2. one kept-alive connection, one request at a time: POST chat (not streamed)"
post=(-m POST -H 'content-type: application/json' -d "$body")
run "plain, kept alive, c=1" -c 1 "${post[@]}" "http://$plain/v1/chat/completions"
run "TLS, kept alive, c=1" -c 1 "${post[@]}" --cacert "$work/ca.pem" "https://$tls/v1/chat/completions"
echo "-- 3. 32 kept-alive connections: POST chat (not streamed)"
run "plain, kept alive, c=32" -c 32 "${post[@]}" "http://$plain/v1/chat/completions"
run "TLS, kept alive, c=32" -c 32 "${post[@]}" --cacert "$work/ca.pem" "https://$tls/v1/chat/completions"
