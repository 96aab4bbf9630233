"""The official SDKs through ringway to a provider of their own format (same-format relay)."""

import json

import anthropic
import openai
import pytest

WEATHER_O = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    },
}
TIME_O = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
WEATHER_A = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": WEATHER_O["function"]["parameters"],
}
TIME_A = {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}


# ---------- OpenAI SDK ----------


def test_openai_text(oai):
    r = oai.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "hello gateway"}])
    assert r.choices[0].message.content.endswith("You said: hello gateway")
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens > 0
    assert r.model == "mock-gpt"


def test_openai_text_raw_headers(oai):
    raw = oai.chat.completions.with_raw_response.create(model="gpt", messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["x-ringway-provider"] == "mo"
    assert raw.headers["x-ringway-model"] == "mock-gpt"
    assert raw.headers["x-ringway-request-id"].startswith("rw-")


def test_openai_stream_text_and_usage(oai):
    stream = oai.chat.completions.create(
        model="gpt",
        messages=[{"role": "user", "content": "stream this please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage = "", None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    assert text.endswith("You said: stream this please")
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens == len(text.split())


def test_openai_tool_call(oai):
    r = oai.chat.completions.create(
        model="gpt", messages=[{"role": "user", "content": "weather?"}], tools=[WEATHER_O, TIME_O]
    )
    msg = r.choices[0].message
    assert r.choices[0].finish_reason == "tool_calls"
    assert len(msg.tool_calls) == 1
    call = msg.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "mock", "days": 1}
    assert call.id.startswith("call_")


def test_openai_stream_parallel_tool_calls_accumulate(oai):
    with oai.chat.completions.stream(
        model="gpt", messages=[{"role": "user", "content": "mock:parallel both"}], tools=[WEATHER_O, TIME_O]
    ) as s:
        final = s.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert json.loads(calls[0].function.arguments) == {"city": "mock", "days": 1}
    assert json.loads(calls[1].function.arguments) == {}
    assert len({c.id for c in calls}) == 2
    # The same request without streaming gives the same ids and arguments.
    r = oai.chat.completions.create(
        model="gpt", messages=[{"role": "user", "content": "mock:parallel both"}], tools=[WEATHER_O, TIME_O]
    )
    assert [(c.function.name, c.function.arguments) for c in r.choices[0].message.tool_calls] == [
        (c.function.name, c.function.arguments) for c in calls
    ]


def test_openai_errors_map_to_sdk_exceptions(oai, gateway):
    with pytest.raises(openai.RateLimitError):
        oai.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "mock:status=429"}])
    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "mock:status=500"}])
    with pytest.raises(openai.NotFoundError) as e:
        oai.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    assert e.value.code == "model_not_found"
    bad = openai.OpenAI(api_key="wrong", base_url=gateway.url + "/v1", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError):
        oai.chat.completions.create(model="", messages=[{"role": "user", "content": "x"}])


def test_openai_midstream_error_raises(oai):
    stream = oai.chat.completions.create(
        model="gpt", messages=[{"role": "user", "content": "mock:midstream_error"}], stream=True
    )
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass


def test_openai_reset_midstream_raises(oai):
    stream = oai.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "mock:reset"}], stream=True)
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass


def test_openai_models_list(oai):
    ids = [m.id for m in oai.models.list()]
    assert ids == ["gpt", "claude"]


def test_openai_models_retrieve(oai):
    m = oai.models.retrieve("claude")
    assert m.id == "claude" and m.object == "model" and m.owned_by == "ringway"
    with pytest.raises(openai.NotFoundError):
        oai.models.retrieve("no-such-model")


def test_anthropic_models_retrieve(ant):
    m = ant.models.retrieve("gpt")
    assert m.id == "gpt" and m.type == "model" and m.display_name == "gpt"
    with pytest.raises(anthropic.NotFoundError):
        ant.models.retrieve("no-such-model")


# ---------- Anthropic SDK ----------


def test_anthropic_text(ant):
    m = ant.messages.create(model="claude", max_tokens=100, messages=[{"role": "user", "content": "hello claude"}])
    assert m.content[0].text.endswith("You said: hello claude")
    assert m.stop_reason == "end_turn"
    assert m.usage.output_tokens > 0
    assert m.model == "mock-claude"


def test_anthropic_stream_final_message(ant):
    with ant.messages.stream(
        model="claude", max_tokens=100, messages=[{"role": "user", "content": "stream me please"}]
    ) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text.endswith("You said: stream me please")
    assert final.content[0].text == text
    assert final.stop_reason == "end_turn"


def test_anthropic_tool_use_stream(ant):
    with ant.messages.stream(
        model="claude",
        max_tokens=200,
        messages=[{"role": "user", "content": "mock:parallel weather"}],
        tools=[WEATHER_A, TIME_A],
    ) as s:
        final = s.get_final_message()
    uses = [b for b in final.content if b.type == "tool_use"]
    assert [u.name for u in uses] == ["get_weather", "get_time"]
    assert uses[0].input == {"city": "mock", "days": 1}
    assert uses[1].input == {}
    assert final.stop_reason == "tool_use"
    m = ant.messages.create(
        model="claude",
        max_tokens=200,
        messages=[{"role": "user", "content": "mock:parallel weather"}],
        tools=[WEATHER_A, TIME_A],
    )
    assert [(b.name, b.input) for b in m.content if b.type == "tool_use"] == [(u.name, u.input) for u in uses]


def test_anthropic_tool_result_round_trip(ant):
    m = ant.messages.create(
        model="claude",
        max_tokens=200,
        tools=[WEATHER_A],
        messages=[
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "x", "days": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny and warm"}]},
        ],
    )
    assert "sunny and warm" in m.content[0].text


def test_anthropic_count_tokens(ant):
    r = ant.messages.count_tokens(model="claude", messages=[{"role": "user", "content": "count"}])
    assert r.input_tokens > 0


def test_anthropic_errors_map_to_sdk_exceptions(ant, gateway):
    msgs = lambda p: [{"role": "user", "content": p}]  # noqa: E731
    with pytest.raises(anthropic.RateLimitError):
        ant.messages.create(model="claude", max_tokens=10, messages=msgs("mock:status=429"))
    with pytest.raises(anthropic.InternalServerError) as e:
        ant.messages.create(model="claude", max_tokens=10, messages=msgs("mock:status=529"))
    assert e.value.status_code == 529
    with pytest.raises(anthropic.NotFoundError):
        ant.messages.create(model="nope", max_tokens=10, messages=msgs("x"))
    bad = anthropic.Anthropic(api_key="wrong", base_url=gateway.url, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        bad.messages.create(model="claude", max_tokens=10, messages=msgs("x"))


def test_anthropic_midstream_error_raises(ant):
    with pytest.raises(anthropic.APIStatusError) as e:
        with ant.messages.stream(model="claude", max_tokens=50, messages=[{"role": "user", "content": "mock:midstream_error"}]) as s:
            for _ in s:
                pass
    assert "overloaded" in str(e.value).lower()


def test_anthropic_reset_midstream_raises(ant):
    with pytest.raises(anthropic.APIError):
        with ant.messages.stream(model="claude", max_tokens=50, messages=[{"role": "user", "content": "mock:reset"}]) as s:
            for _ in s:
                pass
