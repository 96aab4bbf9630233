"""The google-genai Python SDK (the Gemini client dialect) through the real ringway binary, its
base URL set to the gateway and its API key the gateway key: generate, stream, a function call
and its result in a second turn, structured output, count tokens, the model list, and a wrong
key. Each case runs against a route to a gemini-kind provider (passthrough; a Gemini 3 model, so
the mock enforces thought signatures), an openai-kind one and an anthropic-kind one (translated),
all on the mock. What reached the mock is checked in the provider's own dialect, with the
provider's key and never the gateway's.
"""

import base64
import json
import math
import os
import re
import urllib.request

import pydantic
import pytest
from google import genai
from google.genai import errors, types

from conftest import GATEWAY_KEY, serve_gateway

# Each provider's key, from the environment the gateway inherits (`api_key_env`).
PROVIDER_KEYS = {
    "gemini": ("RW_TEST_GENAI_GEMINI_KEY", "genai-gemini-provider-key"),
    "openai": ("RW_TEST_GENAI_OPENAI_KEY", "genai-openai-provider-key"),
    "anthropic": ("RW_TEST_GENAI_ANTHROPIC_KEY", "genai-anthropic-provider-key"),
}
# Provider kind -> (route, provider name, upstream model).
ROUTES = {
    "gemini": ("gem", "gg", "gemini-3-flash-preview"),
    "openai": ("gpt", "mo", "mock-gpt"),
    "anthropic": ("claude", "ma", "mock-claude"),
}
KINDS = list(ROUTES)

GREETING = "Hello from the ringway mock."
# The weather tool as the SDK declares it: `parameters` is Gemini's OpenAPI `Schema` (the SDK
# writes its types in capitals: `OBJECT`, `STRING`).
WEATHER = types.FunctionDeclaration(
    name="get_weather",
    description="Weather for a city",
    parameters=types.Schema(
        type=types.Type.OBJECT,
        properties={"city": types.Schema(type=types.Type.STRING), "days": types.Schema(type=types.Type.INTEGER)},
        required=["city", "days"],
    ),
)
ARGS = {"city": "Paris", "days": 2}
TOOL_PROMPT = 'Weather in Paris? mock:tool=get_weather mock:args={"city":"Paris","days":2}'
RESULT = {"output": "sunny and 21C"}
# Structured output as JSON Schema (`responseJsonSchema`) and as a pydantic model (the SDK turns
# it into Gemini's `responseSchema`).
CITY_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
    "additionalProperties": False,
}


class City(pydantic.BaseModel):
    city: str
    population: int


def _config(mock_addr):
    """Providers of the three kinds on the mock, each with its own key, and a route to each."""
    out = []
    for kind, (route, provider, model) in ROUTES.items():
        base = {"gemini": f"http://{mock_addr}", "openai": f"http://{mock_addr}/v1", "anthropic": f"http://{mock_addr}"}[kind]
        out.append(
            f'[[provider]]\nname = "{provider}"\nkind = "{kind}"\nbase_url = "{base}"\n'
            f'api_key_env = "{PROVIDER_KEYS[kind][0]}"\n\n'
            f'[[route]]\nmodel = "{route}"\ntargets = ["{provider}/{model}"]\n'
        )
    return "\n".join(out)


@pytest.fixture(scope="module")
def genai_gateway(mock):
    """A gateway of its own (so the main gateway's model list stays as the other tests expect),
    with the gateway key of conftest and a route per provider kind."""
    for env, value in PROVIDER_KEYS.values():
        os.environ[env] = value
    g = serve_gateway(_config(mock.addr))
    yield g
    g.stop()


def make_client(gateway, api_key=GATEWAY_KEY):
    return genai.Client(
        api_key=api_key,
        http_options=types.HttpOptions(base_url=gateway.url, api_version="v1beta", timeout=30_000),
    )


@pytest.fixture()
def client(genai_gateway):
    return make_client(genai_gateway)


# ---------- what reached the mock ----------


def _mock_get(mock, path):
    with urllib.request.urlopen(f"http://{mock.addr}{path}", timeout=10) as r:
        return json.loads(r.read())


