"""The bedrock and vertex provider kinds against the SDKs' own cloud clients.

- Reference encoders: the Anthropic SDK's `AnthropicBedrock` and `AnthropicVertex` send a
  logical Messages request straight to the mock; the plain SDK sends the same request through
  ringway to a bedrock-kind / vertex-kind provider on that mock. The two upstream requests the
  mock recorded must agree (path, body, the headers that matter).
- botocore differential: a request ringway signed is signed again by botocore's `SigV4Auth`
  with the same credentials, timestamp and headers; the signatures must be equal.
- Both SDK families (Anthropic and OpenAI, Chat and Responses) through ringway to a Bedrock and
  a Vertex target: a tool round trip and thinking, streaming and not.
"""

import datetime
import json
import os
import subprocess
import tempfile
import unittest.mock
import urllib.parse
import urllib.request

import anthropic
import openai
import pytest

from conftest import BIN, DRIVER, GATEWAY_KEY, Proc, key_table
from test_cross_format import PNG_1PX
from test_same_format import WEATHER_A, WEATHER_O

AWS_KEY = "AKIDRINGWAYMOCK"
AWS_SECRET = "ringway-mock-secret"
AWS_REGION = "ca-central-1"
VERTEX_PROJECT = "mock-project"
VERTEX_REGION = "us-east5"
VERTEX_TOKEN = "mock-static-token"

BEDROCK_MODEL = "anthropic.claude-haiku-4-5-20251001-v1:0"
BEDROCK_ARN = "arn:aws:bedrock:ca-central-1:123456789012:application-inference-profile/abc"
VERTEX_MODEL = "claude-haiku-4-5@20251001"
# An `anthropic-beta` value both clouds' allowlists keep, and one neither does.
KEPT_BETA = "context-management-2025-06-27"
DROPPED_BETA = "oauth-2025-04-20"

# Routes of the cloud gateway: `cb` Bedrock (credentials from the mock's container endpoint, so
# with a session token), `cb-arn` Bedrock by an application inference profile's ARN, `cv` Vertex
# (a static token), `cv-sa` Vertex with a service account's JWT exchanged at the mock.
ROUTES = {
    "cb": f"bedrock/{BEDROCK_MODEL}",
    "cb-arn": f"bedrock/{BEDROCK_ARN}",
    "cv": f"vertex/{VERTEX_MODEL}",
    "cv-sa": f"vertex_sa/{VERTEX_MODEL}",
    # The models Claude Code's cloud modes chose in tests/fixtures/claude_code_clouds.
    "cb-cc": "bedrock/global.anthropic.claude-opus-5-5",
    "cv-cc": "vertex/claude-opus-5-5",
}
CLOUD_ROUTES = ["cb", "cv", "cv-sa"]


def _service_account(path, pem, token_uri):
    with open(path, "w") as f:
        json.dump(
            {
                "type": "service_account",
                "project_id": VERTEX_PROJECT,
                "private_key_id": "k1",
                "private_key": pem,
                "client_email": "ringway-test@mock-project.iam.gserviceaccount.com",
                "token_uri": token_uri,
            },
            f,
        )


