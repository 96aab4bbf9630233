#!/usr/bin/env bash
# loadtest/chaos.sh — chaos soak of ringway's failover, on 127.0.0.1 only.
#
# USAGE
#   loadtest/chaos.sh [--duration S] [--rate R] [--mode mixed|stream|nonstream]
#                     [--every S] [--seed N] [--faults "F1 F2 …"] [--out DIR] [--no-build]
#   loadtest/chaos.sh -h | --help
#
# What it does, bounded in time and count (DURATION × RATE requests, all to 127.0.0.1):
#   1. builds release binaries: cargo build --release --locked -p ringway -p loadtest
#      (skip with --no-build / NO_BUILD=1 when target/release is current);
#   2. starts `ringway mock-upstream` and a 1-worker gateway (gateway pinned to CPU 0, mock and
#      load generators to CPU 1, when taskset and 2+ CPUs exist). The gateway's route `chaos`
#      has three targets on the same mock, through three providers of mixed kinds:
#        fa (openai kind) / model-a,  fb (anthropic kind) / model-b,  fc (openai kind) / model-c
#      so an OpenAI client falling back to fb, or an Anthropic client falling back to fa/fc, is
#      translated. Every provider has first_byte_timeout_ms (bounds `stall`); the route has
#      first_token_timeout_ms and request_timeout_ms;
#   3. drives the route with `loadtest` in open loop at RATE req/s in total for DURATION s:
#        mixed      4 processes: openai and anthropic clients, streaming and not, RATE/4 each
#        stream     2 processes: openai and anthropic clients, streaming, RATE/2 each
#        nonstream  2 processes: openai and anthropic clients, non-streaming, RATE/2 each
#      each writes a per-request log (loadtest --request-log);
#   4. meanwhile, every EVERY s, puts 1..MAX_FAULTED (default 2) of the three targets under a
#      random fault from FAULTS (POST /mock/faults), at least one target always healthy (and
#      one target healthy before each switch stays healthy after it), and
#      logs each switch with a timestamp (OUT/faults.log);
#   5. reports: requests sent, served (2xx, complete), failed (a response came but non-2xx or
#      an in-stream error / broken body), lost (no response at all: timeout, connection closed
#      or refused before any head); p50/p99 latency (and TTFT for streams); gateway VmRSS at
#      start and end; the gateway's failover metrics (attempts, fallbacks by reason, breaker
#      openings); and, for each failed or lost request, the faults active when it started,
#      its x-ringway-request-id and the gateway's log lines for it, split into those that had
#      a target free of faults from their start to their end (gateway-attributable) and those
#      whose failover chain outlived switches so that every target was faulted at some point
#      while they ran (a stall costs a whole first_byte_timeout, a 429 its retry-after). The
#      report is loadtest/chaos_report.py; re-run it on a kept OUT directory at will.
#   Exit status: 0 when failed + lost = 0, 1 when not, 2 when the run could not be set up.
#   Every process it started is stopped on exit (trap), by pid.
#
# SETTINGS (flags above, or environment variables of the same meaning)
#   DURATION=600            soak seconds
#   RATE=100                total requests per second
#   MODE=mixed              mixed | stream | nonstream
#   EVERY=3                 seconds between fault switches
#   MAX_FAULTED=2           most targets faulted at once (1 or 2; one target is always healthy)
#   SEED=<random>           seed of the fault schedule (bash RANDOM), printed so a run repeats
#   FAULTS="reset stall garbage status=429,retry_after=1 status=503 status=529
#           reset_before_content slow_first_token=300 slow_first_token=2500 error_event"
#                           the fault pool (never reset_midstream: once content has reached the
#                           client no gateway can hide a failure)
#   FIRST_BYTE_TIMEOUT_MS=1000   provider first_byte_timeout_ms (how long a `stall` costs: with
#                                two targets stalled a chain takes ~2 s, under one EVERY)
#   CONNECT_TIMEOUT_MS=1000      provider connect_timeout_ms
#   IDLE_TIMEOUT_MS=5000         provider idle_timeout_ms
#   FIRST_TOKEN_TIMEOUT_MS=1000  route first_token_timeout_ms
#   REQUEST_TIMEOUT_MS=15000     route request_timeout_ms
#   RETRIES=1  BREAKER_FAILURES=5  BREAKER_COOLDOWN_MS=30000  (route settings; gateway defaults)
#   CLIENT_TIMEOUT=30       loadtest --timeout, seconds (a request without an answer by then
#                           is lost)
#   MOCK_TTFT_MS=20 MOCK_ITL_MS=5   mock pacing
#   GW_PORT=4790 MOCK_PORT=4791     listen ports on 127.0.0.1 (must be free)
#   OUT=target/chaos/<date>  logs, config, per-request logs, metrics, report
#   NO_BUILD=1              skip cargo build
#   RINGWAY_LOG=warn        gateway log level (warn logs every missed attempt with its id)
#
# EXAMPLES
#   loadtest/chaos.sh --duration 60                       # one-minute smoke
#   loadtest/chaos.sh                                     # the 10-minute soak at 100 req/s
#   FAULTS=stall MAX_FAULTED=1 loadtest/chaos.sh --duration 30 --no-build   # one fault only

