#!/usr/bin/env bash
# What OTLP tracing costs per request, side by side in one run: three gateways, tracing off,
# on at 100% sampling and on at 1%, all exporting to one local collector (a sink that answers
# 200 to every POST). Each gateway runs 1 worker pinned to CPU 0 (measured in alternating
# phases: 100% vs off, then 1% vs off); the mock, the sink and the load tool share CPU 1, and
# so does each gateway's exporter thread (its CPU is not the worker's: reported apart, from
# the sink's count). Rows: closed loop (CPU per request) then open loop at 1,000 requests/s
# (latency), streamed and not.
#   CARGO_TARGET_DIR=/tmp/rel-target loadtest/tracing-cost.sh [SECS]
# Needs release builds (cargo build --release --bin ringway -p loadtest).
# Everything listens on 127.0.0.1:482x and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-4}
target_dir=${CARGO_TARGET_DIR:-target}
R=${BIN_DIR:-$target_dir/release}
work=$(mktemp -d)
config() { # PORT TRACING
  printf '[server]\nlisten = "127.0.0.1:%s"\nworkers = 1\n\n[access_log]\nenabled = false\n' "$1"
  printf '\n[[provider]]\nname = "mo"\nkind = "openai"\nbase_url = "http://127.0.0.1:4821/v1"\n'
  printf '\n[[route]]\nmodel = "gpt"\ntargets = ["mo/mock-gpt"]\n\n%s\n' "$2"
}
sink=http://127.0.0.1:4829/v1/traces
config 4822 "" > "$work/off.toml"
config 4823 "[tracing]
endpoint = \"$sink\"
sample_ratio = 1.0" > "$work/all.toml"
config 4824 "[tracing]
endpoint = \"$sink\"
sample_ratio = 0.01" > "$work/one.toml"

pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$work"' EXIT
# The collector: accepts every export and counts bytes (its CPU is on core 1, not measured).
taskset -c 1 python3 -c '
import http.server
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", 4829), H).serve_forever()' &
pids+=($!)
taskset -c 1 "$R/ringway" mock-upstream --listen 127.0.0.1:4821 2>/dev/null &
pids+=($!)
sleep 0.5
start() { # CONFIG -> pid; the worker on CPU 0, its exporter thread moved to CPU 1
  taskset -c 0 "$R/ringway" serve --config "$1" >/dev/null 2>&1 &
  echo $!
}
OFF=$(start "$work/off.toml"); pids+=($OFF)
ALL=$(start "$work/all.toml"); pids+=($ALL)
ONE=$(start "$work/one.toml"); pids+=($ONE)
sleep 1
lt() { # TARGET_PORT TARGET_PID ARGS...
  local port=$1 pid=$2
  shift 2
  taskset -c 1 "$R/loadtest" "http://127.0.0.1:$port" --compare http://127.0.0.1:4822 \
    --target-pid "$pid" --compare-pid "$OFF" --model gpt \
    --duration "$secs" --warmup 1 --phases 4 --quiet "$@" 2>&1 | tail -22
}
# The exporter threads start with their first span: send one, then move them to CPU 1.
for port in 4823 4824; do
  for _ in $(seq 1 200); do
    curl -s -o /dev/null http://127.0.0.1:$port/v1/chat/completions \
      -H 'content-type: application/json' -d '{"model":"gpt","messages":[{"role":"user","content":"hi"}]}'
  done
done
sleep 0.2
for pid in "$ALL" "$ONE"; do
  for task in /proc/"$pid"/task/*; do
    if [ "$(cat "$task/comm")" = "ringway-trace" ]; then taskset -p -c 1 "${task##*/}" >/dev/null; fi
  done
done
for mode in "" "--stream"; do
  echo "##### tracing 100% (target) vs off (compare), closed loop ${mode:-non-stream}"
  lt 4823 "$ALL" --conns 16 $mode
  echo "##### tracing 1% (target) vs off (compare), closed loop ${mode:-non-stream}"
  lt 4824 "$ONE" --conns 16 $mode
  echo "##### tracing 100% (target) vs off (compare), 1000/s ${mode:-non-stream}"
  lt 4823 "$ALL" --rate 1000 --max-conns 256 $mode
done
for port in 4823 4824; do
  echo "##### gateway :$port trace metrics"
  curl -s http://127.0.0.1:$port/metrics | grep -E '^ringway_trace_'
done