@pytest.fixture(scope="module")
def cloud():
    """(mock, gateway): the mock with a service account (a key made by `openssl genpkey`), and
    a gateway with the bedrock and vertex providers on it."""
    d = tempfile.mkdtemp(prefix="ringway-sdk-clouds-")
    pem = subprocess.run(
        ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    sa = os.path.join(d, "sa.json")
    # The mock learns its port when it starts; the file is rewritten with it for the gateway
    # (the mock also accepts its own /token URL as the JWT's audience).
    _service_account(sa, pem, "http://127.0.0.1:0/token")
    m = Proc(
        [BIN, "mock-upstream", "--listen", "127.0.0.1:0", "--driver", DRIVER, "--google-service-account", sa],
        "mock provider listening on",
    )
    _service_account(sa, pem, f"http://{m.addr}/token")
    routes = "".join(f'[[route]]\nmodel = "{name}"\ntargets = ["{t}"]\n\n' for name, t in ROUTES.items())
    cfg = f"""
[server]
workers = 2

[[provider]]
name = "bedrock"
kind = "bedrock"
region = "{AWS_REGION}"
base_url = "http://{m.addr}"
aws_credentials_url = "http://{m.addr}/mock/aws-credentials"

[[provider]]
name = "vertex"
kind = "vertex"
project = "{VERTEX_PROJECT}"
region = "{VERTEX_REGION}"
base_url = "http://{m.addr}"
api_key_env = "RW_TEST_VERTEX_TOKEN"

[[provider]]
name = "vertex_sa"
kind = "vertex"
project = "{VERTEX_PROJECT}"
region = "{VERTEX_REGION}"
base_url = "http://{m.addr}"
google_credentials = "{sa}"

{routes}
{key_table("sdk", GATEWAY_KEY)}"""
    path = os.path.join(d, "ringway.toml")
    with open(path, "w") as f:
        f.write(cfg)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GOOGLE_", "GCE_"))}
    env["RW_TEST_VERTEX_TOKEN"] = VERTEX_TOKEN
    env["HOME"] = d
    try:
        g = Proc([BIN, "serve", "--config", path, "--listen", "127.0.0.1:0", "--driver", DRIVER], "listening on", env=env)
    except Exception:
        m.stop()
        raise
    yield m, g
    g.stop()
    m.stop()


@pytest.fixture()
def mock(cloud):
    return cloud[0]


@pytest.fixture()
def ant(cloud):
    return anthropic.Anthropic(api_key=GATEWAY_KEY, base_url=cloud[1].url, max_retries=0, timeout=30)


@pytest.fixture()
def oai(cloud):
    return openai.OpenAI(api_key=GATEWAY_KEY, base_url=cloud[1].url + "/v1", max_retries=0, timeout=30)


def _mock(mock, method, path):
    req = urllib.request.Request(f"http://{mock.addr}{path}", method=method)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def clear(mock):
    _mock(mock, "DELETE", "/mock/requests")


def recorded(mock):
    """The requests the mock received since the last `clear` (the credential fetches left out)."""
    return [r for r in _mock(mock, "GET", "/mock/requests") if r["path"].startswith(("/model/", "/v1/projects/"))]


def one_recorded(mock):
    recs = recorded(mock)
    assert len(recs) == 1, [r["path"] for r in recs]
    rec = recs[0]
    rec["headers"] = {k.lower(): v for k, v in _header_pairs(rec["headers"])}
    rec["json"] = json.loads(rec["body"])
    return rec


def _header_pairs(headers):
    if isinstance(headers, dict):
        return list(headers.items())
    return [tuple(h) for h in headers]


# ================================================================ reference encoders

# One logical Messages request: system with cache_control, a tool, an image block, thinking,
# metadata. `mock:notools` keeps the answer text although tools are declared.
LOGICAL = dict(
    max_tokens=2048,
    system=[{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
    tools=[WEATHER_A],
    messages=[
        {
            "role": "user",
            "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_1PX}},
                {"type": "text", "text": "What is in the picture? mock:notools", "cache_control": {"type": "ephemeral"}},
            ],
        }
    ],
    thinking={"type": "enabled", "budget_tokens": 1024},
    metadata={"user_id": "user-1234"},
)


def _send(client, model, stream, betas, version=None):
    headers = {"anthropic-beta": ",".join(betas)} if betas else {}
    # `version`: the cloud's `anthropic_version`, given to the SDK's cloud clients explicitly
    # (see test_sdk_cloud_clients_default_anthropic_version).
    extra = {"anthropic_version": version} if version else None
    r = client.messages.create(model=model, stream=stream, extra_headers=headers, extra_body=extra, **LOGICAL)
    if stream:
        events = list(r)
        assert events[-1].type == "message_stop", [e.type for e in events]
        text = "".join(e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta")
    else:
        text = "".join(b.text for b in r.content if b.type == "text")
    assert "You said" in text, text


def bedrock_sdk(mock):
    return anthropic.AnthropicBedrock(
        aws_access_key=AWS_KEY,
        aws_secret_key=AWS_SECRET,
        aws_region=AWS_REGION,
        base_url=f"http://{mock.addr}",
        max_retries=0,
        timeout=30,
    )


def vertex_sdk(mock):
    return anthropic.AnthropicVertex(
        project_id=VERTEX_PROJECT,
        region=VERTEX_REGION,
        access_token=VERTEX_TOKEN,
        base_url=f"http://{mock.addr}/v1",
        max_retries=0,
        timeout=30,
    )


# Headers that name the sender or its transport, not the request: the SDK's cloud client says
# `AnthropicBedrock/Python …` where ringway passes on the plain SDK's `Anthropic/Python …`; it
# offers gzip; ringway adds its request id.
AGENT_HEADERS = {"user-agent", "accept-encoding", "connection", "x-ringway-request-id"}


def _differing(ref, ours):
    """Names of the headers present in only one of the two requests or with other values."""
    a, b = ref["headers"], ours["headers"]
    return {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)} - {"content-length"}


def _pair(mock, sdk_send, gw_send):
    clear(mock)
    sdk_send()
    ref = one_recorded(mock)
    clear(mock)
    gw_send()
    ours = one_recorded(mock)
    return ref, ours


@pytest.mark.parametrize("stream", [False, True], ids=["invoke", "stream"])
def test_bedrock_matches_anthropic_bedrock_client(mock, ant, stream):
    ref, ours = _pair(
        mock,
        lambda: _send(bedrock_sdk(mock), BEDROCK_MODEL, stream, [KEPT_BETA], "bedrock-2023-05-31"),
        lambda: _send(ant, "cb", stream, [KEPT_BETA, DROPPED_BETA]),
    )
    # Path: the SDK quotes the model id with `:` kept (`quote(model, safe=":;")`), ringway
    # percent-encodes it whole (`%3A`), as AWS's own SDKs do. Both name the same resource (the
    # mock decodes both to the same id, and both are signed over the path as sent); only the
    # spelling differs.
    suffix = "invoke-with-response-stream" if stream else "invoke"
    assert ref["path"] == f"/model/{BEDROCK_MODEL}/{suffix}"
    assert ours["path"] == f"/model/{urllib.parse.quote(BEDROCK_MODEL, safe='')}/{suffix}"
    assert urllib.parse.unquote(ours["path"]) == urllib.parse.unquote(ref["path"])
    assert ours["model"] == ref["model"] == BEDROCK_MODEL
    # Body: equal, betas as the `anthropic_beta` array; the value Bedrock does not know is
    # dropped by ringway (the SDK would have sent it and Bedrock answered 400).
    assert ref["json"]["anthropic_beta"] == [KEPT_BETA]
    assert ref["json"]["anthropic_version"] == "bedrock-2023-05-31"
    assert "model" not in ref["json"] and "stream" not in ref["json"]
    assert ours["json"] == ref["json"]
    for rec in (ref, ours):
        h = rec["headers"]
        assert h["content-type"] == "application/json"
        assert h["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={AWS_KEY}/")
        assert "/ca-central-1/bedrock/aws4_request" in h["authorization"]
        assert "x-amz-date" in h
    # The SDK also repeats the betas in an `anthropic-beta` header and sends
    # `anthropic-version: 2023-06-01`; InvokeModel reads neither (the body says both), so ringway
    # sends neither.
    assert ref["headers"].get("anthropic-beta") == KEPT_BETA
    assert "anthropic-beta" not in ours["headers"]
    assert "anthropic-version" not in ours["headers"]
    # ringway signs with the session token of the container credentials; the SDK had none.
    assert "x-amz-security-token" in ours["headers"] and "x-amz-security-token" not in ref["headers"]
    signed = lambda h: h["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")  # noqa: E731
    # Streams: ringway asks for the event stream as AWS's SDKs do (`accept` the event-stream type,
    # `x-amzn-bedrock-accept` the chunks' type); the Anthropic SDK sends `accept:
    # application/json` and gets the same frames.
    if stream:
        assert ours["headers"]["accept"] == "application/vnd.amazon.eventstream"
        assert ours["headers"]["x-amzn-bedrock-accept"] == "application/json"
    else:
        assert ours["headers"]["accept"] == ref["headers"]["accept"] == "application/json"
    assert _differing(ref, ours) <= AGENT_HEADERS | {
        "authorization", "x-amz-date", "x-amz-security-token", "anthropic-beta", "accept", "x-amzn-bedrock-accept",
    }, _differing(ref, ours)
    # botocore (the SDK) signs every header it sends (x-stainless-*, accept, …); ringway signs
    # what Bedrock needs. Both cover the ones that matter.
    for rec in (ref, ours):
        assert {"content-type", "host", "x-amz-date"} <= set(signed(rec["headers"])), rec["headers"]["authorization"]


@pytest.mark.parametrize("stream", [False, True], ids=["raw", "stream"])
def test_vertex_matches_anthropic_vertex_client(mock, ant, stream):
    ref, ours = _pair(
        mock,
        lambda: _send(vertex_sdk(mock), VERTEX_MODEL, stream, [KEPT_BETA], "vertex-2023-10-16"),
        lambda: _send(ant, "cv", stream, [KEPT_BETA, DROPPED_BETA]),
    )
    verb = "streamRawPredict" if stream else "rawPredict"
    want = f"/v1/projects/{VERTEX_PROJECT}/locations/{VERTEX_REGION}/publishers/anthropic/models/{VERTEX_MODEL}:{verb}"
    assert urllib.parse.unquote(ref["path"]) == want
    assert urllib.parse.unquote(ours["path"]) == want
    assert ours["path"] == ref["path"]
    assert ref["json"]["anthropic_version"] == "vertex-2023-10-16"
    assert "model" not in ref["json"]
    # Vertex keeps `stream` in the body (the SDK sends it only when true).
    assert ref["json"].get("stream", False) == stream
    assert ours["json"] == ref["json"]
    for rec in (ref, ours):
        assert rec["headers"]["content-type"] == "application/json"
        assert rec["headers"]["authorization"] == f"Bearer {VERTEX_TOKEN}"
    # Every other header alike, but for the client's own (user-agent, transport) and ringway's id.
    assert _differing(ref, ours) <= AGENT_HEADERS, _differing(ref, ours)
    # Betas stay a header on Vertex; ringway keeps only the ones Vertex knows.
    assert ref["headers"]["anthropic-beta"] == KEPT_BETA
    assert ours["headers"]["anthropic-beta"] == KEPT_BETA
    assert "anthropic_beta" not in ours["json"]


@pytest.mark.parametrize("cloud_client", ["bedrock", "vertex"])
def test_sdk_cloud_clients_default_anthropic_version(mock, cloud_client):
    """A difference, pinned so that an SDK release changing it is noticed: anthropic 2.11.0's
    cloud clients default the body's `anthropic_version` to the first-party API version
    (`anthropic._constants.ANTHROPIC_API_VERSION`, a date), not the clouds' documented
    `bedrock-2023-05-31` / `vertex-2023-10-16` that ringway sends (and the mock, like Bedrock,
    insists on). The reference tests above pass the cloud value explicitly."""
    from anthropic._constants import ANTHROPIC_API_VERSION

    clear(mock)
    client = bedrock_sdk(mock) if cloud_client == "bedrock" else vertex_sdk(mock)
    model = BEDROCK_MODEL if cloud_client == "bedrock" else VERTEX_MODEL
    try:
        _send(client, model, False, [])
    except anthropic.BadRequestError as e:
        assert "anthropic_version" in str(e), e
    assert one_recorded(mock)["json"]["anthropic_version"] == ANTHROPIC_API_VERSION


# ================================================================ botocore differential


def _botocore_signature(rec, host):
    """The `authorization` botocore's SigV4Auth computes for the recorded request, at its own
    timestamp, over the same signed headers."""
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials

    h = rec["headers"]
    auth = h["authorization"]
    signed = auth.split("SignedHeaders=")[1].split(",")[0].split(";")
    creds = botocore.credentials.Credentials(AWS_KEY, AWS_SECRET, h.get("x-amz-security-token"))
    when = datetime.datetime.strptime(h["x-amz-date"], "%Y%m%dT%H%M%SZ")
    headers = {k: h[k] for k in signed if k not in ("x-amz-date", "x-amz-security-token", "host")}
    req = botocore.awsrequest.AWSRequest(
        method="POST", url=f"http://{host}{rec['path']}", data=rec["body"].encode(), headers=headers
    )

    class At(botocore.auth.SigV4Auth):
        def _modify_request_before_signing(self, request):
            super()._modify_request_before_signing(request)
            # Sign exactly the headers ringway signed (botocore would add every header it has).
            for k in list(request.headers.keys()):
                if k.lower() not in signed:
                    del request.headers[k]

    with unittest.mock.patch("botocore.auth.get_current_datetime", return_value=when):
        At(creds, "bedrock", AWS_REGION).add_auth(req)
    return req.headers["Authorization"], req.headers["X-Amz-Date"]


@pytest.mark.parametrize("route", ["cb", "cb-arn"])
@pytest.mark.parametrize("stream", [False, True], ids=["invoke", "stream"])
def test_sigv4_matches_botocore(mock, ant, route, stream):
    clear(mock)
    _send(ant, route, stream, [KEPT_BETA])
    rec = one_recorded(mock)
    model = BEDROCK_MODEL if route == "cb" else BEDROCK_ARN
    assert rec["model"] == model
    # The id is percent-encoded whole: `:` and the ARN's `/` are escaped.
    assert rec["path"].split("/")[2] == urllib.parse.quote(model, safe="")
    assert "%2F" in rec["path"] or route == "cb"
    h = rec["headers"]
    assert h["x-amz-security-token"].startswith("mock-session-")
    authz, amz_date = _botocore_signature(rec, mock.addr)
    assert amz_date == h["x-amz-date"]
    assert authz == h["authorization"]


def test_botocore_differential_sees_a_changed_body(mock, ant):
    """The differential can fail: one byte of the body changed gives another signature."""
    clear(mock)
    _send(ant, "cb", False, [])
    rec = one_recorded(mock)
    rec["body"] = rec["body"].replace("terse", "terso")
    assert _botocore_signature(rec, mock.addr)[0] != rec["headers"]["authorization"]


# ================================================================ SDKs through ringway to clouds

WEATHER_PROMPT = 'Weather in Paris? mock:tool=get_weather mock:args={"city":"Paris","days":2}'


def _expect_upstream(mock, route):
    rec = one_recorded(mock)
    if route.startswith("cb"):
        assert rec["path"].startswith("/model/"), rec["path"]
        assert rec["json"]["anthropic_version"] == "bedrock-2023-05-31"
    else:
        assert rec["path"].startswith(f"/v1/projects/{VERTEX_PROJECT}/"), rec["path"]
        assert rec["json"]["anthropic_version"] == "vertex-2023-10-16"
        if route == "cv-sa":
            assert rec["headers"]["authorization"].startswith("Bearer mock-token-")
    return rec


def _anthropic_turn(ant, route, stream, messages, thinking):
    kw = dict(model=route, max_tokens=4000, tools=[WEATHER_A], messages=messages)
    if thinking:
        kw["thinking"] = {"type": "enabled", "budget_tokens": 1024}
    if stream:
        with ant.messages.stream(**kw) as s:
            return s.get_final_message()
    return ant.messages.create(**kw)


@pytest.mark.parametrize("route", CLOUD_ROUTES)
@pytest.mark.parametrize("stream", [False, True], ids=["once", "stream"])
def test_anthropic_sdk_tool_round_trip_with_thinking(mock, ant, route, stream):
    prompt = "mock:thinking " + WEATHER_PROMPT
    clear(mock)
    first = _anthropic_turn(ant, route, stream, [{"role": "user", "content": prompt}], True)
    _expect_upstream(mock, route)
    assert first.stop_reason == "tool_use"
    types = [b.type for b in first.content]
    assert types[0] == "thinking" and types[-1] == "tool_use", types
    assert first.content[0].signature
    call = first.content[-1]
    assert call.name == "get_weather" and call.input == {"city": "Paris", "days": 2}
    messages = [
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "22C and sunny"}]},
    ]
    clear(mock)
    second = _anthropic_turn(ant, route, stream, messages, True)
    sent = _expect_upstream(mock, route)["json"]
    # The signed thinking block went back first in the assistant turn, with the call.
    back = sent["messages"][1]["content"]
    assert back[0]["type"] == "thinking" and back[0]["signature"] == first.content[0].signature
    assert {k: back[-1][k] for k in ("type", "id", "name", "input")} == {
        "type": "tool_use", "id": call.id, "name": "get_weather", "input": {"city": "Paris", "days": 2}
    }
    text = "".join(b.text for b in second.content if b.type == "text")
    assert second.stop_reason == "end_turn"
    assert text.startswith("Tool result received") and "22C" in text, text


