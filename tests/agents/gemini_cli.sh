#!/usr/bin/env bash
# The real Gemini CLI (`gemini -p`, npm @google/gemini-cli, pinned in .ci/gemini-cli/package.json)
# through the real ringway binary's Gemini dialect (`GOOGLE_GEMINI_BASE_URL`, API-key auth with
# the gateway's key as `GEMINI_API_KEY`) to the mock provider, over a gemini-kind route (the
# Gemini API, a Gemini 3 model: the mock refuses a function call that comes back without its
# thought signature), an openai-kind route (Chat Completions upstream) and an anthropic-kind
# route (Messages upstream). Per route: a plain turn, and a turn where the CLI calls its
# `read_file` tool (the mock is steered with `mock:tool` / `mock:args`), sends the file back as
# a function response and prints the mock's answer. The mock's record of what it received
# (`GET /mock/requests`) shows what the gateway sent upstream.
#
# The CLI runs with a private HOME whose settings pick API-key auth and turn off usage
# statistics, telemetry, update checks, IDE integration and folder trust prompts, in an
# environment holding only what it needs (no proxy, no Google credentials): it talks to
# 127.0.0.1 only.
#
# Every case runs, then the script fails if any did. Run alone: tests/agents/gemini_cli.sh
# (RINGWAY_BIN picks the binary, default target/debug/ringway; GEMINI_CLI_BIN the agent).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

# Seconds one `gemini -p` run may take (a run takes ~2 s; the CLI retries a 429 or 5xx with
# backoff, which this bounds).
GEMINI_TIMEOUT=120
START_TIMEOUT=20
CURL_TIMEOUT=30
# Words the mock answers the plain turn with (`mock:tokens=`): an exact, agent-independent text.
PLAIN_WORDS=6
# The gateway's key: the CLI presents it (x-goog-api-key); it must never reach the provider.
AGENT_GATEWAY_KEY=rw-gemini-cli-gateway-key

