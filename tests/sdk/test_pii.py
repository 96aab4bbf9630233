"""PII substitution through the official SDKs: the mock echoes what it received, the client
gets its originals back (text and tool arguments, streaming and not, same format and
translated), and the mock's log shows that no original reached it."""

import json

import pytest

from conftest import _mock_call

EMAIL = "jane.doe@corp.example.io"
CARD = "4111-1111-1111-1111"
IP = "10.20.30.40"
PROMPT = f"mail {EMAIL} card {CARD} host {IP}"
TOOL_PROMPT = 'send it mock:args={"to":"' + EMAIL + '"}'
FLAG = {"pii_substitution": True}
TOOL_O = {"type": "function", "function": {"name": "send", "parameters": {
    "type": "object", "properties": {"to": {"type": "string"}}}}}
TOOL_A = {"name": "send", "input_schema": TOOL_O["function"]["parameters"]}


@pytest.fixture()
def clean_log(mock):
    _mock_call(mock, "DELETE", "/mock/requests")
    yield
    seen = json.dumps(_mock_call(mock, "GET", "/mock/requests"))
    for original in (EMAIL, CARD, IP):
        assert original not in seen, f"{original} reached the provider"
    assert "pii_substitution" not in seen


@pytest.mark.parametrize("model", ["gpt", "claude"])
def test_openai_sdk_text_and_tools(oai, clean_log, model):
    r = oai.chat.completions.create(model=model, messages=[{"role": "user", "content": PROMPT}], extra_body=FLAG)
    text = r.choices[0].message.content
    assert EMAIL in text and CARD in text and IP in text
    stream = oai.chat.completions.create(
        model=model, messages=[{"role": "user", "content": PROMPT}], stream=True, extra_body=FLAG)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert EMAIL in text and CARD in text and IP in text
    r = oai.chat.completions.create(
        model=model, messages=[{"role": "user", "content": TOOL_PROMPT}], tools=[TOOL_O], extra_body=FLAG)
    assert json.loads(r.choices[0].message.tool_calls[0].function.arguments) == {"to": EMAIL}
    stream = oai.chat.completions.create(
        model=model, messages=[{"role": "user", "content": TOOL_PROMPT}], tools=[TOOL_O], stream=True,
        extra_body=FLAG)
    args = "".join(
        (tc.function.arguments or "")
        for c in stream if c.choices
        for tc in (c.choices[0].delta.tool_calls or []))
    assert json.loads(args) == {"to": EMAIL}


@pytest.mark.parametrize("model", ["gpt", "claude"])
def test_anthropic_sdk_text_and_tools(ant, clean_log, model):
    r = ant.messages.create(model=model, max_tokens=64, messages=[{"role": "user", "content": PROMPT}],
                            extra_body=FLAG)
    text = r.content[0].text
    assert EMAIL in text and CARD in text and IP in text
    with ant.messages.stream(model=model, max_tokens=64, messages=[{"role": "user", "content": PROMPT}],
                             extra_body=FLAG) as s:
        text = s.get_final_text()
    assert EMAIL in text and CARD in text and IP in text
    r = ant.messages.create(model=model, max_tokens=64, messages=[{"role": "user", "content": TOOL_PROMPT}],
                            tools=[TOOL_A], extra_body=FLAG)
    assert [b.input for b in r.content if b.type == "tool_use"] == [{"to": EMAIL}]
    with ant.messages.stream(model=model, max_tokens=64, messages=[{"role": "user", "content": TOOL_PROMPT}],
                             tools=[TOOL_A], extra_body=FLAG) as s:
        final = s.get_final_message()
    assert [b.input for b in final.content if b.type == "tool_use"] == [{"to": EMAIL}]


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_sdk_thinking_round_trip(ant, mock, clean_log, stream):
    """The mock thinks about the prompt: the SDK's message holds the original in its thinking
    block under the gateway's sealed signature; handed back as the SDK built it, the provider
    gets its own text and signature (the mock refuses any other) and no original."""
    prompt = f"mock:thinking=echo mail {EMAIL}"
    turn1 = {"role": "user", "content": prompt}
    if stream:
        with ant.messages.stream(model="claude", max_tokens=64, messages=[turn1], extra_body=FLAG) as s:
            first = s.get_final_message()
    else:
        first = ant.messages.create(model="claude", max_tokens=64, messages=[turn1], extra_body=FLAG)
    thinking = first.content[0]
    assert thinking.type == "thinking"
    assert EMAIL in thinking.thinking and "help@mock.example.net" in thinking.thinking
    assert thinking.signature.startswith("rw1.")
    assistant = {"role": "assistant", "content": [b.model_dump() for b in first.content]}
    again = ant.messages.create(model="claude", max_tokens=64, extra_body=FLAG,
                                messages=[turn1, assistant, {"role": "user", "content": "again"}])
    assert again.content[-1].type == "text"
    sent = json.loads(_mock_call(mock, "GET", "/mock/requests")[-1]["body"])
    block = sent["messages"][1]["content"][0]
    assert block["type"] == "thinking" and not block["signature"].startswith("rw1.")
    assert "help@mock.example.net" in block["thinking"] and EMAIL not in block["thinking"]
