#!/usr/bin/env bash
# What data governance costs, side by side in one run: the same gateway with no governance
# configured ("off") and with a residency tier, the custody record and PII substitution for the
# key ("on"); optionally an older build with the "off" config ("base", BASE_BIN=path) to check
# that governance left unconfigured costs nothing. Each gateway runs 1 worker pinned to CPU 0
# (measured in alternating phases); the mock and the load tool share CPU 1.
# Bodies: tiny and 10k hold no personal data (detection runs and finds nothing, so nothing is
# substituted or restored); pii holds two emails, a phone number, an SSN and an IPv4 address
# that the mock echoes, so "on" substitutes them and restores the stand-ins in every answer.
#   CARGO_TARGET_DIR=/tmp/rel-target loadtest/governance-cost.sh [SECS]
# Needs release builds: cargo build --release --bin ringway && cargo build --release -p loadtest
# BIN_DIR=target/debug runs the debug builds instead: a check of the script, not a measurement.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-4}
target_dir=${CARGO_TARGET_DIR:-target}
R=${BIN_DIR:-$target_dir/release}
work=$(mktemp -d)
export GOV_KEY=gov-key-123456
common() {
  cat <<EOF
[server]
listen = "127.0.0.1:$1"
workers = 1

[access_log]
enabled = false

[[route]]
model = "gpt"
targets = ["mo/mock-gpt"]
EOF
}
{ common 4802; cat <<'EOF'

[[provider]]
name = "mo"
kind = "openai"
base_url = "http://127.0.0.1:4801/v1"

[[key]]
name = "team"
key_env = "GOV_KEY"
EOF
} > "$work/off.toml"
sed 's/4802/4804/' "$work/off.toml" > "$work/base.toml"
{ common 4803; cat <<EOF

[custody]
path = "$work/custody.db"

[[tier]]
name = "canada"
jurisdictions = ["CA"]

[[provider]]
name = "mo"
kind = "openai"
base_url = "http://127.0.0.1:4801/v1"
region = "ca-central-1"
jurisdiction = "CA"

[[key]]
name = "team"
key_env = "GOV_KEY"
tiers = ["canada"]
default_tier = "canada"
pii = true
EOF
} > "$work/on.toml"

pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$work"' EXIT
taskset -c 1 "$R/ringway" mock-upstream --listen 127.0.0.1:4801 2>/dev/null &
pids+=($!)
taskset -c 0 "$R/ringway" serve --config "$work/off.toml" 2>/dev/null &
OFF=$!
pids+=($OFF)
taskset -c 0 "$R/ringway" serve --config "$work/on.toml" 2>/dev/null &
ON=$!
pids+=($ON)
if [ -n "${BASE_BIN:-}" ]; then
  taskset -c 0 "$BASE_BIN" serve --config "$work/base.toml" 2>/dev/null &
  BASE=$!
  pids+=($BASE)
fi
sleep 1
# The pii rows only mean something if "on" really substitutes and restores: one request with
# the entities of `--body pii` (loadtest/src/body.rs PII_TURN) must come back with its
# originals while the mock saw none of them.
pii_turn='Mail jane.roe@corp.test, cc ops@corp.test or call (415) 555-2671, SSN 123-45-6789, host 10.20.30.40.'
curl -s -X DELETE http://127.0.0.1:4801/mock/requests >/dev/null
answer=$(curl -s http://127.0.0.1:4803/v1/chat/completions -H "authorization: Bearer $GOV_KEY" \
  -H 'content-type: application/json' \
  -d "{\"model\":\"gpt\",\"messages\":[{\"role\":\"user\",\"content\":\"$pii_turn\"}]}")
upstream=$(curl -s http://127.0.0.1:4801/mock/requests)
for entity in jane.roe@corp.test ops@corp.test '(415) 555-2671' 123-45-6789 10.20.30.40; do
  if ! grep -qF -- "$entity" <<<"$answer" || grep -qF -- "$entity" <<<"$upstream"; then
    echo "PII check failed for $entity: answer $answer" >&2
    exit 1
  fi
done
curl -s -X DELETE http://127.0.0.1:4801/mock/requests >/dev/null
echo "PII check: the mock saw stand-ins only, the answer came back with the originals"
lt() {
  taskset -c 1 "$R/loadtest" "$@" --conns 16 --duration "$secs" --warmup 1 --phases 4 \
    --model gpt --header "authorization: Bearer $GOV_KEY" --quiet 2>&1 | tail -22
}
for mode in "" "--stream"; do
  if [ -n "${BASE_BIN:-}" ]; then
    echo "##### off (target) vs base (compare) ${mode:-non-stream}"
    lt http://127.0.0.1:4802 --compare http://127.0.0.1:4804 --target-pid "$OFF" \
      --compare-pid "$BASE" $mode
  fi
  for body in tiny pii 10k; do
    echo "##### on (target) vs off (compare), body $body ${mode:-non-stream}"
    lt http://127.0.0.1:4803 --compare http://127.0.0.1:4802 --target-pid "$ON" \
      --compare-pid "$OFF" --body "$body" $mode
  done
done
