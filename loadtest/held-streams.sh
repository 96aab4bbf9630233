#!/usr/bin/env bash
# Memory per held stream: a one-worker gateway (CPU 0) in front of a mock that answers slowly
# (100 ms to the first token, then 300 ms per token: each stream lasts ~3.7 s), driven by an
# open loop of RATE streams/s (loadtest on CPU 1), so ~3.7 x RATE streams are held at once
# without the burst of a closed loop's first connects. Prints the gateway's RSS at idle, its
# plateau while holding them (median of the last four samples, 0.5 s apart, once the count
# is steady), the streams held (open descriptors / 2) and the bytes per stream above idle.
#   CARGO_TARGET_DIR=/tmp/rel-target loadtest/held-streams.sh [RATE] [BIN]
# RATE defaults to 1400 (~5,000 streams; each holds two descriptors, so `ulimit -n` must
# allow twice the streams). BIN defaults to the release ringway. Everything goes to
# 127.0.0.1:4750/4751 and stops by itself after ~15 s.
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-1400}
R="${CARGO_TARGET_DIR:-target}/release"
bin=${2:-$R/ringway}
work=$(mktemp -d)
cat >"$work/gw.toml" <<'EOF'
[server]
listen = "127.0.0.1:4750"
workers = 1

[access_log]
enabled = false

[[provider]]
name = "mock"
kind = "openai"
base_url = "http://127.0.0.1:4751/v1"

[[route]]
model = "gpt"
targets = ["mock/mock-gpt"]
EOF
taskset -c 1 "$R/ringway" mock-upstream --listen 127.0.0.1:4751 --ttft-ms 100 --itl-ms 300 \
  >/dev/null 2>&1 &
mock=$!
taskset -c 0 "$bin" serve --config "$work/gw.toml" >"$work/gw.log" 2>&1 &
gw=$!
trap 'kill $gw $mock 2>/dev/null; rm -rf "$work"' EXIT
sleep 1
# A few streams first, so that idle means "has served", not "just started".
"$R/loadtest" http://127.0.0.1:4750 --model gpt --stream --conns 4 --duration 1 --warmup 0 \
  --quiet >/dev/null
sleep 0.5
rss() { awk '/VmRSS/{print $2}' "/proc/$gw/status"; }
idle=$(rss)
idle_fds=$(ls "/proc/$gw/fd" | wc -l)
taskset -c 1 "$R/loadtest" http://127.0.0.1:4750 --model gpt --stream --rate "$rate" \
  --max-conns 30000 --duration 10 --warmup 0 --quiet >"$work/load.txt" 2>&1 &
load=$!
sleep 7
samples=() fds=()
for _ in 1 2 3 4; do
  samples+=("$(rss)")
  fds+=("$(ls "/proc/$gw/fd" | wc -l)")
  sleep 0.5
done
wait $load || true
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print int((a[2] + a[3]) / 2)}'; }
hold=$(median "${samples[@]}")
streams=$((($(median "${fds[@]}") - idle_fds) / 2))
echo "idle ${idle} kB; holding ${hold} kB (samples ${samples[*]}); ~${streams} streams held"
echo "per held stream above idle: $(((hold - idle) * 1024 / streams)) bytes"
grep -E '^ +target ' "$work/load.txt" | head -1
