# Shared by the agent tests (sourced): fail, a scratch directory cleaned up at exit, start a
# ringway process, start the mock and a gateway in front of it.
# Needs: $bin (the ringway binary), START_TIMEOUT (seconds); `make_work` sets $work and `pids`.

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# Starts a ringway process logging to $1 (other arguments: its command line); sets `addr` to
# the http://ADDR it announces.
start() {
  local log=$1
  shift
  "$bin" "$@" --listen 127.0.0.1:0 --driver "${RINGWAY_TEST_DRIVER:-auto}" >/dev/null 2>"$log" &
  pids+=($!)
  local deadline=$((SECONDS + START_TIMEOUT))
  addr=""
  while [ -z "$addr" ]; do
    [ "$SECONDS" -lt "$deadline" ] || { cat "$log" >&2; fail "ringway $1 did not start"; }
    sleep 0.1
    addr=$(grep -o 'listening on http://[0-9.:]*' "$log" | head -1 | sed 's/.*http:/http:/') || true
  done
}

# The Gemini model of the $1-gemini route: a Gemini 3 one, so the mock enforces thought
# signatures as Gemini 3 does (a 400 when a function call comes back without its signature or
# with another one).
AGENT_GEMINI_MODEL=gemini-3-pro-preview
# The key the gateway's gemini-kind provider sends upstream (x-goog-api-key): tests check that
# it is this one, never the key the client gave the gateway.
AGENT_GEMINI_PROVIDER_KEY=mock-gemini-provider-key

# Starts the mock and a one-worker gateway with route $1-anthropic to the mock's Messages side
# (upstream model $2), $1-openai to its Chat Completions side and $1-gemini to its Gemini API
# side (a gemini-kind provider, model $AGENT_GEMINI_MODEL); sets MOCK_URL and GW_URL.
# With $3 (a Bedrock model id) and $4 (a Vertex model), also $1-bedrock and $1-vertex to the
# mock's Bedrock and Vertex AI sides (bedrock-kind provider signing with the mock's container
# credentials, vertex-kind with the mock's static token).
# With AGENT_GATEWAY_KEY set, the gateway has that one key, and clients must present it.
start_mock_and_gateway() {
  start "$work/mock.log" mock-upstream
  MOCK_URL=$addr
  export RW_TEST_GEMINI_KEY=$AGENT_GEMINI_PROVIDER_KEY
  cat >"$work/gateway.toml" <<EOF
[server]
workers = 1

[[provider]]
name = "ma"
kind = "anthropic"
base_url = "$MOCK_URL"

[[provider]]
name = "mo"
kind = "openai"
base_url = "$MOCK_URL/v1"

[[provider]]
name = "mg"
kind = "gemini"
base_url = "$MOCK_URL"
api_key_env = "RW_TEST_GEMINI_KEY"

[[route]]
model = "$1-anthropic"
targets = ["ma/$2"]

[[route]]
model = "$1-openai"
targets = ["mo/mock-gpt"]

[[route]]
model = "$1-gemini"
targets = ["mg/$AGENT_GEMINI_MODEL"]
EOF
  if [ -n "${AGENT_GATEWAY_KEY:-}" ]; then
    export RW_TEST_AGENT_KEY=$AGENT_GATEWAY_KEY
    cat >>"$work/gateway.toml" <<EOF

[[key]]
name = "agents"
key_env = "RW_TEST_AGENT_KEY"
EOF
  fi
  if [ -n "${3:-}" ]; then
    export RW_TEST_VERTEX_TOKEN=mock-static-token
    cat >>"$work/gateway.toml" <<EOF

[[provider]]
name = "bedrock"
kind = "bedrock"
region = "ca-central-1"
base_url = "$MOCK_URL"
aws_credentials_url = "$MOCK_URL/mock/aws-credentials"

[[provider]]
name = "vertex"
kind = "vertex"
project = "mock-project"
region = "us-east5"
base_url = "$MOCK_URL"
api_key_env = "RW_TEST_VERTEX_TOKEN"

[[route]]
model = "$1-bedrock"
targets = ["bedrock/$3"]

[[route]]
model = "$1-vertex"
targets = ["vertex/$4"]
EOF
  fi
  start "$work/gateway.log" serve --config "$work/gateway.toml"
  GW_URL=$addr
  echo "mock $MOCK_URL, gateway $GW_URL"
}

# A scratch directory $work for this run (name $1) and the `pids` its processes are recorded
# in; both go when the script exits.
make_work() {
  work=$(mktemp -d "${TMPDIR:-/tmp}/ringway-$1.XXXXXX")
  pids=()
  trap cleanup EXIT
}

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
