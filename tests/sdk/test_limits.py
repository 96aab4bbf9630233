"""Per-key limits as the official SDKs see them: a 429 raises each SDK's RateLimitError with
the provider-shaped body, and the rate-limit headers are readable from raw responses."""

import pytest

from conftest import key_table, main_routes, serve_gateway

RPM_KEY = "sdk-rpm-key"
RPM = 2


@pytest.fixture(scope="module")
def limited_gateway(mock):
    """A gateway whose only key allows RPM requests a minute (its own process: the budget is
    spent by these tests alone)."""
    keys = key_table("sdk-rpm-openai", RPM_KEY + "-openai", rpm=RPM) + "\n" + key_table(
        "sdk-rpm-anthropic", RPM_KEY, rpm=RPM
    )
    g = serve_gateway(main_routes(mock.addr), keys=keys)
    yield g
    g.stop()


def test_openai_sdk_raises_rate_limit_error_with_headers(limited_gateway):
    import openai

    client = openai.OpenAI(
        api_key=RPM_KEY + "-openai", base_url=limited_gateway.url + "/v1", max_retries=0, timeout=20
    )
    left = []
    for _ in range(RPM):
        raw = client.chat.completions.with_raw_response.create(
            model="gpt", messages=[{"role": "user", "content": "hi"}]
        )
        assert raw.headers["x-ratelimit-limit-requests"] == str(RPM)
        left.append(int(raw.headers["x-ratelimit-remaining-requests"]))
        assert raw.parse().choices[0].message.content
    assert left == [RPM - 1, 0]
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "hi"}])
    err = e.value
    assert err.status_code == 429
    assert err.code == "rate_limit_exceeded"
    assert err.type == "requests"
    assert "Rate limit reached" in err.message
    h = err.response.headers
    assert h["x-ratelimit-remaining-requests"] == "0"
    assert 1 <= int(h["retry-after"]) <= 30
    assert h["x-ratelimit-reset-requests"].endswith("s")


def test_anthropic_sdk_raises_rate_limit_error_with_headers(limited_gateway):
    import anthropic

    client = anthropic.Anthropic(api_key=RPM_KEY, base_url=limited_gateway.url, max_retries=0, timeout=20)
    for i in range(RPM):
        raw = client.messages.with_raw_response.create(
            model="claude", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
        )
        assert raw.headers["anthropic-ratelimit-requests-limit"] == str(RPM)
        assert raw.headers["anthropic-ratelimit-requests-remaining"] == str(RPM - 1 - i)
        assert raw.headers["anthropic-ratelimit-requests-reset"].endswith("Z")
        assert raw.parse().content[0].text
    with pytest.raises(anthropic.RateLimitError) as e:
        client.messages.create(model="claude", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    err = e.value
    assert err.status_code == 429
    assert err.body["type"] == "error"
    assert err.body["error"]["type"] == "rate_limit_error"
    assert err.response.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert 1 <= int(err.response.headers["retry-after"]) <= 30