@pytest.mark.parametrize("route", CLOUD_ROUTES)
@pytest.mark.parametrize("stream", [False, True], ids=["once", "stream"])
def test_openai_chat_tool_round_trip_with_thinking(mock, oai, route, stream):
    prompt = "mock:thinking " + WEATHER_PROMPT

    def turn(messages):
        kw = dict(model=route, reasoning_effort="low", max_completion_tokens=4000, tools=[WEATHER_O], messages=messages)
        if not stream:
            m = oai.chat.completions.create(**kw).choices[0]
            return m.message.content, m.message.tool_calls, (m.message.model_extra or {}), m.finish_reason
        text, reasoning, calls, finish = "", "", {}, None
        for c in oai.chat.completions.create(stream=True, **kw):
            if not c.choices:
                continue
            d = c.choices[0].delta
            text += d.content or ""
            reasoning += (d.model_extra or {}).get("reasoning_content") or ""
            for tc in d.tool_calls or []:
                slot = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
                slot["id"] = tc.id or slot["id"]
                if tc.function:
                    slot["name"] += tc.function.name or ""
                    slot["arguments"] += tc.function.arguments or ""
            finish = c.choices[0].finish_reason or finish
        tool_calls = [
            openai.types.chat.ChatCompletionMessageToolCall(
                id=s["id"], type="function", function={"name": s["name"], "arguments": s["arguments"]}
            )
            for s in calls.values()
        ]
        return text, tool_calls, {"reasoning_content": reasoning}, finish

    clear(mock)
    _, calls, extra, finish = turn([{"role": "user", "content": prompt}])
    sent = _expect_upstream(mock, route)["json"]
    # Chat's reasoning_effort became Anthropic thinking for this (pre-4.6) model id.
    assert sent["thinking"]["type"] == "enabled", sent["thinking"]
    assert finish == "tool_calls"
    assert extra.get("reasoning_content")
    (call,) = calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris", "days": 2}
    assistant = {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]}
    if not stream:
        assistant.update({k: extra[k] for k in ("reasoning_content", "thinking_blocks") if k in extra})
    clear(mock)
    text, _, _, finish = turn(
        [
            {"role": "user", "content": prompt},
            assistant,
            {"role": "tool", "tool_call_id": call.id, "content": "22C and sunny"},
        ]
    )
    sent = _expect_upstream(mock, route)["json"]
    assert any(b.get("type") == "tool_result" and b["tool_use_id"] == call.id for b in sent["messages"][-1]["content"])
    assert finish == "stop"
    assert text.startswith("Tool result received") and "22C" in text, text


