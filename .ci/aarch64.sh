#!/usr/bin/env bash
# aarch64 stays a real target: cross-build the release binary for aarch64-unknown-linux-gnu
# with Debian's cross gcc, then run it under qemu-user (which has no io_uring, so on the epoll
# driver): the mock provider and a gateway in front of it, a request of each dialect (Chat
# Completions, Messages, Responses) to both provider kinds, streamed and not, checked, then
# SIGTERM and a clean exit of both. Installs what it needs (apt-get, rustup) when missing.
# Called by .ci/run; run alone: .ci/aarch64.sh. AARCH64_TARGET_DIR picks the target dir.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

TRIPLE=aarch64-unknown-linux-gnu
# Seconds a process may take to print its listening address (emulated: slower than native),
# a curl call may take, and the processes may take to exit after SIGTERM.
START_TIMEOUT=60
CURL_TIMEOUT=60
EXIT_TIMEOUT=60

target_dir=${AARCH64_TARGET_DIR:-${CARGO_TARGET_DIR:-target}/cross}
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac

echo "== aarch64: cross toolchain"
qemu=$(command -v qemu-aarch64-static || command -v qemu-aarch64 || true)
if ! command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || [ -z "$qemu" ]; then
  if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
    echo "aarch64: missing aarch64-linux-gnu-gcc or qemu-aarch64; install the Debian packages gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq -o DPkg::Lock::Timeout=600
  apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 gcc-aarch64-linux-gnu libc6-dev-arm64-cross \
    qemu-user-static >/dev/null
  qemu=$(command -v qemu-aarch64-static || command -v qemu-aarch64)
fi
if ! rustup target list --installed | grep -qx "$TRIPLE"; then
  rustup target add "$TRIPLE"
fi
aarch64-linux-gnu-gcc --version | head -1
"$qemu" --version | head -1

echo "== aarch64: release build ($target_dir)"
# The linker, and the C compiler for the crates that build C (ring, mimalloc, bundled SQLite).
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
# Without debuginfo: the same code and optimisation as a shipped build, and a lighter link under
# a loaded CI machine (the smoke reads no symbols).
CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_TARGET_DIR=$target_dir cargo build --locked --release --target "$TRIPLE" --bin ringway
real_bin=$target_dir/$TRIPLE/release/ringway
file "$real_bin" 2>/dev/null || true

echo "== aarch64: smoke under $qemu (epoll driver)"
make_scratch() {
  work=$(mktemp -d "${TMPDIR:-/tmp}/ringway-aarch64.XXXXXX")
  # lib.sh starts "$bin"; here that is the aarch64 binary under qemu-user (exec: same pid, so
  # a signal to it reaches ringway).
  bin=$work/ringway-aarch64
  printf '#!/bin/sh\nexec "%s" -L /usr/aarch64-linux-gnu "%s" "$@"\n' "$qemu" "$real_bin" >"$bin"
  chmod +x "$bin"
}
RINGWAY_TEST_DRIVER=epoll
# shellcheck source=tests/agents/lib.sh
source "$root/tests/agents/lib.sh"
make_scratch
pids=()
trap cleanup EXIT
start_mock_and_gateway a64 mock-claude
mock_pid=${pids[0]} gw_pid=${pids[1]}
grep -q 'driver epoll' "$work/gateway.log" || fail "the gateway does not say it runs on epoll: $(cat "$work/gateway.log")"

# POST $2 (a JSON body) to $1; the body answered in $work/out, the status printed.
post() {
  curl -sS --max-time "$CURL_TIMEOUT" -o "$work/out" -w '%{http_code}' \
    -H 'content-type: application/json' -H 'anthropic-version: 2023-06-01' \
    -d "$2" "$GW_URL$1"
}

# Checks the answer in $work/out for dialect $1, streamed ($2 = true) or not.
check() {
  python3 - "$work/out" "$1" "$2" <<'PY'
import json, sys
path, dialect, stream = sys.argv[1], sys.argv[2], sys.argv[3] == "true"
text = open(path).read()
if stream:
    data = [l[5:].strip() for l in text.splitlines() if l.startswith("data:")]
    events = [json.loads(d) for d in data if d != "[DONE]"]
    if dialect == "chat":
        assert data and data[-1] == "[DONE]", text
        said = "".join(c.get("delta", {}).get("content") or "" for e in events for c in e["choices"])
    elif dialect == "messages":
        assert events and events[-1]["type"] == "message_stop", text
        said = "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")
    else:
        assert events and events[-1]["type"] == "response.completed", text
        said = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
else:
    v = json.loads(text)
    if dialect == "chat":
        assert v["object"] == "chat.completion", v
        said = v["choices"][0]["message"]["content"]
    elif dialect == "messages":
        assert v["type"] == "message", v
        said = "".join(b.get("text", "") for b in v["content"])
    else:
        assert v["object"] == "response" and v["status"] == "completed", v
        said = "".join(c["text"] for o in v["output"] if o["type"] == "message" for c in o["content"])
assert said.strip(), f"no text in the answer: {text}"
PY
}

failed=()
for kind in openai anthropic; do
  model=a64-$kind
  for stream in false true; do
    for dialect in chat messages responses; do
      case $dialect in
        chat) path=/v1/chat/completions
          body="{\"model\":\"$model\",\"stream\":$stream,\"messages\":[{\"role\":\"user\",\"content\":\"hello from aarch64\"}]}" ;;
        messages) path=/v1/messages
          body="{\"model\":\"$model\",\"stream\":$stream,\"max_tokens\":64,\"messages\":[{\"role\":\"user\",\"content\":\"hello from aarch64\"}]}" ;;
        responses) path=/v1/responses
          body="{\"model\":\"$model\",\"stream\":$stream,\"input\":\"hello from aarch64\"}" ;;
      esac
      case_name="$dialect stream=$stream via the $kind-kind provider"
      status=$(post "$path" "$body") || status="curl failed"
      if [ "$status" = 200 ] && check "$dialect" "$stream"; then
        echo "ok: $case_name"
      else
        echo "FAIL: $case_name: status $status: $(head -c 2000 "$work/out")" >&2
        failed+=("$case_name")
      fi
    done
  done
done

# A clean stop: SIGTERM, then the gateway drains and exits 0 (it says so in its log). The
# mock has no drain: SIGTERM ends it (143), which only shows that qemu-user passes signals on.
for what in gateway mock; do
  if [ "$what" = gateway ]; then pid=$gw_pid want=0; else pid=$mock_pid want=143; fi
  kill -TERM "$pid"
  deadline=$((SECONDS + EXIT_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    failed+=("the $what still runs ${EXIT_TIMEOUT}s after SIGTERM")
    continue
  fi
  rc=0
  wait "$pid" || rc=$?
  [ "$rc" = "$want" ] || failed+=("the $what exited $rc after SIGTERM, want $want")
done
grep -q 'drained; exiting' "$work/gateway.log" || failed+=("the gateway did not drain")
pids=()
if [ ${#failed[@]} -gt 0 ]; then
  echo "gateway log (last lines):" >&2
  tail -30 "$work/gateway.log" >&2
  fail "aarch64 smoke: ${failed[*]}"
fi
echo "aarch64: 12 requests answered; on SIGTERM the gateway drained and exited 0"
