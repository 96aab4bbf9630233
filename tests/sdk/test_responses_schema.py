"""Every Responses object ringway sends, whole or inside a streamed event, against the schema of
the API (tests/fixtures/responses_schema/responses.schema.json: every field the reference and
the live API always return), through the real binary and the mock provider, for each provider
kind (`gpt`: an OpenAI-kind Chat provider, `claude`: an Anthropic-kind one), streamed and not,
plain, with tools, with reasoning, cut short, refused and failed. The bodies are read raw: the
SDKs fill in what is missing, a strict reader does not.
"""

import json
import urllib.request

import pytest

from conftest import GATEWAY_KEY
from responses_schema import body_violations, sse_violations

MODELS = ["gpt", "claude"]
LIFECYCLE = {"response.created", "response.in_progress", "response.completed", "response.incomplete", "response.failed"}

# A function tool with neither `strict` nor `description` (the response adds both), one with
# both, and a custom tool.
TOOLS = [
    {"type": "function", "name": "get_weather",
     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
    {"type": "function", "name": "get_time", "description": "Time in a city", "strict": True,
     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                    "additionalProperties": False}},
    {"type": "custom", "name": "shell", "description": "Run a command"},
]
TOOL_PROMPT = 'What is the weather? mock:tool=get_weather mock:args={"city":"Paris"}'

# Request values the API repeats in its response.
ECHOED = {
    "instructions": "Be brief.",
    "temperature": 0.5,
    "top_p": 0.9,
    "max_output_tokens": 400,
    "metadata": {"suite": "schema"},
    "parallel_tool_calls": False,
    "tool_choice": "auto",
    "prompt_cache_key": "schema-1",
    "safety_identifier": "sid-1",
    "user": "user-1",
    "top_logprobs": 2,
    "max_tool_calls": 3,
    "store": False,
    "text": {"format": {"type": "text"}, "verbosity": "low"},
}

REASONING = {"reasoning": {"effort": "high", "summary": "auto"}, "include": ["reasoning.encrypted_content"]}

# What the API says for a value the request left unset.
DEFAULTS = {
    "background": False,
    "error": None,
    "frequency_penalty": 0.0,
    "instructions": None,
    "max_output_tokens": None,
    "max_tool_calls": None,
    "metadata": {},
    "moderation": None,
    "parallel_tool_calls": True,
    "presence_penalty": 0.0,
    "previous_response_id": None,
    "prompt_cache_key": None,
    "prompt_cache_retention": None,
    "reasoning": {"effort": None, "summary": None, "context": None},
    "safety_identifier": None,
    "store": True,  # unset is the API's default, true: the gateway keeps it
    "temperature": 1.0,
    "text": {"format": {"type": "text"}, "verbosity": "medium"},
    "tool_choice": "auto",
    "tools": [],
    "top_logprobs": 0,
    "top_p": 1.0,
    "truncation": "disabled",
    "user": None,
}


