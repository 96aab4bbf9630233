"""The official SDKs through ringway to a provider of the OTHER format (translation).

`gpt` is served by an OpenAI-format provider and `claude` by an Anthropic-format one, so the
OpenAI SDK talks to `claude` and the Anthropic SDK talks to `gpt` here. What the mock provider
received is checked through its `/mock/requests` record.
"""

import base64
import json
import urllib.request

import anthropic
import openai
import pytest

from test_same_format import TIME_A, TIME_O, WEATHER_A, WEATHER_O

PNG_1PX = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    )
).decode()


def mock_seen(mock):
    with urllib.request.urlopen(f"http://{mock.addr}/mock/requests") as r:
        return json.loads(r.read())


def last_sent(mock):
    rec = mock_seen(mock)[-1]
    return rec["path"], json.loads(rec["body"])


# ====================== OpenAI SDK → Anthropic provider ======================


def test_o2a_text_system_multiturn(oai, mock):
    r = oai.chat.completions.create(
        model="claude",
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {"role": "user", "content": "second question"},
        ],
    )
    assert r.object == "chat.completion"
    assert r.choices[0].message.content.endswith("You said: second question")
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    path, sent = last_sent(mock)
    assert path == "/v1/messages"
    assert sent["model"] == "mock-claude"
    assert sent["system"] in ("You are terse.", [{"type": "text", "text": "You are terse."}])
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["max_tokens"] > 0


def test_o2a_stream_usage_only_when_asked(oai):
    def collect(**kw):
        chunks = list(
            oai.chat.completions.create(
                model="claude", messages=[{"role": "user", "content": "mock:tokens=4"}], stream=True, **kw
            )
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        return chunks, text

    chunks, text = collect(stream_options={"include_usage": True})
    assert text == "w1 w2 w3 w4"
    usage = [c.usage for c in chunks if c.usage]
    assert len(usage) == 1 and usage[0].completion_tokens == 4
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["stop"]
    chunks, text = collect()
    assert text == "w1 w2 w3 w4"
    assert all(c.usage is None for c in chunks)


def test_o2a_tool_call_and_parallel_stream_accumulation(oai, mock):
    r = oai.chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "weather please"}], tools=[WEATHER_O, TIME_O]
    )
    msg = r.choices[0].message
    assert r.choices[0].finish_reason == "tool_calls"
    assert [c.function.name for c in msg.tool_calls] == ["get_weather"]
    assert json.loads(msg.tool_calls[0].function.arguments) == {"city": "mock", "days": 1}
    _, sent = last_sent(mock)
    assert sent["tools"][0]["name"] == "get_weather"
    assert sent["tools"][0]["input_schema"] == WEATHER_O["function"]["parameters"]

    with oai.chat.completions.stream(
        model="claude", messages=[{"role": "user", "content": "mock:parallel"}], tools=[WEATHER_O, TIME_O]
    ) as s:
        final = s.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert final.choices[0].finish_reason == "tool_calls"
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert [json.loads(c.function.arguments) for c in calls] == [{"city": "mock", "days": 1}, {}]
    # Ids are the provider's tool_use ids, exactly.
    body = json.loads(mock_seen(mock)[-1]["body"])
    assert body["stream"] is True
    assert all(c.id.startswith("toolu_") for c in calls)
    assert len({c.id for c in calls}) == 2


def test_o2a_tool_choice_and_parallel_flag_mapped(oai, mock):
    oai.chat.completions.create(
        model="claude",
        messages=[{"role": "user", "content": "x"}],
        tools=[WEATHER_O, TIME_O],
        tool_choice="required",
        parallel_tool_calls=False,
    )
    _, sent = last_sent(mock)
    assert sent["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    r = oai.chat.completions.create(
        model="claude",
        messages=[{"role": "user", "content": "x"}],
        tools=[WEATHER_O, TIME_O],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    assert r.choices[0].message.tool_calls[0].function.name == "get_time"
    _, sent = last_sent(mock)
    assert sent["tool_choice"]["type"] == "tool" and sent["tool_choice"]["name"] == "get_time"


def test_o2a_tool_result_round_trip(oai, mock):
    r = oai.chat.completions.create(
        model="claude",
        tools=[WEATHER_O],
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "toolu_abc", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_abc", "content": "rainy all week"},
        ],
    )
    assert "rainy all week" in r.choices[0].message.content
    _, sent = last_sent(mock)
    assistant = sent["messages"][1]
    assert assistant["content"][0] == {"type": "tool_use", "id": "toolu_abc", "name": "get_weather", "input": {}}
    result = sent["messages"][2]["content"][0]
    assert result["type"] == "tool_result" and result["tool_use_id"] == "toolu_abc"


