"""Base URLs users already have: the Anthropic SDK pointed at a URL ending in `/v1` (it then
posts to `/v1/v1/messages`) and the OpenAI SDK pointed at one without `/v1` (it then posts to
`/chat/completions`). Each client records the paths it really requested, so the form under test
is the one exercised. Both provider kinds are covered: `claude` is served by an Anthropic-kind
provider and `gpt` by an OpenAI-kind one.
"""

import json

import anthropic
import openai
import pytest

from conftest import GATEWAY_KEY
from test_same_format import TIME_A, TIME_O, WEATHER_A, WEATHER_O


class Recorder:
    def __init__(self):
        self.paths = []

    def __call__(self, request):
        self.paths.append(request.url.path)


@pytest.fixture()
def ant_v1(gateway):
    rec = Recorder()
    http = anthropic.DefaultHttpxClient(event_hooks={"request": [rec]})
    c = anthropic.Anthropic(api_key=GATEWAY_KEY, base_url=gateway.url + "/v1", max_retries=0, timeout=20, http_client=http)
    c.paths = rec.paths
    return c


@pytest.fixture()
def oai_root(gateway):
    rec = Recorder()
    http = openai.DefaultHttpxClient(event_hooks={"request": [rec]})
    c = openai.OpenAI(api_key=GATEWAY_KEY, base_url=gateway.url, max_retries=0, timeout=20, http_client=http)
    c.paths = rec.paths
    return c


MODELS = ["claude", "gpt"]


# ---------- Anthropic SDK, base_url ending in /v1 ----------


@pytest.mark.parametrize("model", MODELS)
def test_anthropic_v1_base_text(ant_v1, model):
    m = ant_v1.messages.create(model=model, max_tokens=100, messages=[{"role": "user", "content": "hello base"}])
    assert ant_v1.paths == ["/v1/v1/messages"]
    assert m.content[0].text.endswith("You said: hello base")
    assert m.stop_reason == "end_turn"


@pytest.mark.parametrize("model", MODELS)
def test_anthropic_v1_base_stream_text(ant_v1, model):
    with ant_v1.messages.stream(model=model, max_tokens=100, messages=[{"role": "user", "content": "mock:tokens=4"}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert ant_v1.paths == ["/v1/v1/messages"]
    assert text == "w1 w2 w3 w4"
    assert final.content[0].text == text
    assert final.stop_reason == "end_turn"


@pytest.mark.parametrize("model", MODELS)
def test_anthropic_v1_base_tools(ant_v1, model):
    m = ant_v1.messages.create(
        model=model, max_tokens=200, messages=[{"role": "user", "content": "weather?"}], tools=[WEATHER_A, TIME_A]
    )
    assert m.stop_reason == "tool_use"
    assert [(b.name, b.input) for b in m.content if b.type == "tool_use"] == [("get_weather", {"city": "mock", "days": 1})]
    with ant_v1.messages.stream(
        model=model, max_tokens=200, messages=[{"role": "user", "content": "mock:parallel"}], tools=[WEATHER_A, TIME_A]
    ) as s:
        final = s.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [(b.name, b.input) for b in final.content if b.type == "tool_use"] == [
        ("get_weather", {"city": "mock", "days": 1}),
        ("get_time", {}),
    ]
    assert ant_v1.paths == ["/v1/v1/messages", "/v1/v1/messages"]


@pytest.mark.parametrize("model", MODELS)
def test_anthropic_v1_base_tool_result_round_trip(ant_v1, model):
    m = ant_v1.messages.create(
        model=model,
        max_tokens=200,
        tools=[WEATHER_A],
        messages=[
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "x", "days": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny and warm"}]},
        ],
    )
    assert "sunny and warm" in m.content[0].text


@pytest.mark.parametrize("model", MODELS)
def test_anthropic_v1_base_count_tokens_and_models(ant_v1, model):
    r = ant_v1.messages.count_tokens(model=model, messages=[{"role": "user", "content": "hello world"}])
    assert r.input_tokens > 0
    assert ant_v1.models.retrieve(model).id == model
    assert [m.id for m in ant_v1.models.list()] == ["gpt", "claude"]
    assert ant_v1.paths == ["/v1/v1/messages/count_tokens", f"/v1/v1/models/{model}", "/v1/v1/models"]


def test_anthropic_v1_base_errors(ant_v1):
    with pytest.raises(anthropic.RateLimitError):
        ant_v1.messages.create(model="claude", max_tokens=10, messages=[{"role": "user", "content": "mock:status=429"}])
    with pytest.raises(anthropic.NotFoundError):
        ant_v1.messages.create(model="nope", max_tokens=10, messages=[{"role": "user", "content": "x"}])


# ---------- OpenAI SDK, base_url without /v1 ----------


@pytest.mark.parametrize("model", MODELS)
def test_openai_root_base_text(oai_root, model):
    r = oai_root.chat.completions.create(model=model, messages=[{"role": "user", "content": "hello base"}])
    assert oai_root.paths == ["/chat/completions"]
    assert r.choices[0].message.content.endswith("You said: hello base")
    assert r.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("model", MODELS)
def test_openai_root_base_stream_text(oai_root, model):
    stream = oai_root.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "mock:tokens=4"}], stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert oai_root.paths == ["/chat/completions"]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "w1 w2 w3 w4"
    assert [c.usage.completion_tokens for c in chunks if c.usage] == [4]


@pytest.mark.parametrize("model", MODELS)
def test_openai_root_base_tools(oai_root, model):
    r = oai_root.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "weather?"}], tools=[WEATHER_O, TIME_O]
    )
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "mock", "days": 1}
    with oai_root.chat.completions.stream(
        model=model, messages=[{"role": "user", "content": "mock:parallel"}], tools=[WEATHER_O, TIME_O]
    ) as s:
        final = s.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "mock", "days": 1}),
        ("get_time", {}),
    ]
    assert oai_root.paths == ["/chat/completions", "/chat/completions"]


def test_openai_root_base_models_and_errors(oai_root):
    assert [m.id for m in oai_root.models.list()] == ["gpt", "claude"]
    assert oai_root.models.retrieve("gpt").id == "gpt"
    assert oai_root.paths == ["/models", "/models/gpt"]
    with pytest.raises(openai.RateLimitError):
        oai_root.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "mock:status=429"}])
    with pytest.raises(openai.NotFoundError):
        oai_root.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