def clear_seen(mock):
    req = urllib.request.Request(f"http://{mock.addr}/mock/requests", method="DELETE")
    urllib.request.urlopen(req, timeout=10).read()


def _header(rec, name):
    for k, v in rec["headers"].items():
        if k.lower() == name:
            return v
    return None


UPSTREAM_PATHS = {
    "gemini": re.compile(r"^/v1beta/models/gemini-3-flash-preview:(generateContent|streamGenerateContent\?alt=sse|countTokens)$"),
    "openai": re.compile(r"^/v1/chat/completions$"),
    "anthropic": re.compile(r"^/v1/messages(/count_tokens)?$"),
}


def upstream(mock, kind):
    """The requests the mock received since the last clear (each must be on the provider's
    path, carry the provider's key and not the gateway's): [(path, parsed body)]."""
    recs = [r for r in _mock_get(mock, "/mock/requests") if not r["path"].startswith("/mock/")]
    out = []
    for rec in recs:
        assert UPSTREAM_PATHS[kind].match(rec["path"]), rec["path"]
        key = PROVIDER_KEYS[kind][1]
        if kind == "gemini":
            assert _header(rec, "x-goog-api-key") == key
        elif kind == "openai":
            assert _header(rec, "authorization") == f"Bearer {key}"
        else:
            assert _header(rec, "x-api-key") == key
        assert GATEWAY_KEY not in json.dumps(rec["headers"]) + rec["path"]
        out.append((rec["path"], json.loads(rec["body"])))
    return out


def one_upstream(mock, kind):
    recs = upstream(mock, kind)
    assert len(recs) == 1, [p for p, _ in recs]
    return recs[0]


def _text(content):
    """The text of an OpenAI or Anthropic content (a string or a list of text parts)."""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content)


def upstream_prompt(kind, body):
    """(system text, last user text) of an upstream body in the provider's dialect."""
    if kind == "gemini":
        system = "".join(p["text"] for p in body["systemInstruction"]["parts"])
        return system, "".join(p.get("text", "") for p in body["contents"][-1]["parts"])
    if kind == "openai":
        first = body["messages"][0]
        assert first["role"] in ("system", "developer"), first
        return _text(first["content"]), _text(body["messages"][-1]["content"])
    return _text(body["system"]), _text(body["messages"][-1]["content"])


def upstream_max_tokens(kind, body):
    if kind == "gemini":
        return body["generationConfig"]["maxOutputTokens"]
    if kind == "openai":
        return body.get("max_completion_tokens", body.get("max_tokens"))
    return body["max_tokens"]


def upstream_streamed(kind, path, body):
    if kind == "gemini":
        return path.endswith(":streamGenerateContent?alt=sse")
    return body.get("stream") is True


# ---------- generate, stream ----------

PROMPT = "tell the gateway something nice"
SYSTEM = "You answer in one short line."


def _generate_config():
    return types.GenerateContentConfig(system_instruction=SYSTEM, max_output_tokens=200, temperature=0.5)


def _check_usage(usage):
    assert usage.prompt_token_count > 0
    assert usage.candidates_token_count > 0
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count + (usage.thoughts_token_count or 0)


@pytest.mark.parametrize("kind", KINDS)
def test_generate_content(client, mock, kind):
    route, provider, model = ROUTES[kind]
    clear_seen(mock)
    r = client.models.generate_content(model=route, contents=PROMPT, config=_generate_config())
    assert r.text == f"{GREETING} You said: {PROMPT}"
    assert r.candidates[0].finish_reason == types.FinishReason.STOP
    assert r.candidates[0].content.role == "model"
    _check_usage(r.usage_metadata)
    headers = {k.lower(): v for k, v in r.sdk_http_response.headers.items()}
    assert headers["x-ringway-provider"] == provider
    assert headers["x-ringway-model"] == model
    path, body = one_upstream(mock, kind)
    assert not upstream_streamed(kind, path, body)
    assert upstream_prompt(kind, body) == (SYSTEM, PROMPT)
    assert upstream_max_tokens(kind, body) == 200
    temperature = body["generationConfig"]["temperature"] if kind == "gemini" else body["temperature"]
    assert temperature == 0.5


