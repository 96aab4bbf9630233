#!/usr/bin/env bash
# What cluster mode costs per request, side by side in one run: the same gateway with a
# limited key held locally ("local": rpm, tpm and max_streams on this node only) and held
# through Redis ("cluster": the same limits shared by leases, `[cluster] redis`). Each gateway
# runs 1 worker pinned to CPU 0 (measured in alternating phases); the mock, the load tool and
# redis-server share CPU 1. Rows: closed loop (CPU per request), then open loop at 500 and
# 2,000 requests/s (latency, p50 and p99), streamed and not. At the end: Redis round trips and
# script steps per 1,000 requests of the cluster gateway, from its /metrics.
#   CARGO_TARGET_DIR=/tmp/rel-target loadtest/cluster-cost.sh [SECS]
# Needs release builds (cargo build --release --bin ringway -p loadtest) and redis-server.
# Everything listens on 127.0.0.1:481x and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-4}
target_dir=${CARGO_TARGET_DIR:-target}
R=${BIN_DIR:-$target_dir/release}
work=$(mktemp -d)
export CLUSTER_KEY=cluster-key-123456
# Limits high enough that nothing is refused: what is measured is keeping them.
limits='rpm = 1200000
tpm = 100000000
max_streams = 10000'
config() { # PORT EXTRA
  printf '[server]\nlisten = "127.0.0.1:%s"\nworkers = 1\n\n[access_log]\nenabled = false\n%s\n' "$1" "$2"
  printf '\n[[provider]]\nname = "mo"\nkind = "openai"\nbase_url = "http://127.0.0.1:4811/v1"\n'
  printf '\n[[route]]\nmodel = "gpt"\ntargets = ["mo/mock-gpt"]\n'
  printf '\n[[key]]\nname = "team"\nkey_env = "CLUSTER_KEY"\n%s\n' "$limits"
}
config 4812 "" > "$work/local.toml"
config 4813 '[cluster]
node_id = "bench"
redis = "redis://127.0.0.1:4819/0"' > "$work/cluster.toml"

pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$work"' EXIT
taskset -c 1 redis-server --bind 127.0.0.1 --port 4819 --save "" --appendonly no \
  --dir "$work" --loglevel warning >/dev/null &
pids+=($!)
taskset -c 1 "$R/ringway" mock-upstream --listen 127.0.0.1:4811 2>/dev/null &
pids+=($!)
sleep 0.5
taskset -c 0 "$R/ringway" serve --config "$work/local.toml" 2>/dev/null &
LOCAL=$!
pids+=($LOCAL)
taskset -c 0 "$R/ringway" serve --config "$work/cluster.toml" 2>/dev/null &
CLUSTER=$!
pids+=($CLUSTER)
sleep 1
scrape() {
  curl -s http://127.0.0.1:4813/metrics -H "authorization: Bearer $CLUSTER_KEY"
}
# Redis round trips, script steps and chat requests answered by the cluster gateway so far.
counts() {
  scrape | awk '
    $1 == "ringway_cluster_redis_round_trips_total" { t = $2 }
    $1 == "ringway_cluster_redis_steps_total" { s = $2 }
    /^ringway_requests_total\{endpoint="chat_completions"/ { r += $2 }
    END { print t + 0, s + 0, r + 0 }'
}
read -r trips0 steps0 reqs0 < <(counts)
lt() {
  taskset -c 1 "$R/loadtest" http://127.0.0.1:4813 --compare http://127.0.0.1:4812 \
    --target-pid "$CLUSTER" --compare-pid "$LOCAL" --model gpt \
    --header "authorization: Bearer $CLUSTER_KEY" --duration "$secs" --warmup 1 --phases 4 \
    --quiet "$@" 2>&1 | tail -22
}
for mode in "" "--stream"; do
  echo "##### cluster (target) vs local (compare), closed loop ${mode:-non-stream}"
  lt --conns 16 $mode
  for rate in 500 2000; do
    echo "##### cluster (target) vs local (compare), ${rate}/s ${mode:-non-stream}"
    lt --rate "$rate" --max-conns 256 $mode
  done
done
read -r trips steps reqs < <(counts)
echo "##### Redis traffic of the cluster gateway"
python3 -c "
r, t, s = $reqs - $reqs0, $trips - $trips0, $steps - $steps0
print(f'{r} requests, {t} round trips, {s} steps: per 1,000 requests '
      f'{1000 * t / max(r, 1):.1f} round trips, {1000 * s / max(r, 1):.1f} steps')"