def test_o2a_image_data_url_becomes_base64_source(oai, mock):
    r = oai.chat.completions.create(
        model="claude",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_1PX}"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                ],
            }
        ],
    )
    assert r.choices[0].message.content
    _, sent = last_sent(mock)
    blocks = sent["messages"][0]["content"]
    assert blocks[1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_1PX}}
    assert blocks[2]["source"] == {"type": "url", "url": "https://example.com/cat.jpg"}


def test_o2a_thinking_with_signatures_across_two_turns(oai, mock):
    r = oai.chat.completions.create(
        model="claude",
        reasoning_effort="low",
        max_completion_tokens=4000,
        messages=[{"role": "user", "content": "mock:thinking weather?"}],
        tools=[WEATHER_O],
    )
    _, sent = last_sent(mock)
    # mock-claude is no Claude id the gateway knows as older: `auto` sends adaptive thinking.
    assert sent["thinking"] == {"type": "adaptive"} and sent["output_config"] == {"effort": "low"}
    msg = r.choices[0].message
    extra = msg.model_extra
    assert extra.get("reasoning_content"), extra
    blocks = extra["thinking_blocks"]
    assert blocks[0]["type"] == "thinking" and len(blocks[0]["signature"]) > 50
    # Second turn: the client sends the assistant turn back as it got it.
    call = msg.tool_calls[0]
    oai.chat.completions.create(
        model="claude",
        reasoning_effort="low",
        max_completion_tokens=4000,
        tools=[WEATHER_O],
        messages=[
            {"role": "user", "content": "mock:thinking weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [call.model_dump()],
                "reasoning_content": extra["reasoning_content"],
                "thinking_blocks": blocks,
            },
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ],
    )
    _, sent = last_sent(mock)
    content = sent["messages"][1]["content"]
    assert content[0]["type"] == "thinking", "thinking must come first in the assistant turn"
    assert content[0]["signature"] == blocks[0]["signature"]
    assert content[0]["thinking"] == blocks[0]["thinking"]
    assert content[1]["type"] == "tool_use" and content[1]["id"] == call.id


def test_o2a_thinking_stream_never_inside_text(oai):
    chunks = list(
        oai.chat.completions.create(
            model="claude",
            reasoning_effort="low",
            max_completion_tokens=4000,
            messages=[{"role": "user", "content": "mock:thinking hi"}],
            stream=True,
        )
    )
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in chunks if c.choices)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert reasoning and "You said" not in reasoning
    assert text.endswith("You said: hi") and reasoning not in text


def test_o2a_cache_usage(oai):
    r = oai.chat.completions.create(model="claude", messages=[{"role": "user", "content": "mock:cache hello"}])
    u = r.usage
    cached = u.prompt_tokens_details.cached_tokens
    assert cached > 0
    assert u.prompt_tokens > cached  # prompt_tokens counts cached reads too (spec §8)


def test_o2a_max_tokens_and_refusal(oai):
    r = oai.chat.completions.create(
        model="claude", max_tokens=3, messages=[{"role": "user", "content": "mock:tokens=10"}]
    )
    assert r.choices[0].finish_reason == "length"
    assert r.choices[0].message.content == "w1 w2 w3"
    r = oai.chat.completions.create(model="claude", messages=[{"role": "user", "content": "mock:refusal"}])
    assert r.choices[0].finish_reason == "content_filter"


def test_o2a_unsupported_parameter_is_named(oai, mock):
    before = len(mock_seen(mock))
    with pytest.raises(openai.BadRequestError) as e:
        oai.chat.completions.create(model="claude", n=3, messages=[{"role": "user", "content": "x"}])
    assert e.value.param == "n" or "n" in str(e.value)
    assert len(mock_seen(mock)) == before, "nothing goes upstream"


def test_o2a_upstream_errors(oai):
    msgs = lambda p: [{"role": "user", "content": p}]  # noqa: E731
    with pytest.raises(openai.RateLimitError) as e:
        oai.chat.completions.create(model="claude", messages=msgs("mock:status=429"))
    assert e.value.response.headers.get("retry-after") == "1"
    with pytest.raises(openai.InternalServerError) as e:
        oai.chat.completions.create(model="claude", messages=msgs("mock:status=500"))
    assert e.value.status_code == 500
    with pytest.raises(openai.InternalServerError) as e:
        oai.chat.completions.create(model="claude", messages=msgs("mock:status=529"))
    assert e.value.status_code == 503