@pytest.mark.parametrize("kind", KINDS)
def test_generate_content_stream(client, mock, kind):
    route, _, _ = ROUTES[kind]
    clear_seen(mock)
    chunks = list(client.models.generate_content_stream(model=route, contents=PROMPT, config=_generate_config()))
    # The mock streams a word at a time: a stream that came in one piece was buffered.
    assert len(chunks) >= 3, chunks
    text = "".join(c.text or "" for c in chunks)
    assert text == f"{GREETING} You said: {PROMPT}"
    finishes = [c.candidates[0].finish_reason for c in chunks if c.candidates and c.candidates[0].finish_reason]
    assert finishes == [types.FinishReason.STOP]
    _check_usage(chunks[-1].usage_metadata)
    path, body = one_upstream(mock, kind)
    assert upstream_streamed(kind, path, body)
    assert upstream_prompt(kind, body) == (SYSTEM, PROMPT)


# ---------- function calling: the call, then its result in a second turn ----------


def _parts(response_or_chunks):
    if isinstance(response_or_chunks, list):
        return [p for c in response_or_chunks if c.candidates and c.candidates[0].content for p in c.candidates[0].content.parts or []]
    return response_or_chunks.candidates[0].content.parts


def _upstream_tool_turn(kind, body):
    """(the call's name, its arguments, the result's text) of the second turn as the provider
    got it; the call and its result matched by id where the dialect has ids."""
    if kind == "gemini":
        call = next(p["functionCall"] for p in body["contents"][1]["parts"] if "functionCall" in p)
        resp = body["contents"][2]["parts"][0]["functionResponse"]
        assert resp["name"] == call["name"]
        if "id" in call:
            assert resp.get("id") == call["id"]
        return call["name"], call["args"], json.dumps(resp["response"])
    if kind == "openai":
        assistant = next(m for m in body["messages"] if m["role"] == "assistant")
        (call,) = assistant["tool_calls"]
        tool = next(m for m in body["messages"] if m["role"] == "tool")
        assert tool["tool_call_id"] == call["id"]
        return call["function"]["name"], json.loads(call["function"]["arguments"]), _text(tool["content"])
    assistant = next(m for m in body["messages"] if m["role"] == "assistant")
    (use,) = [b for b in assistant["content"] if b["type"] == "tool_use"]
    result = next(b for b in body["messages"][-1]["content"] if b["type"] == "tool_result")
    assert result["tool_use_id"] == use["id"]
    content = result["content"]
    return use["name"], use["input"], content if isinstance(content, str) else _text(content)


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
@pytest.mark.parametrize("kind", KINDS)
def test_function_call_round_trip(client, mock, kind, stream):
    route, _, _ = ROUTES[kind]
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[WEATHER])],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )

    def turn(contents):
        if stream:
            return list(client.models.generate_content_stream(model=route, contents=contents, config=config))
        return client.models.generate_content(model=route, contents=contents, config=config)

    question = types.Content(role="user", parts=[types.Part(text=TOOL_PROMPT)])
    clear_seen(mock)
    first = turn([question])
    parts = _parts(first)
    calls = [p for p in parts if p.function_call]
    assert len(calls) == 1, parts
    call = calls[0].function_call
    assert call.name == "get_weather"
    assert call.args == ARGS
    if kind == "gemini":
        # Gemini 3 signs its first call; the SDK hands the signature back as bytes.
        assert calls[0].thought_signature
    _, body = one_upstream(mock, kind)
    if kind == "gemini":
        decl = body["tools"][0]["functionDeclarations"][0]
        assert decl["name"] == "get_weather"
        assert decl["parameters"]["required"] == ["city", "days"]

    # The second turn: the model's content as the SDK returned it, then the function's result.
    model_turn = types.Content(role="model", parts=parts)
    result = types.Content(
        role="user",
        parts=[types.Part(function_response=types.FunctionResponse(id=call.id, name=call.name, response=RESULT))],
    )
    clear_seen(mock)
    second = turn([question, model_turn, result])
    text = "".join(p.text or "" for p in _parts(second) if not p.function_call)
    assert text.startswith("Tool result received:"), text
    assert "sunny" in text
    assert not any(p.function_call for p in _parts(second))
    _, body = one_upstream(mock, kind)
    name, args, result_text = _upstream_tool_turn(kind, body)
    assert (name, args) == ("get_weather", ARGS)
    assert "sunny and 21C" in result_text
    if kind == "gemini":
        sent = next(p for p in body["contents"][1]["parts"] if "functionCall" in p)
        assert base64.urlsafe_b64decode(sent["thoughtSignature"]) == calls[0].thought_signature


