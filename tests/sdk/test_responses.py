"""The official OpenAI Python SDK's `responses` resource (`POST /v1/responses`) through ringway.

Every test runs once per provider kind: `gpt` goes to an OpenAI-kind provider (Responses →
Chat Completions) and `claude` to an Anthropic-kind one (Responses → Messages). The mock
provider is steered by directives in the prompt (src/mock/script.rs); what it received is read
back from its `/mock/requests` record.
"""

import base64
import json
import struct
import typing
import urllib.request
import zlib

import openai
import pytest
from openai.types.responses.response_error import ResponseError

from conftest import GATEWAY_KEY

MODELS = ["gpt", "claude"]
ERROR_CODES = typing.get_args(ResponseError.model_fields["code"].annotation)
# The mock's tool call ids per provider kind.
CALL_PREFIX = {"gpt": "call_", "claude": "toolu_"}

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
TOOL_PROMPT = 'What is the weather? mock:tool=get_weather mock:args={"city":"Paris"}'


def png_data_url(width=2, height=2):
    """A valid RGB PNG, built here, as a data URL."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    return "data:image/png;base64," + base64.b64encode(png).decode()


def mock_seen(mock):
    with urllib.request.urlopen(f"http://{mock.addr}/mock/requests") as r:
        return json.loads(r.read())


def last_sent(mock):
    rec = mock_seen(mock)[-1]
    return rec["path"], json.loads(rec["body"])


def assert_sequence(events):
    """Lifecycle order and sequence numbers of a whole stream."""
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"], types
    assert types[-1] == "response.completed", types
    seq = [e.sequence_number for e in events]
    assert seq[0] == 0, seq
    assert all(b > a for a, b in zip(seq, seq[1:])), seq


def calls_of(response):
    return [o for o in response.output if o.type == "function_call"]


@pytest.fixture()
def client(gateway):
    """An OpenAI client that validates every response and event against the SDK's pydantic
    models (by default the SDK only constructs them, so a missing or mistyped field passes)."""
    return openai.OpenAI(
        api_key=GATEWAY_KEY,
        base_url=gateway.url + "/v1",
        max_retries=0,
        timeout=20,
        _strict_response_validation=True,
    )


# ---------------------------------------------------------------- text


@pytest.mark.parametrize("model", MODELS)
def test_text(client, model):
    r = client.responses.create(model=model, input="hello gateway")
    assert r.id.startswith("resp_"), r.id
    assert r.object == "response"
    assert r.status == "completed"
    assert r.output[0].type == "message"
    assert r.output[0].role == "assistant"
    assert r.output_text.endswith("You said: hello gateway"), r.output_text
    assert r.usage.input_tokens > 0
    assert r.usage.output_tokens > 0
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens


@pytest.mark.parametrize("model", MODELS)
def test_text_stream_helper(client, model):
    with client.responses.stream(model=model, input="mock:tokens=5") as s:
        events = list(s)
        final = s.get_final_response()
    assert_sequence(events)
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == "w1 w2 w3 w4 w5"
    assert final.output_text == deltas
    assert final.status == "completed"
    assert final.id.startswith("resp_")
    assert all(getattr(e, "response", final).id == final.id for e in events)
    assert final.usage.output_tokens > 0 and final.usage.input_tokens > 0


@pytest.mark.parametrize("model", MODELS)
def test_text_stream_raw(client, mock, model):
    events = list(client.responses.create(model=model, input="mock:tokens=4", stream=True))
    assert_sequence(events)
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == "w1 w2 w3 w4"
    done = [e.text for e in events if e.type == "response.output_text.done"]
    assert done == [deltas]
    completed = events[-1].response
    assert completed.status == "completed"
    assert completed.output_text == deltas
    assert completed.usage.output_tokens > 0
    _, sent = last_sent(mock)
    assert sent["stream"] is True


# ---------------------------------------------------------------- function tools


@pytest.mark.parametrize("model", MODELS)
def test_function_call(client, model):
    r = client.responses.create(model=model, input=TOOL_PROMPT, tools=[WEATHER_TOOL])
    assert r.status == "completed"
    calls = calls_of(r)
    assert len(calls) == 1, r.output
    call = calls[0]
    assert call.name == "get_weather"
    assert call.call_id.startswith(CALL_PREFIX[model]), call.call_id
    assert json.loads(call.arguments) == {"city": "Paris"}


@pytest.mark.parametrize("model", MODELS)
def test_function_call_streamed_arguments(client, model):
    with client.responses.stream(model=model, input=TOOL_PROMPT, tools=[WEATHER_TOOL]) as s:
        events = list(s)
        final = s.get_final_response()
    assert_sequence(events)
    deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    assert deltas, [e.type for e in events]
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert len(done) == 1
    assert "".join(deltas) == done[0].arguments
    assert json.loads(done[0].arguments) == {"city": "Paris"}
    calls = calls_of(final)
    assert [c.name for c in calls] == ["get_weather"]
    assert calls[0].arguments == done[0].arguments
    assert calls[0].call_id.startswith(CALL_PREFIX[model]), calls[0].call_id


@pytest.mark.parametrize("model", MODELS)
def test_tool_round_trip(client, mock, model):
    first = client.responses.create(model=model, input=TOOL_PROMPT, tools=[WEATHER_TOOL])
    (call,) = calls_of(first)
    second = client.responses.create(
        model=model,
        tools=[WEATHER_TOOL],
        input=[
            {"role": "user", "content": TOOL_PROMPT},
            *first.output,
            {"type": "function_call_output", "call_id": call.call_id, "output": "22C and sunny"},
        ],
    )
    assert second.status == "completed"
    assert second.output[-1].type == "message"
    assert second.output_text.startswith("Tool result received"), second.output_text
    assert "22C and sunny" in second.output_text
    # The call id went back to the provider with the result.
    _, sent = last_sent(mock)
    assert call.call_id in json.dumps(sent)


# ---------------------------------------------------------------- images, structured output


@pytest.mark.parametrize("model", MODELS)
def test_input_image(client, mock, model):
    url = png_data_url()
    r = client.responses.create(
        model=model,
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "what is in this image"},
                    {"type": "input_image", "image_url": url, "detail": "auto"},
                ],
            }
        ],
    )
    assert r.status == "completed"
    assert r.output_text.endswith("You said: what is in this image"), r.output_text
    _, sent = last_sent(mock)
    assert url.split(",", 1)[1] in json.dumps(sent)


@pytest.mark.parametrize("model", MODELS)
def test_structured_output_json_schema(client, model):
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    r = client.responses.create(
        model=model,
        input="answer in json",
        text={"format": {"type": "json_schema", "name": "x", "schema": schema, "strict": True}},
    )
    assert r.status == "completed"
    assert r.output_text, r.output
    assert r.text.format.type == "json_schema"


# ---------------------------------------------------------------- reasoning (anthropic kind)

REASONING = dict(
    reasoning={"effort": "low", "summary": "auto"},
    include=["reasoning.encrypted_content"],
    store=False,
    tools=[WEATHER_TOOL],
)
THINKING_PROMPT = 'mock:thinking ' + TOOL_PROMPT


def check_reasoning_output(r):
    assert r.status == "completed"
    types = [o.type for o in r.output]
    assert types == ["reasoning", "function_call"], types
    item = r.output[0]
    assert item.encrypted_content and item.encrypted_content.startswith("rw1."), item.encrypted_content
    summary = "".join(s.text for s in item.summary)
    assert summary.strip(), item.summary
    assert json.loads(r.output[1].arguments) == {"city": "Paris"}
    return summary


def test_reasoning_round_trip_anthropic(client, mock):
    first = client.responses.create(model="claude", input=THINKING_PROMPT, **REASONING)
    summary = check_reasoning_output(first)
    call = first.output[1]
    second = client.responses.create(
        model="claude",
        input=[
            {"role": "user", "content": THINKING_PROMPT},
            *first.output,
            {"type": "function_call_output", "call_id": call.call_id, "output": "rainy"},
        ],
        **REASONING,
    )
    assert second.status == "completed"
    assert second.output_text.startswith("Tool result received"), second.output_text
    # The thinking block went back to the provider, signed, before the tool call.
    _, sent = last_sent(mock)
    assistant = [m for m in sent["messages"] if m["role"] == "assistant"]
    assert len(assistant) == 1, sent["messages"]
    blocks = assistant[0]["content"]
    assert [b["type"] for b in blocks] == ["thinking", "tool_use"], blocks
    assert blocks[0]["thinking"] == summary
    assert blocks[0]["signature"]
    assert blocks[1]["id"] == call.call_id


def test_reasoning_streamed_anthropic(client):
    with client.responses.stream(model="claude", input=THINKING_PROMPT, **REASONING) as s:
        events = list(s)
        final = s.get_final_response()
    assert_sequence(events)
    summary = check_reasoning_output(final)
    deltas = "".join(e.delta for e in events if e.type == "response.reasoning_summary_text.delta")
    assert deltas == summary
    args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert json.loads(args) == {"city": "Paris"}


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("model", MODELS)
def test_rate_limit(client, model):
    with pytest.raises(openai.RateLimitError):
        client.responses.create(model=model, input="mock:status=429")
    with pytest.raises(openai.RateLimitError):
        client.responses.create(model=model, input="mock:status=429", stream=True)


@pytest.mark.parametrize("model", MODELS)
def test_unknown_previous_response_id_refused(client, model):
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model=model, input="hi", previous_response_id="resp_x")
    assert e.value.code == "previous_response_not_found", str(e.value)
    assert e.value.param == "previous_response_id", str(e.value)


# ---------------------------------------------------------------- stored responses


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("stream", [False, True])
def test_previous_response_id_continues_the_conversation(client, mock, model, stream):
    first = client.responses.create(model=model, input="remember the word zebra", stream=stream)
    if stream:
        first = [e for e in first if e.type == "response.completed"][0].response
    second = client.responses.create(
        model=model, input="and the word quince", previous_response_id=first.id, stream=stream
    )
    if stream:
        second = [e for e in second if e.type == "response.completed"][0].response
    assert second.status == "completed"
    _, sent = last_sent(mock)
    # The provider got the whole conversation: the first turn, its answer, then this turn.
    turns = [m for m in sent["messages"] if m["role"] != "system"]
    assert [m["role"] for m in turns] == ["user", "assistant", "user"], sent
    assert "zebra" in json.dumps(turns[0]), sent
    assert first.output_text in json.dumps(turns[1]), sent
    assert "quince" in json.dumps(turns[2]), sent


@pytest.mark.parametrize("model", MODELS)
def test_retrieve_input_items_and_delete(client, model):
    made = client.responses.create(
        model=model,
        input=[
            {"role": "user", "content": "first input"},
            {"role": "user", "content": "second input"},
        ],
    )
    got = client.responses.retrieve(made.id)
    assert got.id == made.id
    assert got.output_text == made.output_text
    items = client.responses.input_items.list(made.id)
    assert [i.content[0].text for i in items.data] == ["second input", "first input"]
    asc = client.responses.input_items.list(made.id, order="asc", limit=1)
    assert [i.content[0].text for i in asc.data] == ["first input"]
    assert asc.has_more
    assert client.responses.delete(made.id) is None
    with pytest.raises(openai.NotFoundError) as e:
        client.responses.retrieve(made.id)
    assert f"Response with id '{made.id}' not found." in str(e.value)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(made.id)


@pytest.mark.parametrize("model", MODELS)
def test_missing_input_refused(client, model):
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model=model)


@pytest.mark.parametrize("model", MODELS)
def test_midstream_error(oai, model):
    """The provider fails after three tokens: the gateway ends the stream with
    `response.failed` (no `error` event, so the SDK does not raise while iterating)."""
    events = list(oai.responses.create(model=model, input="mock:midstream_error mock:tokens=9", stream=True))
    types = [ev.type for ev in events]
    assert types[:2] == ["response.created", "response.in_progress"], types
    assert types[-1] == "response.failed", types
    assert "response.completed" not in types, types
    deltas = "".join(ev.delta for ev in events if ev.type == "response.output_text.delta")
    assert deltas == "w1 w2 w3"
    failed = events[-1].response
    assert failed.status == "failed"
    assert failed.error.message
    # `ResponseError.code` is a closed enum in the SDK (strict validation rejects anything else).
    assert failed.error.code in ERROR_CODES, failed.error.code
    seq = [ev.sequence_number for ev in events]
    assert seq == sorted(set(seq)) and seq[0] == 0, seq


@pytest.mark.parametrize("model", MODELS)
def test_midstream_error_stream_helper(oai, model):
    with oai.responses.stream(model=model, input="mock:midstream_error mock:tokens=9") as s:
        events = list(s)
        with pytest.raises(RuntimeError, match="response.completed"):
            s.get_final_response()
    assert events[-1].type == "response.failed"
    assert "".join(ev.delta for ev in events if ev.type == "response.output_text.delta") == "w1 w2 w3"


@pytest.mark.parametrize("model", MODELS)
def test_midstream_reset(oai, model):
    """The provider's connection breaks after three tokens: `response.failed` too."""
    events = list(oai.responses.create(model=model, input="mock:reset mock:tokens=9", stream=True))
    types = [ev.type for ev in events]
    assert types[-1] == "response.failed", types
    assert "".join(ev.delta for ev in events if ev.type == "response.output_text.delta") == "w1 w2 w3"
    failed = events[-1].response
    assert failed.status == "failed"
    assert failed.error.message
    assert failed.error.code in ERROR_CODES, failed.error.code


