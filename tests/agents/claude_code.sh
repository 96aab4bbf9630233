#!/usr/bin/env bash
# The real Claude Code agent (`claude -p`, pinned in .ci/claude-code/package.json) through the
# real ringway binary to the mock provider, over an anthropic-kind, an openai-kind, a
# bedrock-kind, a vertex-kind route (the mock's Bedrock and Vertex AI sides, signed with SigV4 /
# a bearer token) and a gemini-kind one (the Gemini API with a Gemini 3 model). Per route: a
# plain turn, and a turn where the agent calls Read (the mock is steered with `mock:tool` /
# `mock:args`), gets the file back and answers. To the gemini-kind route also a tool loop: two
# Read calls in a row, then text (`mock:calls=2`); the mock refuses (400), as Gemini 3 does, a
# function call that comes back without the thought signature it gave it, or with another one.
# Every request to it also carries Claude Code's real tools, whose schemas (additionalProperties,
# exclusiveMinimum, …) Gemini's `parameters` subset refuses: they must arrive in a form the
# mock accepts. The mock's record of what it received (`GET /mock/requests`) shows what the
# gateway sent upstream. Last, the captured Claude Code request (tests/fixtures/claude_code) is
# replayed with curl to the openai-kind route to check the `x-ringway-dropped-params` header a
# client cannot show us.
#
# Every case runs, then the script fails if any did. Run alone: tests/agents/claude_code.sh
# (RINGWAY_BIN picks the binary, default target/debug/ringway; CLAUDE_BIN the agent).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

# Seconds one `claude -p` run may take (it starts a 380 MB native binary; a run takes ~5 s).
CLAUDE_TIMEOUT=120
# Agent turns allowed: the loop case needs three (Read, Read, then answer), tool two, plain one.
MAX_TURNS=4
# Seconds a process may take to print its listening address, and a curl call may take.
START_TIMEOUT=20
CURL_TIMEOUT=30
# Words the mock answers the plain turn with (`mock:tokens=`): an exact, agent-independent text.
PLAIN_WORDS=6