@pytest.mark.parametrize("directive", ["mock:midstream_error", "mock:reset"])
def test_o2a_stream_failures_raise(oai, directive):
    stream = oai.chat.completions.create(model="claude", messages=[{"role": "user", "content": directive}], stream=True)
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass


# ====================== Anthropic SDK → OpenAI provider ======================


def test_a2o_text_system_blocks_multiturn(ant, mock):
    m = ant.messages.create(
        model="gpt",
        max_tokens=200,
        system=[{"type": "text", "text": "Be kind."}, {"type": "text", "text": "Be brief."}],
        messages=[
            {"role": "user", "content": "q1"},
            {"role": "assistant", "content": "a1"},
            {"role": "user", "content": [{"type": "text", "text": "q2 part"}, {"type": "text", "text": "two"}]},
        ],
    )
    assert m.type == "message" and m.role == "assistant"
    assert m.content[0].type == "text" and "q2 part" in m.content[0].text
    assert m.stop_reason == "end_turn"
    assert m.usage.input_tokens > 0 and m.usage.output_tokens > 0
    path, sent = last_sent(mock)
    assert path == "/v1/chat/completions"
    assert sent["messages"][0]["role"] in ("system", "developer")
    assert [x["role"] for x in sent["messages"][1:]] == ["user", "assistant", "user"]
    assert sent.get("max_completion_tokens") == 200


def test_a2o_stream_final_message(ant, mock):
    with ant.messages.stream(model="gpt", max_tokens=100, messages=[{"role": "user", "content": "mock:tokens=5"}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == "w1 w2 w3 w4 w5"
    assert final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 5
    _, sent = last_sent(mock)
    assert sent["stream_options"]["include_usage"] is True


def test_a2o_tool_use_stream_and_not(ant, mock):
    m = ant.messages.create(
        model="gpt", max_tokens=200, tools=[WEATHER_A, TIME_A], messages=[{"role": "user", "content": "mock:parallel"}]
    )
    uses = [b for b in m.content if b.type == "tool_use"]
    assert m.stop_reason == "tool_use"
    assert [(u.name, u.input) for u in uses] == [("get_weather", {"city": "mock", "days": 1}), ("get_time", {})]
    _, sent = last_sent(mock)
    assert sent["tools"][0]["function"]["parameters"] == WEATHER_A["input_schema"]
    with ant.messages.stream(
        model="gpt", max_tokens=200, tools=[WEATHER_A, TIME_A], messages=[{"role": "user", "content": "mock:parallel"}]
    ) as s:
        final = s.get_final_message()
    suses = [b for b in final.content if b.type == "tool_use"]
    assert [(u.name, u.input) for u in suses] == [(u.name, u.input) for u in uses]
    assert all(u.id.startswith("call_") for u in suses)
    assert final.stop_reason == "tool_use"


def test_a2o_tool_result_round_trip_and_is_error(ant, mock):
    m = ant.messages.create(
        model="gpt",
        max_tokens=200,
        tools=[WEATHER_A],
        messages=[
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "x", "days": 2}}]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": [{"type": "text", "text": "hail"}], "is_error": True},
                    {"type": "text", "text": "and now?"},
                ],
            },
        ],
    )
    # The translated conversation ends with the user's text, so the mock answers with a tool call.
    assert m.content[0].type == "tool_use"
    _, sent = last_sent(mock)
    roles = [x["role"] for x in sent["messages"]]
    assert roles == ["user", "assistant", "tool", "user"], roles
    call = sent["messages"][1]["tool_calls"][0]
    assert call["id"] == "call_1" and json.loads(call["function"]["arguments"]) == {"city": "x", "days": 2}
    assert sent["messages"][2]["tool_call_id"] == "call_1"
    assert "hail" in json.dumps(sent["messages"][2]["content"])


def test_a2o_image_base64_becomes_data_url(ant, mock):
    ant.messages.create(
        model="gpt",
        max_tokens=50,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_1PX}},
                    {"type": "text", "text": "describe"},
                ],
            }
        ],
    )
    _, sent = last_sent(mock)
    parts = sent["messages"][0]["content"]
    assert parts[0]["type"] == "image_url"
    assert parts[0]["image_url"]["url"] == f"data:image/png;base64,{PNG_1PX}"