# ---------- thinking, then a function call and its result ----------

# Each mock side thinks before it calls: Anthropic a signed thinking block, OpenAI
# `reasoning_content`, Gemini thought parts.
THINKING_PROMPT = TOOL_PROMPT + " mock:thinking mock:reasoning_content"


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
@pytest.mark.parametrize("kind", KINDS)
def test_thinking_function_call_round_trip(client, mock, kind, stream):
    """Thoughts come back as `thought` parts when asked for, and whatever signature the call
    carries goes back in the second turn as the SDK returned it (the SDK holds it as bytes and
    writes it again in URL-safe base64): the provider gets its thinking back intact."""
    route, _, _ = ROUTES[kind]
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[WEATHER])],
        thinking_config=types.ThinkingConfig(include_thoughts=True, thinking_budget=2048),
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )

    def turn(contents):
        if stream:
            return list(client.models.generate_content_stream(model=route, contents=contents, config=config))
        return client.models.generate_content(model=route, contents=contents, config=config)

    question = types.Content(role="user", parts=[types.Part(text=THINKING_PROMPT)])
    clear_seen(mock)
    first = turn([question])
    parts = _parts(first)
    thoughts = [p for p in parts if p.thought]
    assert thoughts and all(p.text for p in thoughts), parts
    calls = [p for p in parts if p.function_call]
    assert len(calls) == 1, parts
    assert (calls[0].function_call.name, calls[0].function_call.args) == ("get_weather", ARGS)
    _, body = one_upstream(mock, kind)
    if kind == "anthropic":
        assert body["thinking"]["type"] in ("enabled", "adaptive")
    elif kind == "openai":
        assert body["reasoning_effort"]

    call = calls[0].function_call
    result = types.Content(
        role="user",
        parts=[types.Part(function_response=types.FunctionResponse(id=call.id, name=call.name, response=RESULT))],
    )
    clear_seen(mock)
    second = turn([question, types.Content(role="model", parts=parts), result])
    text = "".join(p.text or "" for p in _parts(second) if not p.thought and not p.function_call)
    assert text.startswith("Tool result received:"), text
    _, body = one_upstream(mock, kind)
    name, args, result_text = _upstream_tool_turn(kind, body)
    assert (name, args) == ("get_weather", ARGS)
    assert "sunny and 21C" in result_text
    if kind == "anthropic":
        # The signed thinking block went back (the mock checks its signature).
        assistant = next(m for m in body["messages"] if m["role"] == "assistant")
        assert assistant["content"][0]["type"] == "thinking", assistant
        assert assistant["content"][0]["signature"]


# ---------- structured output ----------


def _upstream_schema(kind, body):
    if kind == "gemini":
        cfg = body["generationConfig"]
        assert cfg["responseMimeType"] == "application/json"
        return cfg.get("responseJsonSchema", cfg.get("responseSchema"))
    if kind == "openai":
        rf = body["response_format"]
        assert rf["type"] == "json_schema", rf
        return rf["json_schema"]["schema"]
    fmt = body["output_config"]["format"]
    assert fmt["type"] == "json_schema", fmt
    return fmt["schema"]