bin=${RINGWAY_BIN:-target/debug/ringway}
claude=${CLAUDE_BIN:-.ci/claude-code/node_modules/.bin/claude}
# Absolute: claude runs from a scratch project directory.
case $claude in /*) ;; *) claude=$root/$claude ;; esac
fixture=tests/fixtures/claude_code
want_version=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["dependencies"]["@anthropic-ai/claude-code"])' .ci/claude-code/package.json)

# shellcheck source=tests/agents/lib.sh
source "$root/tests/agents/lib.sh"

# ---------------------------------------------------------------------------------------------
# One case, run as a child of this script so `set -e` and `exit` stop that case only.
if [ "${1:-}" = case ]; then
  kind=$2 what=$3
  route="cc-$kind"
  tag="case-$kind-$what"
  home=$work/home-$tag
  mkdir -p "$home"
  out=$work/$tag.out err=$work/$tag.err
  run_claude() {
    local rc=0
    (cd "$work/project" && HOME=$home ANTHROPIC_BASE_URL=$GW_URL ANTHROPIC_API_KEY=sk-test \
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_AUTOUPDATER=1 \
      timeout "$CLAUDE_TIMEOUT" "$claude" -p "$1" --model "$route" \
      --output-format json --max-turns "$MAX_TURNS" "${@:2}" </dev/null >"$out" 2>"$err") || rc=$?
    if [ "$rc" != 0 ]; then
      echo "claude exited $rc; stdout:" >&2
      cat "$out" >&2
      echo "stderr:" >&2
      grep -v 'unrecognized_model\|recognize the model' "$err" >&2 || true
      fail "$tag: claude -p exited $rc"
    fi
  }
  # The answer text of the JSON result, after checking the run reports success.
  result() {
    python3 - "$out" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
if r.get("is_error") or r.get("subtype") != "success":
    print(f"claude reports an error: {r.get('subtype')}: {r.get('result')!r}")
    sys.exit(1)
print(r["result"])
PY
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
    python3 - "$work/$tag.upstream" "$kind" "$AGENT_GEMINI_MODEL" "$AGENT_GEMINI_PROVIDER_KEY" <<'PY'
import json, sys
records = json.load(open(sys.argv[1]))
kind, gemini_model, gemini_key = sys.argv[2:5]
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

for r in records:
    body = json.loads(r["body"])
    if kind == "gemini":
        # The mock answered: a tampered or missing thought signature, or a schema outside the
        # subset in `parameters`, would have been a 400.
        assert r["answered"] == 200, f"the mock answered {r['answered']}: {r['path']}"
        assert r["path"] in (f"/v1beta/models/{gemini_model}:streamGenerateContent?alt=sse",
                             f"/v1beta/models/{gemini_model}:generateContent"), r["path"]
        assert r["headers"].get("x-goog-api-key") == gemini_key, r["headers"]
        for h in ("authorization", "x-api-key", "anthropic-beta", "anthropic-version"):
            assert h not in r["headers"], f"`{h}` reached the Gemini provider"
        for field in ("model", "messages", "system", "thinking", "context_management", "output_config"):
            assert field not in body, f"gemini upstream still has `{field}`"
        assert "systemInstruction" in body and body["contents"], sorted(body)
        decls = [d for t in body.get("tools", []) for d in t.get("functionDeclarations", [])]
        assert "Read" in {d["name"] for d in decls}, [d["name"] for d in decls]
        # Claude Code's schemas, which `parameters` would refuse, arrive as
        # parametersJsonSchema (full JSON Schema) or cleaned down to the subset.
        refused = set()
        for d in decls:
            assert "parameters" in d or "parametersJsonSchema" in d or len(d) <= 2, d["name"]
            if "parameters" in d:
                extra = outside_subset(d["parameters"], set())
                assert not extra, f"{d['name']}: `parameters` holds {sorted(extra)}"
            refused |= outside_subset(d.get("parametersJsonSchema"), set())
        assert refused or all("parameters" in d for d in decls), "no schema needed the JSON Schema form"
        continue
    if kind == "bedrock":
        # InvokeModel: the model in the path, betas in the body (only those Bedrock knows).
        assert r["path"].startswith("/model/") and "/invoke" in r["path"], r["path"]
        assert body["anthropic_version"] == "bedrock-2023-05-31", body.get("anthropic_version")
        assert "model" not in body and "stream" not in body, sorted(body)
        assert "anthropic-beta" not in r["headers"], r["headers"]
        assert "claude-code-20250219" not in body.get("anthropic_beta", []), body.get("anthropic_beta")
        assert r["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 "), r["headers"]
        for field in ("system", "tools", "thinking"):
            assert field in body, f"bedrock upstream lost `{field}`: {sorted(body)}"
    elif kind == "vertex":
        assert ":rawPredict" in r["path"] or ":streamRawPredict" in r["path"], r["path"]
        assert r["path"].startswith("/v1/projects/mock-project/locations/us-east5/"), r["path"]
        assert body["anthropic_version"] == "vertex-2023-10-16", body.get("anthropic_version")
        assert "model" not in body and "anthropic_beta" not in body, sorted(body)
        # Vertex takes its betas in the header: Claude Code's own Vertex mode sends claude-code.
        assert "anthropic-beta" in r["headers"], r["headers"]
        for field in ("system", "tools", "thinking"):
            assert field in body, f"vertex upstream lost `{field}`: {sorted(body)}"
    elif kind == "anthropic":
        assert r["path"].split("?")[0].endswith("/v1/messages"), r["path"]
        # Passed through: Claude Code's own fields reach an Anthropic provider.
        for field in ("system", "tools", "metadata", "thinking", "context_management", "output_config"):
            assert field in body, f"anthropic upstream lost `{field}`: {sorted(body)}"
        beta = r["headers"].get("anthropic-beta", "")
        assert "claude-code-20250219" in beta, f"anthropic-beta not forwarded: {beta!r}"
    else:
        assert r["path"].endswith("/chat/completions"), f"not a Chat Completions request: {r['path']}"
        for field in ("context_management", "output_config", "thinking", "system"):
            assert field not in body, f"openai upstream still has `{field}`"
        roles = {m.get("role") for m in body["messages"]}
        assert roles <= {"system", "developer", "user", "assistant", "tool"}, roles
print(f"{len(records)} upstream request(s) checked")
PY
  }

  case $what in
    plain)
      run_claude "Say hi ($tag). mock:notools mock:tokens=$PLAIN_WORDS"
      answer=$(result) || fail "$tag: $answer"
      want=$(seq -f 'w%g' 1 "$PLAIN_WORDS" | paste -sd' ')
      [ "$answer" = "$want" ] || fail "$tag: answer $answer, want $want"
      upstream || fail "$tag: reading the mock's requests"
      check_upstream || fail "$tag: upstream requests"
      ;;
    tool)
      note=$work/project/note-$kind.txt
      content="ringway-agent-note-$kind"
      printf '%s\n' "$content" >"$note"
      run_claude "Read the note ($tag). mock:tool=Read mock:args={\"file_path\":\"$note\"}" \
        --allowedTools Read
      answer=$(result) || fail "$tag: $answer"
      # The mock acknowledges a tool result by echoing its first words.
      case $answer in
        "Tool result received: "*"$content"*) ;;
        *) fail "$tag: answer $answer, want the mock's acknowledgement of $content" ;;
      esac
      upstream || fail "$tag: reading the mock's requests"
      check_upstream || fail "$tag: upstream requests"
      # The last request carries the Read call and ends in its result, holding the file.
      python3 - "$work/$tag.upstream" "$kind" "$note" "$content" <<'PY' || fail "$tag: tool round trip"
import json, sys
records, kind, note, content = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3], sys.argv[4]
body = json.loads(records[-1]["body"])
messages = body.get("messages")
if kind == "gemini":
    contents = body["contents"]
    last = contents[-1]
    assert last["role"] == "user", last
    results = [p["functionResponse"] for p in last["parts"] if "functionResponse" in p]
    assert results, f"last content has no functionResponse: {last}"
    text = json.dumps(results[0]["response"])
    calls = [p for c in contents if c.get("role") == "model" for p in c["parts"] if "functionCall" in p]
    assert calls and calls[-1]["functionCall"]["name"] == "Read", calls
    assert calls[-1]["functionCall"]["args"] == {"file_path": note}, calls[-1]
    assert calls[-1].get("thoughtSignature"), f"the call lost its thought signature: {calls[-1]}"
    assert results[0]["name"] == "Read", results[0]
elif kind in ("anthropic", "bedrock", "vertex"):
    last = messages[-1]
    assert last["role"] == "user", last
    results = [b for b in last["content"] if b.get("type") == "tool_result"]
    assert results, f"last message has no tool_result: {last}"
    text = json.dumps(results[0]["content"])
    calls = [b for m in messages if m["role"] == "assistant" and isinstance(m["content"], list)
             for b in m["content"] if b.get("type") == "tool_use"]
    assert calls and calls[-1]["name"] == "Read", calls
    assert calls[-1]["input"] == {"file_path": note}, calls[-1]
    assert calls[-1]["id"] == results[0]["tool_use_id"]
else:
    last = messages[-1]
    assert last["role"] == "tool", f"last message is not a tool result: {last}"
    text = json.dumps(last["content"])
    calls = [c for m in messages if m["role"] == "assistant" for c in m.get("tool_calls") or []]
    assert calls and calls[-1]["function"]["name"] == "Read", calls
    assert json.loads(calls[-1]["function"]["arguments"]) == {"file_path": note}, calls[-1]
    assert calls[-1]["id"] == last["tool_call_id"]
assert content in text, f"tool result lacks the file's content: {text}"
print("tool round trip checked")
PY
      ;;
    loop)
      # Two Read calls in a row, then the answer: each request to Gemini 3 must carry every call
      # of the turn back with its signature, or the mock answers 400.
      note=$work/project/note-$kind-loop.txt
      content="ringway-agent-loop-note-$kind"
      printf '%s\n' "$content" >"$note"
      run_claude "Read the note twice ($tag). mock:tool=Read mock:args={\"file_path\":\"$note\"} mock:calls=2" \
        --allowedTools Read
      answer=$(result) || fail "$tag: $answer"
      case $answer in
        "Tool result received: "*) ;;
        *) fail "$tag: answer $answer, want the mock's acknowledgement of the second result" ;;
      esac
      upstream || fail "$tag: reading the mock's requests"
      check_upstream || fail "$tag: upstream requests"
      python3 - "$work/$tag.upstream" "$note" "$content" <<'PY' || fail "$tag: tool loop"
import json, sys
records, note, content = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
assert len(records) == 3, f"{len(records)} upstream requests, want 3 (call, call, answer)"
for n, r in enumerate(records):
    contents = json.loads(r["body"])["contents"]
    # The turn: after the user content that holds the prompt.
    start = max(i for i, c in enumerate(contents)
                if c["role"] == "user" and any("text" in p for p in c["parts"]))
    turn = contents[start + 1:]
    calls = [p for c in turn if c["role"] == "model" for p in c["parts"] if "functionCall" in p]
    results = [p["functionResponse"] for c in turn if c["role"] == "user" for p in c["parts"]
               if "functionResponse" in p]
    assert len(calls) == n and len(results) == n, f"request {n}: {len(calls)} calls, {len(results)} results"
    for call in calls:
        assert call["functionCall"]["name"] == "Read", call
        assert call["functionCall"]["args"] == {"file_path": note}, call
        assert call.get("thoughtSignature"), f"request {n}: a call without its signature: {call}"
    for res in results:
        assert content in json.dumps(res["response"]), res
print("tool loop checked: 2 calls, signatures carried, then text")
PY
      ;;
    replay)
      # The captured request as Claude Code sent it (its model is this route), through the
      # gateway to the openai-kind provider.
      hdr_args=()
      while IFS= read -r line; do hdr_args+=(-H "$line"); done < <(python3 -c '
import json, sys
for k, v in json.load(open(sys.argv[1])).items():
    print(f"{k}: {v}")' "$fixture/headers.json")
      code=$(curl -sS --max-time "$CURL_TIMEOUT" -o "$work/$tag.body" -D "$work/$tag.headers" \
        -w '%{http_code}' "${hdr_args[@]}" --data-binary "@$fixture/request.json" \
        "$GW_URL/v1/messages?beta=true") || fail "$tag: curl"
      [ "$code" = 200 ] || fail "$tag: status $code: $(head -c 600 "$work/$tag.body")"
      curl -sS --max-time "$CURL_TIMEOUT" "$MOCK_URL/mock/requests" >"$work/$tag.upstream.all"
      python3 - "$work/$tag.headers" "$work/$tag.upstream.all" "$fixture/request.json" <<'PY' || fail "$tag: dropped params"
import json, sys
head = open(sys.argv[1], encoding="latin-1").read().splitlines()
dropped = [l.split(":", 1)[1].strip() for l in head if l.lower().startswith("x-ringway-dropped-params:")]
assert dropped, "no x-ringway-dropped-params header"
listed = set(dropped[0].split(","))
fixture = json.load(open(sys.argv[3]))
marker = "/tmp/claude-code-fixture/work/note.txt"  # in the fixture's prompt and Read call
sent = [r for r in json.load(open(sys.argv[2])) if marker in r["body"]]
assert sent, "the mock received no translated replay"
assert sent[-1]["path"].endswith("/chat/completions"), sent[-1]["path"]
body = json.loads(sent[-1]["body"])
# No Chat Completions equivalent: must be dropped and said so.
assert "context_management" in listed, f"context_management not listed in {sorted(listed)}"
# Effort / thinking may become reasoning_effort; whatever is not translated must be listed.
for field in ("output_config", "thinking"):
    assert field in listed or "reasoning_effort" in body, f"{field} neither translated nor listed: {sorted(listed)}"
for field in ("context_management", "output_config", "thinking"):
    assert field not in body, f"upstream still has {field}"
print("dropped params:", ",".join(sorted(listed)))
PY
      ;;
    *) fail "unknown case $what" ;;
  esac
  echo "ok: $tag"
  exit 0
fi

# ---------------------------------------------------------------------------------------------
# Setup: the binaries, a mock, a gateway routing cc-anthropic / cc-openai / cc-gemini /
# cc-bedrock / cc-vertex to the mock's five sides.
[ -x "$bin" ] || fail "no ringway binary at $bin (cargo build --locked --bin ringway, or set RINGWAY_BIN)"
if [ ! -x "$claude" ]; then
  fail "Claude Code is not installed at $claude: run \`npm ci --prefix .ci/claude-code\` (.ci/run does)"
fi
have_version=$(timeout 60 "$claude" --version) || fail "$claude --version failed"
case $have_version in
  "$want_version "*) ;;
  *) fail "Claude Code $have_version at $claude, want $want_version (npm ci --prefix .ci/claude-code)" ;;
esac
echo "Claude Code $have_version, ringway $bin"

make_work claude-code
mkdir -p "$work/project"

# The cloud routes' models are the ones Claude Code's cloud modes pick by default
# (tests/fixtures/claude_code_clouds): the mock takes the adaptive thinking it sends them.
start_mock_and_gateway cc mock-claude global.anthropic.claude-opus-5-5 claude-opus-5-5
export work MOCK_URL GW_URL

failed=()
for kind in anthropic openai bedrock vertex gemini; do
  for what in plain tool; do
    echo "-- claude -p via the $kind-kind route: $what"
    bash "$0" case "$kind" "$what" || failed+=("$kind-$what")
  done
done
echo "-- claude -p via the gemini-kind route: loop"
bash "$0" case gemini loop || failed+=("gemini-loop")
echo "-- Claude Code's captured request replayed to the openai-kind route"
bash "$0" case openai replay || failed+=("openai-replay")

if [ "${#failed[@]}" -gt 0 ]; then
  echo "gateway log (last lines):" >&2
  tail -20 "$work/gateway.log" >&2
  fail "Claude Code agent cases failed: ${failed[*]}"
fi
echo "Claude Code agent cases passed"