def test_a2o_cache_usage_and_max_tokens(ant):
    m = ant.messages.create(model="gpt", max_tokens=100, messages=[{"role": "user", "content": "mock:cache hi"}])
    assert m.usage.cache_read_input_tokens > 0
    m2 = ant.messages.create(model="gpt", max_tokens=100, messages=[{"role": "user", "content": "hi"}])
    # input_tokens excludes cache reads (spec §8): same prompt size, cached part moved out.
    assert m.usage.input_tokens + m.usage.cache_read_input_tokens >= m2.usage.input_tokens
    m = ant.messages.create(model="gpt", max_tokens=2, messages=[{"role": "user", "content": "mock:tokens=9"}])
    assert m.stop_reason == "max_tokens"
    assert m.content[0].text == "w1 w2"


def test_a2o_refusal(ant):
    m = ant.messages.create(model="gpt", max_tokens=50, messages=[{"role": "user", "content": "mock:refusal"}])
    assert m.stop_reason == "refusal"


def test_a2o_upstream_errors(ant):
    msgs = lambda p: [{"role": "user", "content": p}]  # noqa: E731
    with pytest.raises(anthropic.RateLimitError):
        ant.messages.create(model="gpt", max_tokens=10, messages=msgs("mock:status=429"))
    with pytest.raises(anthropic.InternalServerError) as e:
        ant.messages.create(model="gpt", max_tokens=10, messages=msgs("mock:status=500"))
    assert e.value.status_code == 500
    with pytest.raises(anthropic.APIStatusError) as e:
        ant.messages.create(model="gpt", max_tokens=10, messages=msgs("mock:status=503"))
    assert e.value.status_code == 529
    assert e.value.body["error"]["type"] == "overloaded_error"
    with pytest.raises(anthropic.BadRequestError):
        ant.messages.create(model="gpt", max_tokens=10, messages=msgs("mock:status=400"))


@pytest.mark.parametrize("directive", ["mock:midstream_error", "mock:reset"])
def test_a2o_stream_failures_raise(ant, directive):
    with pytest.raises(anthropic.APIError):
        with ant.messages.stream(model="gpt", max_tokens=50, messages=[{"role": "user", "content": directive}]) as s:
            for _ in s:
                pass


# ====================== max_tokens lands inside a tool call ======================


def test_o2a_max_tokens_mid_tool_call(oai):
    kw = dict(model="claude", max_tokens=3, tools=[WEATHER_O], messages=[{"role": "user", "content": "weather"}])
    r = oai.chat.completions.create(**kw)
    assert r.choices[0].finish_reason == "length"
    call = r.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    # The SDK's stream helper refuses a length-cut answer with its own exception.
    with pytest.raises(openai.LengthFinishReasonError):
        with oai.chat.completions.stream(**kw) as s:
            s.get_final_completion()
    # Accumulated by hand, the streamed call has the same id/name and the cut arguments.
    args, names, finish = "", [], None
    for chunk in oai.chat.completions.create(stream=True, **kw):
        for c in chunk.choices:
            finish = c.finish_reason or finish
            for tc in c.delta.tool_calls or []:
                if tc.function.name:
                    names.append(tc.function.name)
                args += tc.function.arguments or ""
    assert finish == "length"
    assert names == ["get_weather"]
    # The arguments stop mid-JSON, exactly as the provider cut them.
    assert args.startswith('{"city"')
    with pytest.raises(json.JSONDecodeError):
        json.loads(args)


def test_a2o_max_tokens_mid_tool_call(ant):
    kw = dict(model="gpt", max_tokens=3, tools=[WEATHER_A], messages=[{"role": "user", "content": "weather"}])
    m = ant.messages.create(**kw)
    assert m.stop_reason == "max_tokens"
    assert [b.name for b in m.content if b.type == "tool_use"] == ["get_weather"]
    with ant.messages.stream(**kw) as s:
        final = s.get_final_message()
    assert final.stop_reason == "max_tokens"
    uses = [b for b in final.content if b.type == "tool_use"]
    assert [u.name for u in uses] == ["get_weather"]


# ====================== exact ids, names and arguments through a translated stream ======================


