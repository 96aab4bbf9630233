#!/usr/bin/env bash
# Bounded fuzz smoke run of every target in fuzz/Cargo.toml: SECONDS_PER_TARGET each (default 20).
# Needs a nightly toolchain and cargo-fuzz; says why and exits 0 when there is no nightly.
set -euo pipefail
cd "$(dirname "$0")"
per=${SECONDS_PER_TARGET:-20}
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz smoke: SKIPPED — no nightly toolchain on this machine (cargo +nightly fails)"
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz smoke: cargo-fuzz missing; install it with: cargo install cargo-fuzz --locked" >&2
  exit 1
fi
targets=$(sed -n 's/^name = "\([a-z0-9_]*\)"$/\1/p' Cargo.toml | grep -v '^ringway-fuzz$')
cargo +nightly fuzz build >/dev/null
for t in $targets; do
  echo "fuzz smoke: $t for ${per}s"
  cargo +nightly fuzz run "$t" -- -max_total_time="$per" -print_final_stats=1 2>&1 \
    | grep -E 'stat::number_of_executed_units|ERROR|panicked|SUMMARY' || true
  # A crash leaves an artifact and a non-zero exit above would have been masked by grep: check.
  if ls "artifacts/$t"/crash-* >/dev/null 2>&1; then
    echo "fuzz smoke: $t FOUND A CRASH: $(ls artifacts/$t/crash-*)" >&2
    exit 1
  fi
done
echo "fuzz smoke: all targets ran clean"