@pytest.mark.parametrize("form", ["response_json_schema", "response_schema"])
@pytest.mark.parametrize("kind", KINDS)
def test_structured_output(client, mock, kind, form):
    route, _, _ = ROUTES[kind]
    if form == "response_json_schema":
        config = types.GenerateContentConfig(response_mime_type="application/json", response_json_schema=CITY_SCHEMA)
    else:
        config = types.GenerateContentConfig(response_mime_type="application/json", response_schema=City)
    clear_seen(mock)
    r = client.models.generate_content(model=route, contents="Describe Paris as JSON", config=config)
    # The mock does not write JSON; what matters is that the schema reached the provider.
    assert r.text.startswith(GREETING)
    assert r.candidates[0].finish_reason == types.FinishReason.STOP
    _, body = one_upstream(mock, kind)
    schema = _upstream_schema(kind, body)
    if kind == "gemini":
        if form == "response_json_schema":
            assert body["generationConfig"]["responseJsonSchema"] == CITY_SCHEMA
        else:
            # The SDK wrote the pydantic model as Gemini's `responseSchema`; passed through as is.
            assert "responseJsonSchema" not in body["generationConfig"]
            assert schema["type"] == "OBJECT"
    elif form == "response_json_schema":
        assert schema == CITY_SCHEMA
    assert set(schema["properties"]) == {"city", "population"}
    assert sorted(schema["required"]) == ["city", "population"]
    types_ = {k: v["type"] for k, v in schema["properties"].items()}
    if kind == "gemini" and form == "response_schema":
        assert types_ == {"city": "STRING", "population": "INTEGER"}
    else:
        # JSON Schema for the other dialects: lower-case types.
        assert types_ == {"city": "string", "population": "integer"}


# ---------- count tokens ----------


@pytest.mark.parametrize("kind", KINDS)
def test_count_tokens(client, mock, kind):
    route, _, _ = ROUTES[kind]
    clear_seen(mock)
    r = client.models.count_tokens(model=route, contents="count these few words please")
    assert isinstance(r.total_tokens, int) and r.total_tokens > 0
    recs = upstream(mock, kind)
    if kind == "gemini":
        # The mock counts a quarter token per byte of the body it received.
        ((path, body),) = recs
        assert path.endswith(":countTokens")
        assert body["contents"][0]["parts"][0]["text"] == "count these few words please"
        raw = [x["body"] for x in _mock_get(mock, "/mock/requests") if x["path"] == path][-1]
        assert r.total_tokens == math.ceil(len(raw.encode()) / 4)
    # A longer text counts more tokens.
    longer = client.models.count_tokens(model=route, contents="count these few words please " * 50)
    assert longer.total_tokens > r.total_tokens


# ---------- models ----------


def test_models_list_and_get(client):
    listed = {m.name: m for m in client.models.list()}
    for route, _, _ in ROUTES.values():
        assert f"models/{route}" in listed, sorted(listed)
        got = client.models.get(model=route)
        assert got.name == f"models/{route}"
        assert got.display_name == route
        assert "generateContent" in (got.supported_actions or [])
        assert listed[f"models/{route}"].name == got.name
    with pytest.raises(errors.ClientError) as e:
        client.models.get(model="no-such-route")
    assert e.value.code == 404
    assert e.value.status == "NOT_FOUND"


# ---------- gateway keys ----------


@pytest.mark.parametrize("kind", KINDS)
def test_wrong_gateway_key_is_refused(genai_gateway, mock, kind):
    route, _, _ = ROUTES[kind]
    bad = make_client(genai_gateway, api_key="not-the-gateway-key")
    clear_seen(mock)
    with pytest.raises(errors.APIError) as e:
        bad.models.generate_content(model=route, contents="hello")
    assert isinstance(e.value, errors.ClientError)
    assert e.value.code in (401, 403)
    assert e.value.status in ("UNAUTHENTICATED", "PERMISSION_DENIED")
    assert e.value.message
    # Gemini's error shape: {"error": {"code", "message", "status"}}.
    assert e.value.details["error"]["code"] == e.value.code
    with pytest.raises(errors.APIError) as e:
        list(bad.models.generate_content_stream(model=route, contents="hello"))
    assert e.value.code in (401, 403)
    assert upstream(mock, kind) == []
    # The right key still works on the same gateway.
    assert make_client(genai_gateway).models.generate_content(model=route, contents="hello").text.startswith(GREETING)