set -uo pipefail

usage() { sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; }

DURATION=${DURATION:-600}
RATE=${RATE:-100}
MODE=${MODE:-mixed}
EVERY=${EVERY:-3}
MAX_FAULTED=${MAX_FAULTED:-2}
SEED=${SEED:-}
FAULTS=${FAULTS:-"reset stall garbage status=429,retry_after=1 status=503 status=529 reset_before_content slow_first_token=300 slow_first_token=2500 error_event"}
FIRST_BYTE_TIMEOUT_MS=${FIRST_BYTE_TIMEOUT_MS:-1000}
CONNECT_TIMEOUT_MS=${CONNECT_TIMEOUT_MS:-1000}
IDLE_TIMEOUT_MS=${IDLE_TIMEOUT_MS:-5000}
FIRST_TOKEN_TIMEOUT_MS=${FIRST_TOKEN_TIMEOUT_MS:-1000}
REQUEST_TIMEOUT_MS=${REQUEST_TIMEOUT_MS:-15000}
RETRIES=${RETRIES:-1}
BREAKER_FAILURES=${BREAKER_FAILURES:-5}
BREAKER_COOLDOWN_MS=${BREAKER_COOLDOWN_MS:-30000}
CLIENT_TIMEOUT=${CLIENT_TIMEOUT:-30}
MOCK_TTFT_MS=${MOCK_TTFT_MS:-20}
MOCK_ITL_MS=${MOCK_ITL_MS:-5}
GW_PORT=${GW_PORT:-4790}
MOCK_PORT=${MOCK_PORT:-4791}
NO_BUILD=${NO_BUILD:-}
OUT=${OUT:-}
export RINGWAY_LOG=${RINGWAY_LOG:-warn}

die() { echo "chaos: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --duration) DURATION=${2:?}; shift ;;
        --rate) RATE=${2:?}; shift ;;
        --mode) MODE=${2:?}; shift ;;
        --every) EVERY=${2:?}; shift ;;
        --seed) SEED=${2:?}; shift ;;
        --faults) FAULTS=${2:?}; shift ;;
        --out) OUT=${2:?}; shift ;;
        --no-build) NO_BUILD=1 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
    shift
done

int() { [[ "$2" =~ ^[0-9]+$ ]] || die "$1 must be a whole number, not '$2'"; }
int DURATION "$DURATION"; int EVERY "$EVERY"; int MAX_FAULTED "$MAX_FAULTED"
int GW_PORT "$GW_PORT"; int MOCK_PORT "$MOCK_PORT"; int CLIENT_TIMEOUT "$CLIENT_TIMEOUT"
[[ "$RATE" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "RATE must be a number, not '$RATE'"
[ "$DURATION" -ge 1 ] && [ "$DURATION" -le 86400 ] || die "DURATION must be 1..86400 s"
[ "$EVERY" -ge 1 ] || die "EVERY must be at least 1 s"
[ "$MAX_FAULTED" -ge 1 ] && [ "$MAX_FAULTED" -le 2 ] || die "MAX_FAULTED must be 1 or 2"
case "$MODE" in mixed|stream|nonstream) ;; *) die "MODE must be mixed, stream or nonstream" ;; esac
read -r -a FAULT_POOL <<< "$FAULTS"
[ "${#FAULT_POOL[@]}" -ge 1 ] || die "FAULTS is empty"
for f in "${FAULT_POOL[@]}"; do
    [ "$f" = reset_midstream ] && die "reset_midstream is not a fault failover can hide; leave it out"
done
[ -n "$SEED" ] || SEED=$(( $(date +%s%N) % 32768 ))
int SEED "$SEED"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release
[ -n "$OUT" ] || OUT=$TARGET_DIR/chaos/$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT" || die "cannot create $OUT"
OUT=$(cd "$OUT" && pwd)
for tool in curl python3; do command -v "$tool" >/dev/null || die "$tool is required"; done

PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
}
trap cleanup EXIT
trap 'echo "chaos: interrupted" >&2; exit 2' INT TERM

now_ms() { date +%s%3N; }
stamp() { date '+%Y-%m-%dT%H:%M:%S.%3N'; }
say() { echo "[$(stamp)] $*"; }

