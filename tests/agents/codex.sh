#!/usr/bin/env bash
# The real Codex agent (`codex exec`, pinned in .ci/codex/package.json) through the real ringway
# binary's Responses endpoint to the mock provider, once over an openai-kind route (Chat
# Completions upstream) and once over an anthropic-kind route (Messages upstream, with a signed
# thinking block), and the tool turn once more over a bedrock-kind route (Messages as Bedrock's
# InvokeModel, signed). Per route:
# - a tool turn: the mock calls Codex's `exec_command` tool (`pwd`), Codex runs it, sends the
#   output back, and the mock's answer echoes it;
# - a second turn (`codex exec resume --last`) carrying that history back, the reasoning item
#   included (anthropic: its sealed thinking block must reach the provider again, signed);
# - a compaction: a low `model_auto_compact_token_limit` makes Codex summarise the conversation
#   through the gateway before it goes on; and the same with the provider named `OpenAI`, for
#   which Codex asks the server to compact (`compaction_trigger`): the gateway makes the summary
#   and hands it out as a sealed `compaction` item, which Codex sends back;
# - the three again with Codex's built-in OpenAI provider (`openai_base_url`), which speaks the
#   Responses WebSocket (warm-up, incremental input by `previous_response_id` with
#   `store: false`, remote compaction over the socket): no reconnect or fallback line may show.
# To a gemini-kind route (the Gemini API, a Gemini 3 model, whose thought signatures the mock
# enforces: a function call sent back without the signature it was given, or with another one,
# is a 400): the tool turn, a resumed second turn, and a tool loop (two `exec_command` calls in
# a row, then text: `mock:calls=2`). Codex's real tools, whose schemas (additionalProperties, …)
# Gemini's `parameters` subset refuses, must reach it in a form the mock accepts (it answers
# 200).
# The mock's record (`GET /mock/requests`) shows what reached the provider.
#
# Every case runs, then the script fails if any did. Run alone: tests/agents/codex.sh
# (RINGWAY_BIN picks the binary, default target/debug/ringway; CODEX_BIN the agent).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

# Seconds one `codex exec` run may take (a 400 MB native binary; a run takes a few seconds).
CODEX_TIMEOUT=120
START_TIMEOUT=20
CURL_TIMEOUT=30
# Tokens above which Codex compacts (the mock counts Codex's own instructions far above it).
COMPACT_LIMIT=2000