# ---------------------------------------------------------------- compaction


@pytest.mark.parametrize("model", MODELS)
def test_compact_and_continue(client, mock, model):
    """`responses.compact` answers one sealed compaction item; sent back in `input`, it reaches
    the provider opened, as a user message holding the summary the provider wrote."""
    history = [
        {"role": "user", "content": "Plan the trip to Paris."},
        {"role": "assistant", "content": [{"type": "output_text", "text": "Day one: the Louvre."}]},
    ]
    c = client.responses.compact(model=model, input=history)
    assert c.object == "response.compaction"
    assert [o.type for o in c.output] == ["compaction"], c.output
    sealed = c.output[0].encrypted_content
    assert sealed.startswith("rw1.") and "Louvre" not in sealed
    assert c.usage.input_tokens > 0
    _, summary_request = last_sent(mock)
    summary = "Hello from the ringway mock"  # what the mock answers a prompt without directives
    assert "Summarise the conversation so far" in json.dumps(summary_request)
    r = client.responses.create(
        model=model,
        input=[c.output[0].model_dump(exclude_none=True), {"role": "user", "content": "Go on. mock:tokens=2"}],
    )
    assert r.output_text == "w1 w2"
    _, sent = last_sent(mock)
    assert "The earlier part of this conversation was compacted" in json.dumps(sent)
    assert summary in json.dumps(sent)


def test_compact_without_model_refused(client):
    with pytest.raises(openai.BadRequestError):
        client.post("/responses/compact", body={"input": "hi"}, cast_to=object)
