#!/usr/bin/env bash
# What decoding Bedrock's event stream costs a stream's first token: the same streamed Messages
# request through two gateways side by side in one run, one reaching Claude through the
# anthropic kind (SSE relayed) and one through the bedrock kind (SigV4-signed, event-stream
# frames decoded into the same events), both on the same mock provider with no pacing
# (--ttft-ms 0 --itl-ms 0), so the difference is the gateway's. Each gateway has one worker on
# CPU 0 (they are driven in alternating phases, never at once); the mock and the load tester
# are on CPU 1.
# Usage: loadtest/bedrock-ttft.sh [SECS] [CONNS] (default 5 s per phase, 8 connections);
# RATE=N drives an open loop at N requests/s instead (latency with nothing saturated: the
# mock's Bedrock side, which checks every signature, costs more than its Anthropic side, and a
# closed loop measures that too).
# RINGWAY_BIN / LOADTEST_BIN pick the binaries (default target/release/...). Traffic stays on
# 127.0.0.1; everything started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
conns=${2:-8}
target_dir=${CARGO_TARGET_DIR:-target}
bin=${RINGWAY_BIN:-$target_dir/release/ringway}
lt=${LOADTEST_BIN:-$target_dir/release/loadtest}
for b in "$bin" "$lt"; do
  [ -x "$b" ] || { echo "no binary at $b (cargo build --release -p ringway -p loadtest)" >&2; exit 1; }
done
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# Wait for "$2 http://ADDR" in log file $1 and print ADDR.
addr_of() {
  for _ in $(seq 100); do
    a=$(sed -n "s|.*$2 http://\([0-9.:]*\).*|\1|p" "$1" | head -1)
    [ -n "$a" ] && { echo "$a"; return; }
    sleep 0.1
  done
  echo "no '$2' line in $1:" >&2; cat "$1" >&2; exit 1
}

taskset -c 1 "$bin" mock-upstream --listen 127.0.0.1:0 --ttft-ms 0 --itl-ms 0 2>"$work/mock.log" &
pids+=($!)
mock=$(addr_of "$work/mock.log" "mock provider listening on")

# gateway NAME PROVIDER-TABLE TARGET: one worker on CPU 0; prints its address.
gateway() {
  cat > "$work/$1.toml" <<CONF
[server]
listen = "127.0.0.1:0"
workers = 1

$2

[[route]]
model = "claude"
targets = ["$3"]
CONF
  AWS_ACCESS_KEY_ID=AKIDRINGWAYMOCK AWS_SECRET_ACCESS_KEY=ringway-mock-secret \
    AWS_SESSION_TOKEN=bench AWS_SHARED_CREDENTIALS_FILE=/nonexistent AWS_CONFIG_FILE=/nonexistent \
    taskset -c 0 "$bin" serve --config "$work/$1.toml" 2>"$work/$1.log" &
  pids+=($!)
  echo "$!" > "$work/$1.pid"
}
gateway anthropic "[[provider]]
name = \"ma\"
kind = \"anthropic\"
base_url = \"http://$mock\"" "ma/mock-claude"
gateway bedrock "[[provider]]
name = \"bedrock\"
kind = \"bedrock\"
region = \"ca-central-1\"
base_url = \"http://$mock\"" "bedrock/anthropic.claude-haiku-4-5-20251001-v1:0"
a=$(addr_of "$work/anthropic.log" "listening on")
b=$(addr_of "$work/bedrock.log" "listening on")

echo "mock $mock; anthropic kind on $a; bedrock kind on $b; ${RATE:+$RATE req/s, }${RATE:-$conns connections, }${secs}s phases"
if [ -n "${RATE:-}" ]; then load=(--rate "$RATE"); else load=(--conns "$conns"); fi
taskset -c 1 "$lt" "http://$b" --compare "http://$a" --model claude --format anthropic --stream \
  "${load[@]}" --duration "$secs" --warmup 1 --phases 3 \
  --target-pid "$(cat "$work/bedrock.pid")" --compare-pid "$(cat "$work/anthropic.pid")" \
  --json "$work/out.json"
python3 - "$work/out.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(json.dumps({k: v for k, v in d.items() if not isinstance(v, list)}, indent=1)[:3000])
PY