def replay_upstream(mock):
    """Send the last body the gateway sent upstream straight to the (deterministic) mock and
    return the raw SSE text the provider produces for it."""
    rec = mock_seen(mock)[-1]
    req = urllib.request.Request(
        f"http://{mock.addr}{rec['path']}", data=rec["body"].encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(req) as r:
        return r.read().decode()


def sse_data(text):
    out = []
    for block in text.split("\n\n"):
        lines = [l[5:].strip() for l in block.splitlines() if l.startswith("data:")]
        if lines and lines[0] != "[DONE]":
            out.append(json.loads("\n".join(lines)))
    return out


def test_a2o_stream_gives_the_providers_exact_tool_calls(ant, mock):
    with ant.messages.stream(
        model="gpt", max_tokens=200, tools=[WEATHER_A, TIME_A], messages=[{"role": "user", "content": "mock:parallel"}]
    ) as s:
        final = s.get_final_message()
    got = [(b.id, b.name, b.input) for b in final.content if b.type == "tool_use"]
    calls = {}
    for chunk in sse_data(replay_upstream(mock)):
        for choice in chunk.get("choices", []):
            for tc in choice["delta"].get("tool_calls") or []:
                c = calls.setdefault(tc["index"], {"id": None, "name": None, "args": ""})
                c["id"] = tc.get("id") or c["id"]
                c["name"] = (tc.get("function") or {}).get("name") or c["name"]
                c["args"] += (tc.get("function") or {}).get("arguments") or ""
    want = [(c["id"], c["name"], json.loads(c["args"] or "{}")) for _, c in sorted(calls.items())]
    assert got == want and len(want) == 2


def test_o2a_stream_gives_the_providers_exact_tool_calls(oai, mock):
    stream = oai.chat.completions.create(
        model="claude", stream=True, tools=[WEATHER_O, TIME_O], messages=[{"role": "user", "content": "mock:parallel"}]
    )
    calls = {}
    for chunk in stream:
        for c in chunk.choices:
            for tc in c.delta.tool_calls or []:
                acc = calls.setdefault(tc.index, {"id": None, "name": None, "args": ""})
                if tc.id:
                    assert acc["id"] is None, "id only on the first chunk of a call"
                    acc["id"] = tc.id
                if tc.function and tc.function.name:
                    assert acc["name"] is None, "name only on the first chunk of a call"
                    acc["name"] = tc.function.name
                acc["args"] += (tc.function.arguments or "") if tc.function else ""
    got = [(c["id"], c["name"], json.loads(c["args"] or "{}")) for _, c in sorted(calls.items())]
    blocks, inputs = {}, {}
    for ev in sse_data(replay_upstream(mock)):
        if ev["type"] == "content_block_start" and ev["content_block"]["type"] == "tool_use":
            blocks[ev["index"]] = ev["content_block"]
            inputs[ev["index"]] = ""
        elif ev["type"] == "content_block_delta" and ev["delta"]["type"] == "input_json_delta":
            inputs[ev["index"]] += ev["delta"]["partial_json"]
    want = [(b["id"], b["name"], json.loads(inputs[i] or "{}")) for i, b in sorted(blocks.items())]
    assert got == want and len(want) == 2


def test_a2o_count_tokens_is_estimated_by_the_gateway(ant, mock):
    # An OpenAI-format provider has no count_tokens: ringway answers with its own o200k_base
    # estimate (it used to refuse with a 400), and the provider is never asked.
    seen_before = mock_seen(mock)
    msgs = lambda p: [{"role": "user", "content": p}]  # noqa: E731
    short = ant.messages.count_tokens(model="gpt", messages=msgs("hello world"))
    # reply priming 3 + message 3 + "user" 1 + "hello world" 2
    assert short.input_tokens == 9
    long = ant.messages.count_tokens(model="gpt", messages=msgs("The quick brown fox jumps over the lazy dog. " * 50))
    assert 450 <= long.input_tokens <= 600
    tooled = ant.messages.count_tokens(model="gpt", messages=msgs("hello world"), tools=[WEATHER_A])
    assert tooled.input_tokens > short.input_tokens + 19  # func_init 7 + func_end 12 + the text
    image = ant.messages.count_tokens(
        model="gpt",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_1PX}},
                    {"type": "text", "text": "hello world"},
                ],
            }
        ],
    )
    # A 1x1 PNG is one 512 px tile at high detail: 85 + 170.
    assert image.input_tokens == short.input_tokens + 255
    assert mock_seen(mock) == seen_before