RESPONSES_TOOL = {"type": "function", "name": "get_weather", "description": "Weather for a city", "parameters": WEATHER_O["function"]["parameters"]}


@pytest.mark.parametrize("route", CLOUD_ROUTES)
@pytest.mark.parametrize("stream", [False, True], ids=["once", "stream"])
def test_openai_responses_tool_round_trip_with_reasoning(mock, oai, route, stream):
    prompt = "mock:thinking " + WEATHER_PROMPT
    kw = dict(
        model=route,
        tools=[RESPONSES_TOOL],
        reasoning={"effort": "low", "summary": "auto"},
        include=["reasoning.encrypted_content"],
        store=False,
    )

    def turn(input):
        if not stream:
            return oai.responses.create(input=input, **kw)
        with oai.responses.stream(input=input, **kw) as s:
            events = [e.type for e in s]
            final = s.get_final_response()
        assert events[0] == "response.created" and events[-1] == "response.completed", events
        return final

    clear(mock)
    first = turn(prompt)
    _expect_upstream(mock, route)
    assert [o.type for o in first.output] == ["reasoning", "function_call"], first.output
    assert first.output[0].encrypted_content
    call = first.output[1]
    assert json.loads(call.arguments) == {"city": "Paris", "days": 2}
    clear(mock)
    second = turn(
        [
            {"role": "user", "content": prompt},
            *[o.model_dump(exclude_none=True) for o in first.output],
            {"type": "function_call_output", "call_id": call.call_id, "output": "22C and sunny"},
        ]
    )
    sent = _expect_upstream(mock, route)["json"]
    assistant = [m for m in sent["messages"] if m["role"] == "assistant"]
    assert assistant and assistant[0]["content"][0]["type"] == "thinking", sent["messages"]
    assert second.status == "completed"
    assert second.output_text.startswith("Tool result received") and "22C" in second.output_text