bin=${RINGWAY_BIN:-target/debug/ringway}
codex=${CODEX_BIN:-.ci/codex/node_modules/.bin/codex}
case $codex in /*) ;; *) codex=$root/$codex ;; esac
case $bin in /*) ;; *) bin=$root/$bin ;; esac
want_version=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["dependencies"]["@openai/codex"])' .ci/codex/package.json)

# shellcheck source=tests/agents/lib.sh
source "$root/tests/agents/lib.sh"

# ---------------------------------------------------------------------------------------------
# One case, run as a child of this script so `set -e` and `exit` stop that case only.
if [ "${1:-}" = case ]; then
  kind=$2 what=$3
  tag="cx-$kind-$what"
  home=$work/home-$tag
  project=$work/project-$tag
  mkdir -p "$home" "$project"
  # CODEX_HOME: config, sessions. Only 127.0.0.1: plugin sync and metrics export are off.
  if [ "$what" = ws ]; then
    cat >"$home/config.toml" <<EOF
model = "cx-$kind"
openai_base_url = "$GW_URL/v1"
approval_policy = "never"
sandbox_mode = "danger-full-access"
check_for_update_on_startup = false

[features]
plugins = false

[otel]
metrics_exporter = "none"

[analytics]
enabled = false
EOF
  else
  cat >"$home/config.toml" <<EOF
model = "cx-$kind"
model_provider = "ringway"
approval_policy = "never"
sandbox_mode = "danger-full-access"
check_for_update_on_startup = false

[model_providers.ringway]
name = "$([ "$what" = remote ] && echo OpenAI || echo ringway)"
base_url = "$GW_URL/v1"
env_key = "RINGWAY_TEST_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0

[features]
plugins = false

[otel]
metrics_exporter = "none"

[analytics]
enabled = false
EOF
  fi
  n=0
  run_codex() {
    n=$((n + 1))
    local out=$work/$tag.$n.out err=$work/$tag.$n.err rc=0
    (cd "$project" && CODEX_HOME=$home RINGWAY_TEST_KEY=sk-test OPENAI_API_KEY=sk-test timeout "$CODEX_TIMEOUT" \
      "$codex" exec --skip-git-repo-check "$@" </dev/null >"$out" 2>"$err") || rc=$?
    if [ "$rc" != 0 ]; then
      echo "codex exited $rc; stdout:" >&2
      tail -c 2000 "$out" >&2
      echo "stderr:" >&2
      tail -c 4000 "$err" >&2
      fail "$tag: codex exec exited $rc"
    fi
    last_out=$out
    if [ "$what" = ws ] && grep -Eq "Reconnecting|Falling back|failed to connect to Responses WebSocket" "$err"; then
      fail "$tag: Codex did not stay on the WebSocket: $(grep -E "Reconnecting|Falling back|WebSocket" "$err" | head -3)"
    fi
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

  extra=""
  [ "$kind" = openai ] || extra="mock:thinking"
  # The loop: a second exec_command call after the first result, then text.
  [ "$what" = loop ] && extra="$extra mock:calls=2"
  run_codex "Where are we ($tag)? mock:tool=exec_command mock:args={\"cmd\":\"pwd\"} $extra"
  # The mock acknowledges a tool result (the result itself is checked upstream, below).
  grep -q "Tool result received" "$last_out" || fail "$tag: no tool-result answer: $(tail -c 600 "$last_out")"

  case $what in
    tool | loop) ;;
    resume)
      run_codex resume --last "And now ($tag) mock:notools mock:tokens=5"
      grep -q "w1 w2 w3 w4 w5" "$last_out" || fail "$tag: second turn answer: $(tail -c 600 "$last_out")"
      ;;
    compact | remote | ws)
      # Above the limit before the turn starts: Codex summarises first, then goes on. Named
      # `OpenAI`, the provider gets remote compaction: a compaction_trigger the gateway turns
      # into its own summary request, answered with one sealed compaction item that Codex
      # sends back on the next request.
      run_codex -c "model_auto_compact_token_limit=$COMPACT_LIMIT" resume --last \
        "Go on ($tag) mock:notools mock:tokens=3"
      grep -q "w1 w2 w3" "$last_out" || fail "$tag: answer after compaction: $(tail -c 600 "$last_out")"
      ;;
    *) fail "unknown case $what" ;;
  esac

  if [ "$what" = ws ]; then
    grep -q '"endpoint":"responses_websocket".*"status":101' "$work/gateway.log" ||
      fail "$tag: the gateway upgraded no WebSocket"
  fi
  upstream
  python3 - "$work/$tag.upstream" "$kind" "$what" "$tag" "$AGENT_GEMINI_MODEL" "$AGENT_GEMINI_PROVIDER_KEY" <<'PY' || fail "$tag: upstream requests"
import json, sys
records = json.load(open(sys.argv[1]))
kind, what, tag, gemini_model, gemini_key = sys.argv[2:7]
bodies = [json.loads(r["body"]) for r in records]
# What Gemini's `parameters` (its OpenAPI-subset Schema) knows; any other keyword is a 400.
SUBSET = {"type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems",
          "properties", "required", "minProperties", "maxProperties", "minLength", "maxLength",
          "pattern", "example", "anyOf", "propertyOrdering", "default", "items", "minimum",
          "maximum"}

def outside_subset(schema, found):
    if not isinstance(schema, dict):
        return found
    found |= set(schema) - SUBSET
    for sub in (schema.get("properties") or {}).values():
        outside_subset(sub, found)
    outside_subset(schema.get("items"), found)
    for sub in schema.get("anyOf") or []:
        outside_subset(sub, found)
    return found

if kind == "gemini":
    for r, b in zip(records, bodies):
        # A missing or altered thought signature, or a schema outside `parameters`' subset,
        # would have been a 400.
        assert r["answered"] == 200, f"the mock answered {r['answered']}: {r['path']}"
        assert r["path"] in (f"/v1beta/models/{gemini_model}:streamGenerateContent?alt=sse",
                             f"/v1beta/models/{gemini_model}:generateContent"), r["path"]
        assert r["headers"].get("x-goog-api-key") == gemini_key, r["headers"]
        assert "authorization" not in r["headers"], r["headers"]
        for field in ("model", "input", "instructions", "reasoning", "store"):
            assert field not in b, f"gemini upstream still has `{field}`"
        decls = [d for t in b.get("tools", []) for d in t.get("functionDeclarations", [])]
        refused = set()
        for d in decls:
            if "parameters" in d:
                extra = outside_subset(d["parameters"], set())
                assert not extra, f"{d['name']}: `parameters` holds {sorted(extra)}"
            refused |= outside_subset(d.get("parametersJsonSchema"), set())
        assert refused or all("parameters" in d for d in decls), "no schema needed the JSON Schema form"
    names = {d["name"] for t in bodies[0].get("tools", []) for d in t.get("functionDeclarations", [])}
    assert "exec_command" in names, sorted(names)
    assert any(n.startswith("multi_agent_v1__") for n in names), sorted(names)

    def turn(b):
        # The contents after the last user content with text (the turn's prompt).
        contents = b["contents"]
        start = max(i for i, c in enumerate(contents)
                    if c.get("role", "user") == "user" and any("text" in p for p in c["parts"]))
        return contents[start + 1:]

    def calls(b):
        return [p for c in turn(b) if c.get("role") == "model" for p in c["parts"] if "functionCall" in p]

    def results(b):
        return [p["functionResponse"] for c in turn(b) if c.get("role") == "user" for p in c["parts"]
                if "functionResponse" in p]

    with_results = [b for b in bodies if results(b)]
    assert with_results, "no request carried the tool's output"
    assert any(f"project-{tag}" in json.dumps(results(b)) for b in with_results), "the tool's output is not upstream"
    for b in with_results:
        for c in calls(b):
            assert c["functionCall"]["name"] == "exec_command", c
            assert c.get("thoughtSignature"), f"a call went back without its signature: {c}"
    if what == "loop":
        rounds = sorted(len(calls(b)) for b in bodies)
        assert rounds == [0, 1, 2], f"calls per request {rounds}, want 0, 1, 2 (two in a row, then text)"
    if what == "resume":
        assert len(bodies) >= 3, f"only {len(bodies)} requests"
        # The second turn carries the first one back: its call and the call's output.
        last = bodies[-1]["contents"]
        assert any("functionCall" in p for c in last for p in c["parts"]), "the first turn's call is gone"
    print(f"{len(records)} upstream request(s) checked")
    sys.exit(0)
for r, b in zip(records, bodies):
    if kind == "bedrock":
        # Responses translated to Messages, sent as InvokeModel: model in the path, signed.
        assert r["path"].startswith("/model/") and "/invoke" in r["path"], r["path"]
        assert b["anthropic_version"] == "bedrock-2023-05-31" and "model" not in b and "stream" not in b, sorted(b)
        assert r["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 "), r["headers"]
        continue
    want = "/v1/messages" if kind == "anthropic" else "/chat/completions"
    assert r["path"].split("?")[0].endswith(want), r["path"]
messages_api = kind in ("anthropic", "bedrock")

def has_tool_result(b):
    if messages_api:
        return any(blk.get("type") == "tool_result" for m in b["messages"] if isinstance(m.get("content"), list)
                   for blk in m["content"])
    return any(m.get("role") == "tool" for m in b["messages"])

assert any(has_tool_result(b) for b in bodies), "no request carried the tool's output"
# The tool ran in the case's project directory: its output (from `pwd`) went back upstream.
assert any(f"project-{tag}" in json.dumps(b) for b in bodies if has_tool_result(b)), "the tool's output is not upstream"
if messages_api:
    # Codex's tools reached the provider as Anthropic tools; its web_search as Anthropic's.
    names = {t.get("name") for t in bodies[0].get("tools", [])}
    assert {"exec_command", "web_search"} <= names, sorted(names)
    # The sealed reasoning item came back and was opened: a signed thinking block precedes the
    # tool call in the assistant turn.
    later = [b for b in bodies if has_tool_result(b)]
    signed = [blk for b in later for m in b["messages"] if m["role"] == "assistant" and isinstance(m["content"], list)
              for blk in m["content"] if blk.get("type") == "thinking" and blk.get("signature")]
    assert signed, "no signed thinking block went back to the provider"
else:
    names = {t["function"]["name"] for t in bodies[0].get("tools", [])}
    assert "exec_command" in names, sorted(names)
# Codex's namespace tool (multi_agent_v1, for a model it does not know) went up flattened.
assert any(n.startswith("multi_agent_v1__") for n in names), sorted(names)
if what == "resume":
    assert len(bodies) >= 3, f"only {len(bodies)} requests"
if what in ("remote", "ws"):
    asked = [b for b in bodies if "Summarise the conversation so far" in json.dumps(b)]
    assert asked, "no summary request reached the provider"
    opened = [b for b in bodies if "The earlier part of this conversation was compacted" in json.dumps(b)]
    assert opened, "the compaction item did not come back opened"
if what == "compact":
    summarised = [b for b in bodies if "CONTEXT CHECKPOINT COMPACTION" in json.dumps(b)]
    assert summarised, "no compaction request reached the provider"
    # Codex asks for the summary without tools (to Anthropic, the tools its history used are
    # declared again, as Messages requires, but nothing else).
    tools = summarised[0].get("tools") or []
    if kind == "openai":
        assert not tools, "the compaction request carried tools"
    else:
        assert "web_search" not in {t.get("name") for t in tools}, tools
print(f"{len(records)} upstream request(s) checked")
PY
  echo "ok: $tag"
  exit 0
fi

# ---------------------------------------------------------------------------------------------
# Setup: the binaries, a mock, a gateway routing cx-openai / cx-anthropic / cx-gemini /
# cx-bedrock to the mock.
[ -x "$bin" ] || fail "no ringway binary at $bin (cargo build --locked --bin ringway, or set RINGWAY_BIN)"
[ -x "$codex" ] || fail "Codex is not installed at $codex: run \`npm ci --prefix .ci/codex\` (.ci/run does)"
have_version=$(timeout 60 "$codex" --version) || fail "$codex --version failed"
case $have_version in
  *" $want_version") ;;
  *) fail "Codex '$have_version' at $codex, want $want_version (npm ci --prefix .ci/codex)" ;;
esac
echo "$have_version, ringway $bin"

make_work codex

# cx-bedrock: the mock's Bedrock side, a model id with a `:` (percent-encoded in the path).
start_mock_and_gateway cx mock-claude-sonnet-4-5 anthropic.claude-sonnet-4-5-20250929-v1:0 claude-sonnet-4-5@20250929
export work MOCK_URL GW_URL

failed=()
for kind in openai anthropic; do
  for what in tool resume compact remote ws; do
    echo "-- codex exec via the $kind-kind route: $what"
    bash "$0" case "$kind" "$what" || failed+=("$kind-$what")
  done
done
# Bedrock: Codex's Responses translated to Messages, sent as InvokeModel (the tool turn).
echo "-- codex exec via the bedrock-kind route: tool"
bash "$0" case bedrock tool || failed+=("bedrock-tool")
# Gemini 3: Responses translated to Gemini, thought signatures carried through Codex's items.
for what in tool resume loop; do
  echo "-- codex exec via the gemini-kind route: $what"
  bash "$0" case gemini "$what" || failed+=("gemini-$what")
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "gateway log (last lines):" >&2
  tail -20 "$work/gateway.log" >&2
  fail "Codex agent cases failed: ${failed[*]}"
fi
echo "Codex agent cases passed"
