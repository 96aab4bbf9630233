"""Failover through the official SDKs: when the route's first target (or first two) fails before
anything reached the client, the SDK sees a normal answer from a later target, streamed or not,
and raises nothing; when every target fails, it raises its ordinary status error; and a client
that opts out with `allow_fallbacks: false` gets the first target's own error.

The route `fo` (conftest.py) is fa/fo-a (openai kind), fb/fo-b (anthropic kind), fc/fo-c
(openai kind), with one same-target retry; faults are set per upstream model in the mock. The
SDKs' own retries are off (max_retries=0), so any recovery is the gateway's.
"""

import anthropic
import openai
import pytest

from conftest import FALLBACK_ROUTE, FALLBACK_TARGETS

MODELS = [model for _, _, model in FALLBACK_TARGETS]
PROVIDER_OF = {model: name for name, _, model in FALLBACK_TARGETS}
# What the mock answers to a plain prompt.
REPLY = "Hello from the ringway mock. You said: {}"


class Case:
    """Faults on the first target(s), the target that then serves, and the provider sends the
    gateway makes to each model (status faults are retried once on the same target; resets,
    and streams failing before content, move on at once)."""

    def __init__(self, name, table, served, sends, stream_sends=None):
        self.name = name
        self.table = table
        self.served = served
        self.sends = sends
        self.stream_sends = stream_sends or sends

    def sends_for(self, stream):
        return self.stream_sends if stream else self.sends


CASES = [
    # A retryable status, twice on fo-a, then a format change to fo-b.
    Case("503", {"fo-a": "status=503"}, "fo-b", {"fo-a": 2, "fo-b": 1}),
    # RST before any response byte: not retried on fo-a (the provider may have acted).
    Case("reset", {"fo-a": "reset"}, "fo-b", {"fo-a": 1, "fo-b": 1}),
    # Stream: an in-stream error after the preamble, before any content. Not streamed, the
    # mock answers this fault with a retryable 503 (OpenAI) instead.
    Case("error_event", {"fo-a": "error_event"}, "fo-b", {"fo-a": 2, "fo-b": 1}, stream_sends={"fo-a": 1, "fo-b": 1}),
    # Two targets down, two ways, before their first content event; the third serves. Not
    # streamed, `reset_before_content` breaks fo-a's body halfway: the gateway holds an answer
    # whole before sending it while another target could serve, so that falls back too.
    Case(
        "before_content_x2",
        {"fo-a": "reset_before_content", "fo-b": "error_event"},
        "fo-c",
        {"fo-a": 1, "fo-b": 2, "fo-c": 1},
        stream_sends={"fo-a": 1, "fo-b": 1, "fo-c": 1},
    ),
    # A 429 whose retry-after-ms is within the route's cap (retried), then an Anthropic 529.
    Case(
        "429_then_529",
        {"fo-a": "status=429,retry_after_ms=1", "fo-b": "status=529"},
        "fo-c",
        {"fo-a": 2, "fo-b": 2, "fo-c": 1},
    ),
]
CASE_IDS = [c.name for c in CASES]


def check_sends(faults, case_table, sends):
    """The mock saw exactly the sends the gateway reports, per model, and nothing after the
    serving target. A `reset` fault may show one more request than the gateway counts: a
    pooled connection that breaks before any byte is resent once on a fresh one."""
    counts = faults.counts()
    for model in MODELS:
        want = sends.get(model, 0)
        got = counts.get(model, {}).get("requests", 0)
        if case_table.get(model) == "reset":
            assert want <= got <= 2 * want, (model, counts)
        else:
            assert got == want, (model, counts)


def check_served(headers, case, stream):
    sends = case.sends_for(stream)
    attempts = int(headers["x-ringway-attempts"])
    assert attempts >= 2
    # A `reset` target may take one more send: a pooled connection that breaks before any byte
    # is resent once on a fresh one, and the header counts every send.
    resets = sum(1 for f in case.table.values() if f == "reset")
    assert sum(sends.values()) <= attempts <= sum(sends.values()) + resets, headers
    assert headers["x-ringway-provider"] == PROVIDER_OF[case.served]
    assert headers["x-ringway-model"] == case.served


