#!/usr/bin/env bash
# oha with --target-pid-style accounting: run oha (pinned to CPU 1) against URL with a JSON
# BODY for SECS seconds, 32 connections, and print its requests/s, latency and the CPU time
# (utime + stime from /proc) that process PID spent per request over the same run.
#   loadtest/oha-cpu.sh URL BODY PID [SECS]
# Needs oha (cargo install oha) and python3. Traffic goes only where URL says; the run stops
# by itself after SECS seconds (in-flight requests are waited for).
# Sourced (as loadtest/tls-cost.sh does), it only defines oha_cpu.

# oha_cpu PID SECS LABEL OHA-ARGS...: one oha run with OHA-ARGS (pinned to CPU 1, SECS seconds,
# in-flight requests waited for), summarised on one line (after LABEL when it is not empty)
# with the CPU time process PID spent per request over the same run.
oha_cpu() {
  local pid=$1 secs=$2 label=$3
  shift 3
  local ticks before after out
  ticks=$(getconf CLK_TCK)
  before=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  out=$(taskset -c 1 oha --no-tui -z "${secs}s" -w --worker-threads 1 --output-format json "$@")
  after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  OUT="$out" CPU_TICKS=$((after - before)) TICKS=$ticks LABEL=$label python3 - <<'PY'
import json, os
d = json.loads(os.environ["OUT"])
codes = d["statusCodeDistribution"]
n = sum(codes.values())
ok = codes.get("200", 0)
errors = sum(d.get("errorDistribution", {}).values())
cpu_s = int(os.environ["CPU_TICKS"]) / int(os.environ["TICKS"])
lat = d["latencyPercentiles"]
per = cpu_s / max(n, 1)
label = os.environ["LABEL"]
rps = d["summary"]["requestsPerSec"]
print((f"{label:<34} {rps:>8.0f}" if label else f"{rps:.0f}")
      + f" req/s, {ok} ok, {n - ok} not 200, {errors} errors, "
      f"p50 {lat['p50'] * 1000:.3f} ms, p99 {lat['p99'] * 1000:.3f} ms, "
      f"{per * 1e6:.1f} µs CPU per request (= {1 / per if per else 0:.0f}/s per core)")
PY
}

[[ "${BASH_SOURCE[0]}" == "$0" ]] || return 0

set -euo pipefail
url=$1; body=$2; pid=$3; secs=${4:-5}
oha_cpu "$pid" "$secs" "" -c 32 -m POST \
  -H 'content-type: application/json' -H 'anthropic-version: 2023-06-01' -d "$body" "$url"
