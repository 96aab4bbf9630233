#!/usr/bin/env bash
# Bounded fuzz smoke run of every target in fuzz/Cargo.toml: SECONDS_PER_TARGET each (default 20),
# one after another. Any finding (crash, leak, timeout, OOM) fails the run.
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

# Per-target libFuzzer flags beyond the defaults (max_len 4096 unless a corpus is larger).
flags_for() {
  case "$1" in
    # The 64 KiB head bounds (request and provider response) must be reachable, and from the
    # first second: a 20 s run would not grow inputs that far by itself.
    http1_head | upstream_response) echo "-max_len=70000 -len_control=0" ;;
    config_load) echo "-dict=config_load.dict" ;;
    *) echo "" ;;
  esac
}

# Read-only seed directories beside the target's own corpus: golden bodies are what the
# translators see in production (the targets read them as is), so CI starts from them.
seeds_for() {
  case "$1" in
    # The Responses request target also starts from Codex-shaped Responses bodies (one with
    # reasoning sealed by its key for its provider, which a fuzzer could never forge); the
    # Responses stream targets read the golden upstream streams (stream_*/input.sse).
    translate_req_responses) echo "../tests/golden seeds/translate_req_responses" ;;
    translate_req_* | translate_response | translate_error | sse_stream_pipeline | \
      translate_stream_a2r | translate_stream_c2r | usage_meter | tokens_estimate | \
      translate_budgeted | json_scan | json_reader) echo "../tests/golden" ;;
    # Gemini answers, a stream (chunks split at 0xff) and a tool turn, beside the Chat requests.
    translate_chat_gemini) echo "../tests/golden seeds/translate_chat_gemini" ;;
    # Chat and Anthropic streams to a Gemini client (three header bytes first: thoughts,
    # fail, JSON array), Gemini requests with tools and schemas, answers of both providers.
    translate_gemini_client) echo "../tests/golden seeds/translate_gemini_client" ;;
    # Gemini paths with queries: every version, a model with `:`, an encoded tuned model,
    # the list, one model, a method not served.
    gemini_inbound) echo "seeds/gemini_inbound" ;;
    config_load) echo "seeds/config_load" ;;
    # A head of more fields than the upstream decoder reads (a CI finding, kept as a seed).
    http1_response_head) echo "seeds/http1_response_head" ;;
    # Real chunks (the mock's, a tool call's, usage, reasoning, logprobs).
    openai_chunk) echo "seeds/openai_chunk" ;;
    # Real events (the mock's stream; tool input, thinking, signatures, escapes).
    anthropic_event) echo "seeds/anthropic_event" ;;
    # Prompts with real entities (the 0xFF escape inserts one from the target's list).
    pii_restore) echo "seeds/pii_restore" ;;
    # Request bodies of the three dialects with entities, escapes beside them and JSON text
    # in strings (raw bodies: the target reads any input starting with `{` as one).
    pii_substitute) echo "seeds/pii_substitute" ;;
    # Responses bodies of sealed items (compaction, reasoning) with entities in their text.
    sealed_open_pii) echo "seeds/sealed_open_pii" ;;
    # Client streams: the RFC's masked examples, fragments with pings between, a close, and
    # a Codex-shaped response.create (3 bytes of pattern and bounds first).
    ws_frame) echo "seeds/ws_frame" ;;
    # Bedrock streams (two bytes of pattern and mode first): chunks with padding, a throttling
    # exception, an unmodeled error, and mode 1's 0xFF-separated parts (frames the target
    # builds). Written by a few lines of Python (struct + zlib.crc32), not copied.
    aws_event_stream) echo "seeds/aws_event_stream" ;;
    # A SigV4-signed Bedrock request (a wrong signature, the rest well formed) and a
    # JWT-bearer form, so mutations reach the signer and the JWT checks.
    mock_cloud_auth) echo "seeds/mock_cloud_auth" ;;
    *) echo "" ;;
  esac
}

targets=$(sed -n 's/^name = "\([a-z0-9_]*\)"$/\1/p' Cargo.toml | grep -v '^ringway-fuzz$')
cargo +nightly fuzz build >/dev/null
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for t in $targets; do
  echo "fuzz smoke: $t for ${per}s"
  mkdir -p "corpus/$t"
  rc=0
  # shellcheck disable=SC2046 # the flag and seed lists are meant to split into words
  cargo +nightly fuzz run "$t" "corpus/$t" $(seeds_for "$t") -- \
    -max_total_time="$per" -print_final_stats=1 $(flags_for "$t") >"$log" 2>&1 || rc=$?
  grep -E 'stat::number_of_executed_units|ERROR|panicked|SUMMARY' "$log" || true
  if [ "$rc" -ne 0 ]; then
    tail -n 40 "$log" >&2
    echo "fuzz smoke: $t FAILED (exit $rc); artifacts: $(ls artifacts/"$t" 2>/dev/null | tr '\n' ' ')" >&2
    exit 1
  fi
done
echo "fuzz smoke: all $(echo "$targets" | wc -w) targets ran clean"