# --- build -------------------------------------------------------------------------------
if [ -z "$NO_BUILD" ]; then
    say "building release binaries (cargo build --release --locked -p ringway -p loadtest)"
    (cd "$ROOT" && CARGO_TARGET_DIR=$TARGET_DIR cargo build --release --locked -p ringway -p loadtest) \
        > "$OUT/build.log" 2>&1 || { tail -20 "$OUT/build.log" >&2; die "build failed (see $OUT/build.log)"; }
fi
[ -x "$BIN/ringway" ] && [ -x "$BIN/loadtest" ] || die "no binaries in $BIN (build first)"

# --- pinning -------------------------------------------------------------------------------
PIN_GW=(); PIN_REST=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    PIN_GW=(taskset -c 0); PIN_REST=(taskset -c 1)
fi

port_free() { ! ss -ltnH "sport = :$1" 2>/dev/null | grep -q .; }
port_free "$GW_PORT" || die "port $GW_PORT is in use (set GW_PORT)"
port_free "$MOCK_PORT" || die "port $MOCK_PORT is in use (set MOCK_PORT)"
MOCK=http://127.0.0.1:$MOCK_PORT
GW=http://127.0.0.1:$GW_PORT

# --- config ------------------------------------------------------------------------------
CFG=$OUT/gateway.toml
cat > "$CFG" <<TOML
# written by loadtest/chaos.sh
[server]
listen = "127.0.0.1:$GW_PORT"
workers = 1
pin_workers = false

[upstream]
connect_timeout_ms = $CONNECT_TIMEOUT_MS
first_byte_timeout_ms = $FIRST_BYTE_TIMEOUT_MS
idle_timeout_ms = $IDLE_TIMEOUT_MS

[[provider]]
name = "fa"
kind = "openai"
base_url = "$MOCK/v1"

[[provider]]
name = "fb"
kind = "anthropic"
base_url = "$MOCK"

[[provider]]
name = "fc"
kind = "openai"
base_url = "$MOCK/v1"

[[route]]
model = "chaos"
targets = ["fa/model-a", "fb/model-b", "fc/model-c"]
strategy = "ordered"
retries = $RETRIES
first_token_timeout_ms = $FIRST_TOKEN_TIMEOUT_MS
request_timeout_ms = $REQUEST_TIMEOUT_MS
breaker_failures = $BREAKER_FAILURES
breaker_cooldown_ms = $BREAKER_COOLDOWN_MS
TOML
"$BIN/ringway" check --config "$CFG" > "$OUT/check.txt" 2>&1 || { cat "$OUT/check.txt" >&2; die "config refused"; }

# --- processes -----------------------------------------------------------------------------
say "output in $OUT"
"${PIN_REST[@]}" "$BIN/ringway" mock-upstream --listen "127.0.0.1:$MOCK_PORT" \
    --ttft-ms "$MOCK_TTFT_MS" --itl-ms "$MOCK_ITL_MS" > "$OUT/mock.log" 2>&1 &
MOCK_PID=$!; PIDS+=("$MOCK_PID")
# Gateway stderr gets a Unix timestamp (seconds.millis) per line, to line up with faults.log.
"${PIN_GW[@]}" "$BIN/ringway" serve --config "$CFG" \
    2> >(perl -MTime::HiRes=time -ne 'BEGIN { $| = 1 } printf "%.3f %s", time, $_' > "$OUT/gateway.log") &
GW_PID=$!; PIDS+=("$GW_PID")

wait_up() { # url, pid, name
    local i
    for i in $(seq 1 100); do
        kill -0 "$2" 2>/dev/null || die "$3 exited at start (see $OUT)"
        curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    die "$3 did not come up on $1"
}
wait_up "$MOCK/mock/counts" "$MOCK_PID" mock
wait_up "$GW/readyz" "$GW_PID" gateway

set_faults() { # JSON table
    curl -fsS --max-time 2 -o /dev/null -X POST -H 'content-type: application/json' \
        --data "$1" "$MOCK/mock/faults"
}
set_faults '{}' || die "cannot set the mock's fault table"

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null; }
RSS_START=$(rss_kib "$GW_PID")
say "mock pid $MOCK_PID on $MOCK, gateway pid $GW_PID on $GW, VmRSS at start ${RSS_START} KiB"
say "duration ${DURATION}s, rate ${RATE}/s, mode $MODE, switch every ${EVERY}s, seed $SEED"
say "fault pool: ${FAULT_POOL[*]}"

# --- load ------------------------------------------------------------------------------------
case "$MODE" in
    mixed) CLASSES="openai:stream anthropic:stream openai:plain anthropic:plain" ;;
    stream) CLASSES="openai:stream anthropic:stream" ;;
    nonstream) CLASSES="openai:plain anthropic:plain" ;;