# ---------------------------------------------------------------- OpenAI SDK


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_openai_fallback_not_streamed(oai_fo, faults, case):
    faults.set(case.table)
    prompt = f"openai plain {case.name}"
    raw = oai_fo.chat.completions.with_raw_response.create(
        model=FALLBACK_ROUTE, messages=[{"role": "user", "content": prompt}]
    )
    check_served(raw.headers, case, stream=False)
    r = raw.parse()
    assert r.object == "chat.completion"
    assert r.model == case.served
    assert r.choices[0].message.content == REPLY.format(prompt)
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens > 0
    check_sends(faults, case.table, case.sends_for(False))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_openai_fallback_streamed(oai_fo, faults, case):
    faults.set(case.table)
    prompt = f"openai stream {case.name}"
    raw = oai_fo.chat.completions.with_raw_response.create(
        model=FALLBACK_ROUTE,
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        stream_options={"include_usage": True},
    )
    check_served(raw.headers, case, stream=True)
    text, finishes, roles, ids, usage = "", [], [], set(), None
    for chunk in raw.parse():
        ids.add(chunk.id)
        assert chunk.model == case.served
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            if c.delta.role:
                roles.append(c.delta.role)
            text += c.delta.content or ""
            if c.finish_reason:
                finishes.append(c.finish_reason)
    # One stream, from the target that served: nothing of the failed attempts leaked into it.
    assert text == REPLY.format(prompt)
    assert roles == ["assistant"]
    assert finishes == ["stop"]
    assert len(ids) == 1, ids
    assert usage is not None and usage.completion_tokens > 0
    check_sends(faults, case.table, case.sends_for(True))


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_openai_every_target_down_raises_the_last_status(oai_fo, faults, stream):
    # fo-c's 429 carries `retry-after: 1`, beyond the route's 50 ms cap: no same-target retry.
    faults.set({"fo-a": "status=503", "fo-b": "status=529", "fo-c": "status=429"})
    with pytest.raises(openai.RateLimitError) as e:
        oai_fo.chat.completions.create(
            model=FALLBACK_ROUTE, messages=[{"role": "user", "content": "all down"}], stream=stream
        )
    assert e.value.status_code == 429
    assert e.value.code == "rate_limit_exceeded"
    h = e.value.response.headers
    assert h["x-ringway-attempts"] == "5"
    assert (h["x-ringway-provider"], h["x-ringway-model"]) == ("fc", "fo-c")
    assert h["retry-after"] == "1"
    check_sends(faults, {}, {"fo-a": 2, "fo-b": 2, "fo-c": 1})


def test_openai_every_target_down_5xx(oai_fo, faults):
    faults.set({"fo-a": "status=502", "fo-b": "reset", "fo-c": "status=500"})
    with pytest.raises(openai.InternalServerError) as e:
        oai_fo.chat.completions.create(model=FALLBACK_ROUTE, messages=[{"role": "user", "content": "all down"}])
    assert e.value.status_code == 500
    # 5, or 6 when the reset target's pooled connection was resent once on a fresh one.
    assert e.value.response.headers["x-ringway-attempts"] in ("5", "6")
    check_sends(faults, {"fo-b": "reset"}, {"fo-a": 2, "fo-b": 1, "fo-c": 2})


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_openai_allow_fallbacks_false_gets_the_first_targets_error(oai_fo, faults, stream):
    faults.set({"fo-a": "status=503"})
    with pytest.raises(openai.InternalServerError) as e:
        oai_fo.chat.completions.create(
            model=FALLBACK_ROUTE,
            messages=[{"role": "user", "content": "no fallbacks"}],
            stream=stream,
            extra_body={"allow_fallbacks": False},
        )
    assert e.value.status_code == 503
    h = e.value.response.headers
    assert (h["x-ringway-provider"], h["x-ringway-model"]) == ("fa", "fo-a")
    # Same-target retries still apply; other targets are never tried.
    assert h["x-ringway-attempts"] == "2"
    check_sends(faults, {}, {"fo-a": 2})
    # The gateway-only field never reaches a provider.
    assert "allow_fallbacks" not in faults.last_body()


def test_openai_allow_fallbacks_header_false(oai_fo, faults):
    faults.set({"fo-a": "status=503"})
    with pytest.raises(openai.InternalServerError) as e:
        oai_fo.chat.completions.create(
            model=FALLBACK_ROUTE,
            messages=[{"role": "user", "content": "no fallbacks"}],
            extra_headers={"x-ringway-allow-fallbacks": "false"},
        )
    assert e.value.status_code == 503
    check_sends(faults, {}, {"fo-a": 2})


def test_openai_allow_fallbacks_true_still_falls_back(oai_fo, faults):
    faults.set({"fo-a": "status=503"})
    raw = oai_fo.chat.completions.with_raw_response.create(
        model=FALLBACK_ROUTE,
        messages=[{"role": "user", "content": "fallbacks on"}],
        extra_body={"allow_fallbacks": True},
    )
    check_served(raw.headers, CASES[0], stream=False)
    assert raw.parse().choices[0].message.content == REPLY.format("fallbacks on")
    assert "allow_fallbacks" not in faults.last_body()


# ---------------------------------------------------------------- Anthropic SDK
# For the Anthropic client, fo-a and fo-c are the other format and fo-b its own.