def post(gateway, path, body):
    req = urllib.request.Request(
        gateway.url + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"authorization": f"Bearer {GATEWAY_KEY}", "content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=20) as r:
        return r.status, r.headers.get("content-type", ""), r.read().decode()


def respond(gateway, model, stream, prompt, **extra):
    """The whole response, or the stream's events, checked against the schema; returns the
    final response object (and every event for a stream)."""
    body = {"model": model, "input": prompt, **extra}
    if stream:
        body["stream"] = True
    status, ctype, text = post(gateway, "/v1/responses", body)
    assert status == 200, text
    if not stream:
        assert ctype.startswith("application/json"), ctype
        doc = json.loads(text)
        problems = body_violations(doc, "Response")
        assert not problems, "\n".join(problems) + "\n" + text
        return doc, []
    assert ctype.startswith("text/event-stream"), ctype
    problems, events = sse_violations(text)
    assert not problems, "\n".join(problems) + "\n" + text
    lifecycle = [e for e in events if e["type"] in LIFECYCLE]
    assert lifecycle[0]["type"] == "response.created", [e["type"] for e in events]
    final = lifecycle[-1]["response"]
    # The echoed request values are the same in every lifecycle event; what changes is what
    # the answer decides.
    changing = {"status", "output", "usage", "completed_at", "service_tier", "error", "incomplete_details", "model"}
    for e in lifecycle[1:]:
        for key, value in lifecycle[0]["response"].items():
            if key not in changing:
                assert e["response"].get(key) == value, (e["type"], key)
    return final, events


def assert_completed(r):
    assert r["status"] == "completed", r
    assert isinstance(r["completed_at"], int) and r["completed_at"] >= r["created_at"], r
    assert r["service_tier"] == "default"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("model", MODELS)
def test_plain_answer_says_the_apis_defaults(gateway, model, stream):
    r, events = respond(gateway, model, stream, "hello schema mock:tokens=4 mock:input=100 mock:cache_read=30")
    assert_completed(r)
    for key, value in DEFAULTS.items():
        assert r[key] == value, (key, r[key])
    assert r["tools"] == []
    [msg] = r["output"]
    assert msg["type"] == "message" and msg["status"] == "completed"
    assert msg["content"][0]["annotations"] == [] and msg["content"][0]["logprobs"] == []
    usage = r["usage"]
    assert usage["input_tokens_details"]["cached_tokens"] == 30, usage
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    if stream:
        created = events[0]["response"]
        assert created["status"] == "in_progress" and created["completed_at"] is None
        assert created["usage"] is None and created["service_tier"] == "auto"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("model", MODELS)
def test_tools_and_request_values_are_echoed(gateway, model, stream):
    r, events = respond(gateway, model, stream, TOOL_PROMPT, tools=TOOLS, service_tier="auto", **ECHOED)
    assert_completed(r)
    for key, value in ECHOED.items():
        if key not in ("store",):
            assert r[key] == value, (key, r[key])
    assert r["store"] is False
    weather, time, shell = r["tools"]
    # Unset on the request: no strict adherence was asked of the provider.
    assert weather["strict"] is False and weather["description"] is None
    assert weather["parameters"] == TOOLS[0]["parameters"]
    assert time == TOOLS[1]
    assert shell == TOOLS[2]
    [call] = [o for o in r["output"] if o["type"] == "function_call"]
    assert call["id"].startswith("fc_") and call["status"] == "completed"
    assert json.loads(call["arguments"]) == {"city": "Paris"}
    if stream:
        done = [e for e in events if e["type"] == "response.function_call_arguments.done"]
        assert [e["name"] for e in done] == ["get_weather"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("model", MODELS)
def test_reasoning(gateway, model, stream):
    # Anthropic: a signed thinking block; OpenAI kind: `reasoning_content`, as reasoning Chat
    # providers send it (reasoning tokens counted too).
    prompt = "mock:thinking mock:reasoning_content mock:reasoning=7 " + TOOL_PROMPT
    r, _ = respond(gateway, model, stream, prompt, tools=TOOLS[:1], **REASONING)
    assert_completed(r)
    assert r["reasoning"] == {"effort": "high", "summary": "auto", "context": None}
    types = [o["type"] for o in r["output"]]
    assert types == ["reasoning", "function_call"], types
    item = r["output"][0]
    assert item["content"] == [] and item["summary"][0]["text"].strip()
    if model == "claude":
        assert item["encrypted_content"].startswith("rw1."), item
    else:
        # Nothing to seal: a Chat provider takes no reasoning back.
        assert item["encrypted_content"] is None, item
        assert r["usage"]["output_tokens_details"]["reasoning_tokens"] == 7, r["usage"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("model", MODELS)
def test_reasoning_not_included_is_null(gateway, model, stream):
    prompt = "mock:thinking mock:reasoning_content mock:notools hi"
    r, _ = respond(gateway, model, stream, prompt, reasoning={"effort": "low", "summary": "auto"})
    assert_completed(r)
    reasoning = [o for o in r["output"] if o["type"] == "reasoning"]
    assert len(reasoning) == 1, r["output"]
    assert reasoning[0]["encrypted_content"] is None and reasoning[0]["content"] == []


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("model", MODELS)
def test_cut_short_is_incomplete(gateway, model, stream):
    r, _ = respond(gateway, model, stream, "mock:tokens=60", max_output_tokens=16)
    assert r["status"] == "incomplete", r
    assert r["incomplete_details"] == {"reason": "max_output_tokens"}
    assert r["completed_at"] is None and r["max_output_tokens"] == 16


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("model", MODELS)
def test_refusal(gateway, model, stream):
    r, _ = respond(gateway, model, stream, "mock:refusal")
    assert r["status"] in ("completed", "incomplete"), r


@pytest.mark.parametrize("model", MODELS)
def test_failed_stream(gateway, model):
    r, events = respond(gateway, model, True, "mock:midstream_error mock:tokens=9")
    assert events[-1]["type"] == "response.failed"
    assert r["status"] == "failed" and r["error"]["message"], r
    assert r["completed_at"] is None


@pytest.mark.parametrize("model", MODELS)
def test_compaction(gateway, model):
    status, _, text = post(gateway, "/v1/responses/compact", {"model": model, "input": "summarise this"})
    assert status == 200, text
    doc = json.loads(text)
    assert not body_violations(doc, "CompactedResponse"), body_violations(doc, "CompactedResponse")
    for stream in (False, True):
        r, _ = respond(gateway, model, stream, [{"role": "user", "content": "hi"}, {"type": "compaction_trigger"}])
        assert [o["type"] for o in r["output"]] == ["compaction"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("model", MODELS)
def test_completed_at_is_when_the_answer_ended(gateway, model, stream):
    # The provider takes over a second to answer: `completed_at` (whole seconds) is at least
    # one second after `created_at`, the time the request was sent.
    r, _ = respond(gateway, model, stream, "mock:ttft=1100 mock:tokens=2")
    assert_completed(r)
    assert r["completed_at"] - r["created_at"] >= 1, r
