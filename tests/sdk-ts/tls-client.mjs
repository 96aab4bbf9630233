// Run by tls.test.mjs in a child node process, so that NODE_EXTRA_CA_CERTS (read by Node once,
// at start) is set the way a user sets it: both official SDKs, pointed at ringway's HTTPS
// listener, in both dialects, same-format and translated, streamed and not. Prints one JSON
// line: `{ "<sdk> <model> <stream|whole>": "<text>" }`, or `{ "error": "<class>: <message>" }`.
//
// Usage: node tls-client.mjs BASE_URL GATEWAY_KEY

import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';

const [base, apiKey] = process.argv.slice(2);
const opts = { apiKey, maxRetries: 0, timeout: 20_000 };
const oai = new OpenAI({ ...opts, baseURL: `${base}/v1` });
const ant = new Anthropic({ ...opts, baseURL: base });
const user = (text) => [{ role: 'user', content: text }];

const out = {};
try {
  for (const model of ['gpt', 'claude']) {
    const r = await oai.chat.completions.create({ model, messages: user('hello tls') });
    out[`openai ${model} whole`] = r.choices[0].message.content;
    let text = '';
    for await (const c of await oai.chat.completions.create({ model, messages: user('stream tls'), stream: true })) {
      text += c.choices[0]?.delta?.content ?? '';
    }
    out[`openai ${model} stream`] = text;
    const m = await ant.messages.create({ model, max_tokens: 64, messages: user('hello tls') });
    out[`anthropic ${model} whole`] = m.content[0].text;
    text = '';
    for await (const e of await ant.messages.create({ model, max_tokens: 64, messages: user('stream tls'), stream: true })) {
      if (e.type === 'content_block_delta' && e.delta.type === 'text_delta') text += e.delta.text;
    }
    out[`anthropic ${model} stream`] = text;
  }
  console.log(JSON.stringify(out));
} catch (e) {
  // The SDK's error wraps fetch's, which wraps the TLS error: name the whole chain.
  let text = `${e.constructor.name}: ${e.message}`;
  for (let c = e.cause, depth = 0; c && depth < 5; c = c.cause, depth++) {
    text += ` <- ${c.code ?? ''} ${c.message ?? c}`;
  }
  console.log(JSON.stringify({ error: text }));
}
