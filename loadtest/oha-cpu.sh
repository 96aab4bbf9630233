#!/usr/bin/env bash
# oha with --target-pid-style accounting: run oha (pinned to CPU 1) against URL with a JSON
# BODY for SECS seconds, 32 connections, and print its requests/s, latency and the CPU time
# (utime + stime from /proc) that process PID spent per request over the same run.
#   loadtest/oha-cpu.sh URL BODY PID [SECS]
# Needs oha (cargo install oha) and python3. Traffic goes only where URL says; the run stops
# by itself after SECS seconds (in-flight requests are waited for).
set -euo pipefail
url=$1; body=$2; pid=$3; secs=${4:-5}
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
before=$(cpu "$pid")
out=$(taskset -c 1 oha --no-tui -c 32 -z "${secs}s" -w --worker-threads 1 -m POST \
  -H 'content-type: application/json' -H 'anthropic-version: 2023-06-01' -d "$body" \
  --output-format json "$url")
after=$(cpu "$pid")
OUT="$out" CPU_TICKS=$((after - before)) TICKS=$ticks python3 - <<'PY'
import json, os
d = json.loads(os.environ["OUT"])
codes = d["statusCodeDistribution"]
n = sum(codes.values())
ok = codes.get("200", 0)
errors = sum(d.get("errorDistribution", {}).values())
cpu_s = int(os.environ["CPU_TICKS"]) / int(os.environ["TICKS"])
lat = d["latencyPercentiles"]
print(f"{d['summary']['requestsPerSec']:.0f} req/s, {ok} ok, {n - ok} not 200, {errors} errors, "
      f"p50 {lat['p50'] * 1000:.3f} ms, p99 {lat['p99'] * 1000:.3f} ms, "
      f"{cpu_s / max(n, 1) * 1e6:.1f} µs CPU per request")
PY