bin=${RINGWAY_BIN:-target/debug/ringway}
gemini=${GEMINI_CLI_BIN:-.ci/gemini-cli/node_modules/.bin/gemini}
case $gemini in /*) ;; *) gemini=$root/$gemini ;; esac
case $bin in /*) ;; *) bin=$root/$bin ;; esac
want_version=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["dependencies"]["@google/gemini-cli"])' .ci/gemini-cli/package.json)

# shellcheck source=tests/agents/lib.sh
source "$root/tests/agents/lib.sh"

# ---------------------------------------------------------------------------------------------
# One case, run as a child of this script so `set -e` and `exit` stop that case only.
if [ "${1:-}" = case ]; then
  kind=$2 what=$3
  route="gc-$kind"
  tag="gc-case-$kind-$what"
  home=$work/home-$tag
  project=$work/project-$tag
  mkdir -p "$home/.gemini" "$home/tmp" "$project"
  out=$work/$tag.out err=$work/$tag.err
  # API-key auth chosen in the settings (no auth dialog); nothing that would leave 127.0.0.1.
  cat >"$home/.gemini/settings.json" <<EOF
{
  "security": {"auth": {"selectedType": "gemini-api-key"}, "folderTrust": {"enabled": false}},
  "general": {"enableAutoUpdate": false, "enableAutoUpdateNotification": false},
  "privacy": {"usageStatisticsEnabled": false},
  "telemetry": {"enabled": false},
  "ide": {"enabled": false}
}
EOF
  run_gemini() {
    local rc=0
    # env -i: the CLI reads GOOGLE_*/GEMINI_* variables and the proxy ones (which it would use
    # for the gateway too); only these reach it.
    # TMPDIR: its error reports go there.
    (cd "$project" && env -i PATH="$PATH" HOME="$home" TMPDIR="$home/tmp" TERM=dumb LANG=C.UTF-8 \
      GEMINI_API_KEY="$AGENT_GATEWAY_KEY" GOOGLE_GEMINI_BASE_URL="$GW_URL" \
      timeout "$GEMINI_TIMEOUT" "$gemini" -p "$1" -m "$route" --output-format json \
      </dev/null >"$out" 2>"$err") || rc=$?
    if [ "$rc" != 0 ]; then
      echo "gemini exited $rc; stdout:" >&2
      tail -c 3000 "$out" >&2
      echo "stderr:" >&2
      tail -c 3000 "$err" >&2
      fail "$tag: gemini -p exited $rc"
    fi
  }
  # From the JSON result, after checking it reports no error: the tool calls the CLI ran
  # (NAME:SUCCEEDED/CALLED, comma-separated) on the first line, then its answer.
  result() {
    python3 - "$out" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
if r.get("error"):
    print(f"gemini reports an error: {r['error']!r}")
    sys.exit(1)
by_name = r["stats"]["tools"]["byName"]
print(",".join(f"{n}:{t['success']}/{t['count']}" for n, t in sorted(by_name.items())))
print(r["response"].strip())
PY
  }
  # Sets `tools` and `answer` from `result`.
  read_result() {
    local res
    res=$(result) || fail "$tag: $res"
    tools=$(head -n 1 <<<"$res")
    answer=$(tail -n +2 <<<"$res")
  }
  # The requests the mock received for this case (their bodies hold the case tag), as JSON.
  upstream() {
    curl -sS --max-time "$CURL_TIMEOUT" "$MOCK_URL/mock/requests" >"$work/$tag.upstream.all"
    python3 - "$work/$tag.upstream.all" "$tag" >"$work/$tag.upstream" <<'PY'
import json, sys
records = [r for r in json.load(open(sys.argv[1])) if sys.argv[2] in r["body"]]
if not records:
    sys.exit("the mock received no request for this case")
print(json.dumps(records))
PY
  }
  # Checks on every upstream request of the case, per provider kind.
  check_upstream() {
    python3 - "$work/$tag.upstream" "$kind" "$AGENT_GEMINI_MODEL" "$AGENT_GEMINI_PROVIDER_KEY" "$AGENT_GATEWAY_KEY" <<'PY'
import json, sys
records = json.load(open(sys.argv[1]))
kind, model, provider_key, gateway_key = sys.argv[2:6]
gemini_fields = ("contents", "systemInstruction", "generationConfig")
for r in records:
    assert r["answered"] == 200, f"the mock answered {r['answered']} to {r['path']}"
    assert gateway_key not in json.dumps(r["headers"]), f"the gateway's key reached the provider: {r['headers']}"
    body = json.loads(r["body"])
    if kind == "gemini":
        # Passed through: the CLI's own request, to the provider's model, with its key.
        path = r["path"]
        assert path in (f"/v1beta/models/{model}:streamGenerateContent?alt=sse",
                        f"/v1beta/models/{model}:generateContent"), path
        assert r["headers"].get("x-goog-api-key") == provider_key, r["headers"]
        assert "authorization" not in r["headers"], r["headers"]
        for field in gemini_fields:
            assert field in body, f"gemini upstream lost `{field}`: {sorted(body)}"
        names = {d["name"] for t in body.get("tools", []) for d in t.get("functionDeclarations", [])}
    elif kind == "anthropic":
        assert r["path"].split("?")[0].endswith("/v1/messages"), r["path"]
        for field in gemini_fields:
            assert field not in body, f"anthropic upstream still has `{field}`"
        assert "system" in body, f"the CLI's system instruction did not become `system`: {sorted(body)}"
        names = {t.get("name") for t in body.get("tools", [])}
    else:
        assert r["path"].endswith("/chat/completions"), f"not a Chat Completions request: {r['path']}"
        for field in gemini_fields:
            assert field not in body, f"openai upstream still has `{field}`"
        roles = {m.get("role") for m in body["messages"]}
        assert roles <= {"system", "developer", "user", "assistant", "tool"}, roles
        assert body["messages"][0]["role"] in ("system", "developer"), body["messages"][0]
        names = {t["function"]["name"] for t in body.get("tools", []) if t.get("type") == "function"}
    # The CLI's tools reached the provider, its read_file among them.
    assert "read_file" in names, f"read_file is not among the tools upstream: {sorted(names)}"
print(f"{len(records)} upstream request(s) checked")
PY
  }

  case $what in
    plain)
      run_gemini "Say hi ($tag). mock:notools mock:tokens=$PLAIN_WORDS"
      read_result
      want=$(seq -f 'w%g' 1 "$PLAIN_WORDS" | paste -sd' ')
      [ "$answer" = "$want" ] || fail "$tag: answer '$answer', want '$want'"
      [ -z "$tools" ] || fail "$tag: the CLI ran tools in a plain turn: $tools"
      upstream || fail "$tag: reading the mock's requests"
      check_upstream || fail "$tag: upstream requests"
      ;;
    tool)
      note=$project/note-$kind.txt
      content="ringway-gemini-cli-note-$kind"
      printf '%s\n' "$content" >"$note"
      run_gemini "Read the note ($tag). mock:tool=read_file mock:args={\"file_path\":\"$note\"}"
      read_result
      [ "$tools" = "read_file:1/1" ] || fail "$tag: tool calls '$tools', want read_file:1/1"
      # The mock acknowledges a tool result by echoing its first words.
      case $answer in
        "Tool result received: "*"$content"*) ;;
        *) fail "$tag: answer '$answer', want the mock's acknowledgement of $content" ;;
      esac
      upstream || fail "$tag: reading the mock's requests"
      check_upstream || fail "$tag: upstream requests"
      # The last request carries the read_file call and ends in its result, holding the file.
      python3 - "$work/$tag.upstream" "$kind" "$note" "$content" <<'PY' || fail "$tag: tool round trip"