# ================================================================ Claude Code's cloud modes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CC_FIRST_PARTY = os.path.join(ROOT, "fixtures", "claude_code")
CC_CLOUDS = os.path.join(ROOT, "fixtures", "claude_code_clouds")
# Betas Claude Code's cloud modes send that ringway does not: on Bedrock, claude-code goes in
# Claude Code's HTTP header (Bedrock reads betas from the body, where ringway puts the ones it
# knows). The gap is asserted exactly, so a change either way is noticed.
CC_BETAS_DROPPED = {
    "bedrock": {"claude-code-20250219"},
    "vertex": set(),
}


def _betas(value):
    return {b.strip() for b in (value or "").split(",") if b.strip()}


@pytest.mark.parametrize("mode", ["bedrock", "vertex"])
def test_claude_code_first_party_request_reaches_the_cloud_as_its_cloud_mode_sends_it(mock, cloud, mode):
    """ringway, given Claude Code's first-party request (tests/fixtures/claude_code), sends the
    cloud a request of the shape Claude Code's own cloud mode sends (tests/fixtures/
    claude_code_clouds): path form, anthropic_version, where the betas go, no model, `stream`
    only where the cloud takes it."""
    with open(os.path.join(CC_CLOUDS, f"{mode}.json")) as f:
        native = json.load(f)
    with open(os.path.join(CC_FIRST_PARTY, "headers.json")) as f:
        headers = {k: v for k, v in json.load(f).items() if k not in ("x-api-key", "accept-encoding", "connection")}
    with open(os.path.join(CC_FIRST_PARTY, "request.json")) as f:
        body = json.load(f)
    route = "cb-cc" if mode == "bedrock" else "cv-cc"
    body["model"] = route
    headers["x-api-key"] = GATEWAY_KEY
    clear(mock)
    req = urllib.request.Request(
        f"{cloud[1].url}/v1/messages?beta=true", data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200
        answer = r.read().decode()
        dropped = r.headers.get("x-ringway-dropped-params", "")
    assert "event: message_stop" in answer, answer[-500:]
    ours = one_recorded(mock)
    sent, theirs = ours["json"], native["body"]
    # Same path (these model ids have no character the two encoders spell differently).
    assert ours["path"] == native["path"]
    assert sent["anthropic_version"] == theirs["anthropic_version"]
    assert "model" not in sent and "model" not in theirs
    assert ("stream" in sent) == ("stream" in theirs) == (mode == "vertex")
    native_header = _betas(native["headers"].get("anthropic-beta"))
    if mode == "bedrock":
        # Betas in the body array. Claude Code's Bedrock mode also repeats some in a header
        # (InvokeModel ignores it); ringway sends the array only.
        assert isinstance(theirs["anthropic_beta"], list) and isinstance(sent["anthropic_beta"], list)
        assert "anthropic-beta" not in ours["headers"]
        native_betas = set(theirs["anthropic_beta"]) | native_header
        ours_betas = set(sent["anthropic_beta"])
    else:
        assert "anthropic_beta" not in theirs and "anthropic_beta" not in sent
        native_betas = native_header
        ours_betas = _betas(ours["headers"].get("anthropic-beta"))
    # What ringway keeps of Claude Code's first-party betas, against what its cloud mode sends.
    renames = {"advanced-tool-use-2025-11-20": "tool-search-tool-2025-10-19"}
    first_party = {renames.get(b, b) for b in _betas(headers["anthropic-beta"])}
    gap = (native_betas & first_party) - ours_betas
    assert gap == CC_BETAS_DROPPED[mode], f"Claude Code's {mode} mode sends betas ringway drops: {sorted(gap)}"
    for b in first_party - ours_betas:
        assert f"anthropic-beta={b}" in dropped, (b, dropped)
    print(f"{mode}: cloud mode only {sorted(native_betas - first_party)}; dropped {sorted(gap)}; "
          f"ringway only {sorted(ours_betas - native_betas)}")
    # The top-level members agree, but for what the first-party request carries and Claude
    # Code's cloud modes leave out (context_management, which both clouds accept).
    assert set(sent) - set(theirs) <= {"context_management"}, sorted(set(sent) ^ set(theirs))
    assert set(theirs) - set(sent) == set(), sorted(set(theirs) - set(sent))
