"""The official SDKs over HTTPS to ringway's TLS listener, trusting the test CA through the SDKs'
own http clients (the documented way: `http_client=DefaultHttpxClient(verify=ssl context)`), in
both dialects, same-format and translated, streamed and not; and refusing to connect without
the CA."""

import ssl

import anthropic
import openai
import pytest

from conftest import GATEWAY_KEY

MODELS = ["gpt", "claude"]


def _verify(ca):
    return ssl.create_default_context(cafile=ca)


@pytest.fixture()
def oai_tls(tls_gateway):
    g, ca = tls_gateway
    return openai.OpenAI(
        api_key=GATEWAY_KEY,
        base_url=g.url + "/v1",
        max_retries=0,
        timeout=20,
        http_client=openai.DefaultHttpxClient(verify=_verify(ca)),
    )


@pytest.fixture()
def ant_tls(tls_gateway):
    g, ca = tls_gateway
    return anthropic.Anthropic(
        api_key=GATEWAY_KEY,
        base_url=g.url,
        max_retries=0,
        timeout=20,
        http_client=anthropic.DefaultHttpxClient(verify=_verify(ca)),
    )


@pytest.mark.parametrize("model", MODELS)
def test_openai_over_tls(oai_tls, model):
    r = oai_tls.chat.completions.create(model=model, messages=[{"role": "user", "content": "hello tls"}])
    assert r.choices[0].message.content.endswith("You said: hello tls")
    text = ""
    stream = oai_tls.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "stream tls"}], stream=True
    )
    for chunk in stream:
        for c in chunk.choices:
            text += c.delta.content or ""
    assert text.endswith("You said: stream tls")


@pytest.mark.parametrize("model", MODELS)
def test_anthropic_over_tls(ant_tls, model):
    r = ant_tls.messages.create(model=model, max_tokens=64, messages=[{"role": "user", "content": "hello tls"}])
    assert r.content[0].text.endswith("You said: hello tls")
    with ant_tls.messages.stream(
        model=model, max_tokens=64, messages=[{"role": "user", "content": "stream tls"}]
    ) as stream:
        text = "".join(stream.text_stream)
    assert text.endswith("You said: stream tls")


def test_models_list_over_tls(oai_tls):
    assert {m.id for m in oai_tls.models.list()} >= {"gpt", "claude"}


def test_without_the_ca_the_sdks_refuse_the_certificate(tls_gateway):
    g, _ = tls_gateway
    oai = openai.OpenAI(api_key=GATEWAY_KEY, base_url=g.url + "/v1", max_retries=0, timeout=20)
    with pytest.raises(openai.APIConnectionError):
        oai.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "x"}])
    ant = anthropic.Anthropic(api_key=GATEWAY_KEY, base_url=g.url, max_retries=0, timeout=20)
    with pytest.raises(anthropic.APIConnectionError):
        ant.messages.create(model="claude", max_tokens=8, messages=[{"role": "user", "content": "x"}])