def _ant_msgs(prompt):
    return dict(model=FALLBACK_ROUTE, max_tokens=100, messages=[{"role": "user", "content": prompt}])


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_anthropic_fallback_not_streamed(ant_fo, faults, case):
    faults.set(case.table)
    prompt = f"anthropic plain {case.name}"
    raw = ant_fo.messages.with_raw_response.create(**_ant_msgs(prompt))
    check_served(raw.headers, case, stream=False)
    m = raw.parse()
    assert m.type == "message"
    assert m.model == case.served
    assert [b.type for b in m.content] == ["text"]
    assert m.content[0].text == REPLY.format(prompt)
    assert m.stop_reason == "end_turn"
    assert m.usage.output_tokens > 0
    check_sends(faults, case.table, case.sends_for(False))


def _check_events(events, prompt, case):
    types = [e.type for e in events]
    # One well-formed stream: nothing of a failed attempt's preamble in it.
    assert types[0] == "message_start", types
    assert types.count("message_start") == 1, types
    assert types.count("content_block_start") == 1, types
    assert types[-1] == "message_stop", types
    assert types.count("message_stop") == 1, types
    assert "error" not in types
    assert events[0].message.model == case.served
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert text == REPLY.format(prompt)
    (delta,) = [e for e in events if e.type == "message_delta"]
    assert delta.delta.stop_reason == "end_turn"
    assert delta.usage.output_tokens > 0


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_anthropic_fallback_create_stream(ant_fo, faults, case):
    faults.set(case.table)
    prompt = f"anthropic create stream {case.name}"
    stream = ant_fo.messages.create(**_ant_msgs(prompt), stream=True)
    check_served(stream.response.headers, case, stream=True)
    _check_events(list(stream), prompt, case)
    check_sends(faults, case.table, case.sends_for(True))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_anthropic_fallback_stream_helper(ant_fo, faults, case):
    faults.set(case.table)
    prompt = f"anthropic helper {case.name}"
    with ant_fo.messages.stream(**_ant_msgs(prompt)) as s:
        check_served(s.response.headers, case, stream=True)
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == REPLY.format(prompt)
    assert final.content[0].text == text
    assert final.model == case.served
    assert final.stop_reason == "end_turn"
    check_sends(faults, case.table, case.sends_for(True))


@pytest.mark.parametrize("mode", ["plain", "create_stream", "helper"])
def test_anthropic_every_target_down_raises_the_last_status(ant_fo, faults, mode):
    faults.set({"fo-a": "status=503", "fo-b": "status=529", "fo-c": "status=429"})
    with pytest.raises(anthropic.RateLimitError) as e:
        if mode == "helper":
            with ant_fo.messages.stream(**_ant_msgs("all down")) as s:
                s.until_done()
        else:
            ant_fo.messages.create(**_ant_msgs("all down"), stream=mode == "create_stream")
    assert e.value.status_code == 429
    assert e.value.type == "rate_limit_error"
    h = e.value.response.headers
    assert h["x-ringway-attempts"] == "5"
    assert (h["x-ringway-provider"], h["x-ringway-model"]) == ("fc", "fo-c")
    check_sends(faults, {}, {"fo-a": 2, "fo-b": 2, "fo-c": 1})


def test_anthropic_every_target_down_overloaded(ant_fo, faults):
    # The last target is OpenAI-kind: its 503 ("overloaded") reaches an Anthropic client as 529.
    faults.set({"fo-a": "reset", "fo-b": "status=500", "fo-c": "status=503"})
    with pytest.raises(anthropic.OverloadedError) as e:
        ant_fo.messages.create(**_ant_msgs("all down"))
    assert e.value.status_code == 529
    assert e.value.type == "overloaded_error"
    # 5, or 6 when the reset target's pooled connection was resent once on a fresh one.
    assert e.value.response.headers["x-ringway-attempts"] in ("5", "6")
    check_sends(faults, {"fo-a": "reset"}, {"fo-a": 1, "fo-b": 2, "fo-c": 2})


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_anthropic_allow_fallbacks_false_gets_the_first_targets_error(ant_fo, faults, stream):
    faults.set({"fo-a": "status=429,retry_after_ms=1"})
    with pytest.raises(anthropic.RateLimitError) as e:
        ant_fo.messages.create(**_ant_msgs("no fallbacks"), stream=stream, extra_body={"allow_fallbacks": False})
    assert e.value.status_code == 429
    assert e.value.type == "rate_limit_error"
    h = e.value.response.headers
    assert (h["x-ringway-provider"], h["x-ringway-model"]) == ("fa", "fo-a")
    assert h["x-ringway-attempts"] == "2"
    check_sends(faults, {}, {"fo-a": 2})
    assert "allow_fallbacks" not in faults.last_body()