esac
NCLASS=$(wc -w <<< "$CLASSES")
PER_RATE=$(python3 -c "print(f'{$RATE / $NCLASS:g}')")
LOAD_PIDS=()
for c in $CLASSES; do
    fmt=${c%%:*}; kind=${c##*:}
    extra=(); [ "$kind" = stream ] && extra=(--stream)
    timeout --kill-after=10 $((DURATION + CLIENT_TIMEOUT + 60)) \
        "${PIN_REST[@]}" "$BIN/loadtest" "$GW" --model chaos --format "$fmt" "${extra[@]}" \
        --rate "$PER_RATE" --duration "$DURATION" --warmup 0 --timeout "$CLIENT_TIMEOUT" \
        --quiet --json "$OUT/load-$fmt-$kind.json" --request-log "$OUT/req-$fmt-$kind.tsv" \
        > "$OUT/load-$fmt-$kind.txt" 2>&1 &
    LOAD_PIDS+=($!); PIDS+=($!)
done
say "load: $NCLASS loadtest processes ($CLASSES) at ${PER_RATE}/s each"

# --- fault controller ------------------------------------------------------------------------
MODELS=(model-a model-b model-c)
FLOG=$OUT/faults.log
printf '# unix_ms\ttime\tmodel-a\tmodel-b\tmodel-c\n' > "$FLOG"
RANDOM=$SEED
SWITCHES=0
log_table() { # unix_ms a b c
    printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$(stamp)" "$2" "$3" "$4" >> "$FLOG"
}
log_table "$(now_ms)" none none none
load_running() { local p; for p in "${LOAD_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
END_AT=$(( $(date +%s) + DURATION ))
# Faults start a second in, after every loadtest's probe request went through cleanly.
sleep 1
prev=(none none none)
while load_running && [ "$(date +%s)" -lt "$END_AT" ]; do
    n=$(( 1 + RANDOM % MAX_FAULTED ))
    # Shuffle the three targets, fault the first n. One target healthy before the switch stays
    # healthy after it (the shuffle is redrawn until so): a request whose failover chain spans
    # a switch then always had a target healthy from its start to its end.
    while :; do
        order=(0 1 2)
        for i in 2 1; do j=$(( RANDOM % (i + 1) )); t=${order[$i]}; order[$i]=${order[$j]}; order[$j]=$t; done
        kept=0
        for ((k = n; k < 3; k++)); do [ "${prev[${order[$k]}]}" = none ] && kept=1; done
        [ "$kept" = 1 ] && break
    done
    cur=(none none none)
    for ((k = 0; k < n; k++)); do
        cur[${order[$k]}]=${FAULT_POOL[$(( RANDOM % ${#FAULT_POOL[@]} ))]}
    done
    json="{"; sep=""
    for i in 0 1 2; do
        [ "${cur[$i]}" = none ] && continue
        json+="$sep\"${MODELS[$i]}\":\"${cur[$i]}\""; sep=","
    done
    json+="}"
    if set_faults "$json"; then
        prev=("${cur[@]}")
        log_table "$(now_ms)" "${cur[@]}"
        SWITCHES=$((SWITCHES + 1))
        say "faults: a=${cur[0]} b=${cur[1]} c=${cur[2]}"
    else
        say "warning: could not switch faults"
    fi
    left=$(( END_AT - $(date +%s) ))
    [ "$left" -le 0 ] && break
    sleep $(( EVERY < left ? EVERY : left ))
done
set_faults '{}' && log_table "$(now_ms)" none none none
say "faults cleared after $SWITCHES switches; waiting for the last requests"
LOAD_RC=0
for p in "${LOAD_PIDS[@]}"; do wait "$p" || LOAD_RC=$?; done
[ "$LOAD_RC" -eq 0 ] || say "a loadtest exited with status $LOAD_RC (see $OUT/load-*.txt)"
sleep 1.5   # the gateway publishes its metrics snapshot once a second

RSS_END=$(rss_kib "$GW_PID"); HWM_END=$(hwm_kib "$GW_PID")
kill -0 "$GW_PID" 2>/dev/null || say "warning: the gateway is no longer running"
curl -fsS --max-time 5 "$GW/metrics" > "$OUT/metrics.txt" 2>/dev/null || say "warning: no metrics"
curl -fsS --max-time 5 "$MOCK/mock/counts" > "$OUT/mock-counts.json" 2>/dev/null || true

# --- report -----------------------------------------------------------------------------------
{
    echo "DURATION=$DURATION"; echo "RATE=$RATE"; echo "MODE=$MODE"; echo "EVERY=$EVERY"
    echo "SEED=$SEED"; echo "SWITCHES=$SWITCHES"; echo "FAULTS=$FAULTS"
    echo "RSS_START=$RSS_START"; echo "RSS_END=$RSS_END"; echo "HWM_END=$HWM_END"
} > "$OUT/run.env"
python3 "$ROOT/loadtest/chaos_report.py" "$OUT" | tee "$OUT/report.txt"
RC=${PIPESTATUS[0]}
say "report in $OUT/report.txt"
exit "$RC"