import json, sys
records, kind, note, content = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3], sys.argv[4]
assert len(records) == 2, f"{len(records)} upstream requests, want 2 (the call, then the answer)"
body = json.loads(records[-1]["body"])
if kind == "gemini":
    contents = body["contents"]
    last = contents[-1]
    assert last["role"] == "user", last
    results = [p["functionResponse"] for p in last["parts"] if "functionResponse" in p]
    assert results, f"last content has no functionResponse: {last}"
    text = json.dumps(results[0]["response"])
    calls = [p for c in contents if c.get("role") == "model" for p in c["parts"] if "functionCall" in p]
    assert calls and calls[-1]["functionCall"]["name"] == "read_file", calls
    assert calls[-1]["functionCall"]["args"] == {"file_path": note}, calls[-1]
    # Gemini 3: the call went back with the signature the mock gave it (it answered 200).
    assert calls[-1].get("thoughtSignature"), f"the call lost its thought signature: {calls[-1]}"
    assert results[0]["name"] == "read_file", results[0]
    assert results[0].get("id") == calls[-1]["functionCall"].get("id"), (results[0], calls[-1])
elif kind == "anthropic":
    messages = body["messages"]
    last = messages[-1]
    assert last["role"] == "user", last
    results = [b for b in last["content"] if b.get("type") == "tool_result"]
    assert results, f"last message has no tool_result: {last}"
    text = json.dumps(results[0]["content"])
    calls = [b for m in messages if m["role"] == "assistant" and isinstance(m["content"], list)
             for b in m["content"] if b.get("type") == "tool_use"]
    assert calls and calls[-1]["name"] == "read_file", calls
    assert calls[-1]["input"] == {"file_path": note}, calls[-1]
    assert calls[-1]["id"] == results[0]["tool_use_id"], (calls[-1], results[0])
else:
    messages = body["messages"]
    last = messages[-1]
    assert last["role"] == "tool", f"last message is not a tool result: {last}"
    text = json.dumps(last["content"])
    calls = [c for m in messages if m["role"] == "assistant" for c in m.get("tool_calls") or []]
    assert calls and calls[-1]["function"]["name"] == "read_file", calls
    assert json.loads(calls[-1]["function"]["arguments"]) == {"file_path": note}, calls[-1]
    assert calls[-1]["id"] == last["tool_call_id"], (calls[-1], last)
assert content in text, f"tool result lacks the file's content: {text}"
print("tool round trip checked")
PY
      ;;
    *) fail "unknown case $what" ;;
  esac
  echo "ok: $tag"
  exit 0
fi

# ---------------------------------------------------------------------------------------------
# Setup: the binaries, a mock, a gateway routing gc-gemini / gc-openai / gc-anthropic.
[ -x "$bin" ] || fail "no ringway binary at $bin (cargo build --locked --bin ringway, or set RINGWAY_BIN)"
if [ ! -x "$gemini" ]; then
  fail "Gemini CLI is not installed at $gemini: run \`npm ci --prefix .ci/gemini-cli\` (tests/setup.sh does)"
fi
make_work gemini-cli
mkdir -p "$work/home-version"
have_version=$(env -i PATH="$PATH" HOME="$work/home-version" TMPDIR="$work/home-version" timeout 60 "$gemini" --version) \
  || fail "$gemini --version failed"
[ "$have_version" = "$want_version" ] \
  || fail "Gemini CLI $have_version at $gemini, want $want_version (npm ci --prefix .ci/gemini-cli)"
echo "Gemini CLI $have_version, ringway $bin"

start_mock_and_gateway gc mock-claude
export work MOCK_URL GW_URL

failed=()
for kind in gemini openai anthropic; do
  for what in plain tool; do
    echo "-- gemini -p via the $kind-kind route: $what"
    bash "$0" case "$kind" "$what" || failed+=("$kind-$what")
  done
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "gateway log (last lines):" >&2
  tail -20 "$work/gateway.log" >&2
  fail "Gemini CLI agent cases failed: ${failed[*]}"
fi
echo "Gemini CLI agent cases passed"
