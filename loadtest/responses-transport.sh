#!/usr/bin/env bash
# Responses over a WebSocket against HTTP/SSE, and a conversation continued by
# previous_response_id against one resending its whole input, side by side in one run (issue
# 28). Builds release, starts the mock (no wait for the first token, 1 ms between tokens,
# MOCK_ITL_MS) and loadtest's `responses-transport` on
# CPU 1 and a one-worker gateway on CPU 0 (store on, in memory; access log off), then for each
# provider kind (openai-kind `gpt`, anthropic-kind `claude`, both translated from Responses):
#   part 1: TURNS streamed Codex-sized turns (~70 KB) per transport, batches alternating;
#   part 2: CONVERSATIONS 10-turn conversations per variant (HTTP/WS x continued/resent).
# Prints the report (and writes it to OUT when given). Everything goes to 127.0.0.1:4760/4761
# and stops by itself (~2 minutes with the defaults on a quiet 2-vCPU machine).
#   loadtest/responses-transport.sh [OUT]      TURNS=300 CONVERSATIONS=12 KINDS="gpt claude" THINK_MS=0
# BIN=path runs that gateway binary instead of the release build's (e.g. an older build);
# NO_BUILD=1 skips the build.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-}
turns=${TURNS:-300}
convs=${CONVERSATIONS:-12}
kinds=${KINDS:-gpt claude}
R="${CARGO_TARGET_DIR:-target}/release"
bin=${BIN:-$R/ringway}
[[ -n "${NO_BUILD:-}" ]] || cargo build --release -p ringway -p loadtest >&2
work=$(mktemp -d)
cat >"$work/gw.toml" <<'EOF'
[server]
listen = "127.0.0.1:4760"
workers = 1

[access_log]
enabled = false

[[provider]]
name = "mock"
kind = "openai"
base_url = "http://127.0.0.1:4761/v1"

[[provider]]
name = "mock-a"
kind = "anthropic"
base_url = "http://127.0.0.1:4761"

[[route]]
model = "gpt"
targets = ["mock/mock-gpt"]

[[route]]
model = "claude"
targets = ["mock-a/mock-claude"]
EOF
taskset -c 1 "$R/ringway" mock-upstream --listen 127.0.0.1:4761 --ttft-ms 0 --itl-ms "${MOCK_ITL_MS:-1}" \
  >/dev/null 2>&1 &
mock=$!
taskset -c 0 "$bin" serve --config "$work/gw.toml" >"$work/gw.log" 2>&1 &
gw=$!
trap 'kill $gw $mock 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do
  curl -sf -o /dev/null http://127.0.0.1:4760/healthz 2>/dev/null && break
  sleep 0.1
done
{
  echo "# responses-transport: $(git rev-parse --short HEAD 2>/dev/null || echo '?') (gateway $bin), $(nproc) CPUs," \
    "load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
  echo "# gateway: 1 worker on CPU 0 (pid $gw); mock (--ttft-ms 0 --itl-ms ${MOCK_ITL_MS:-1}) and client on CPU 1"
  echo "# CPU µs per response: the gateway's threads' run time (/proc/PID/task/*/schedstat) over a batch,"
  echo "# divided by its responses; median over batches; 'on worker': the worker thread's part (the rest is the"
  echo "# responses store's writer and reader threads); '(all, ticks)': utime+stime over all batches."
  for model in $kinds; do
    case $model in gpt) label=openai-kind ;; claude) label=anthropic-kind ;; *) label=$model ;; esac
    echo
    taskset -c 1 "$R/responses-transport" --url http://127.0.0.1:4760 --pid "$gw" \
      --model "$model" --label "$label" --turns "$turns" --conversations "$convs" \
      --think-ms "${THINK_MS:-0}"
  done
  echo
  echo "# gateway peak RSS: $(awk '/VmHWM/{print $2, $3}' "/proc/$gw/status")," \
    "load average $(cut -d' ' -f1-3 /proc/loadavg) at end"
} | if [[ -n "$out" ]]; then tee "$out"; else cat; fi
