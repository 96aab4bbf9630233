// Failover through the official OpenAI and Anthropic TypeScript SDKs (the same matrix as
// tests/sdk/test_fallback.py): when the route's first target (or first two) fails before
// anything reached the client, the SDK sees a normal answer from a later target, streamed or
// not, and throws nothing; when every target fails, it throws its ordinary status error; and a
// client that opts out with `allow_fallbacks: false` gets the first target's own error.
//
// The route `fo` (harness.mjs) is fa/fo-a (openai kind), fb/fo-b (anthropic kind), fc/fo-c
// (openai kind), with one same-target retry; faults are set per upstream model in the mock.
// The SDKs' own retries are off (maxRetries: 0), so any recovery is the gateway's.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';

import {
  FALLBACK_ROUTE,
  FALLBACK_TARGETS,
  GATEWAY_KEY,
  mockCounts,
  mockSeen,
  setFaults,
  startFallbackGateway,
} from './harness.mjs';

let env;
let oai;
let ant;
before(async () => {
  env = await startFallbackGateway();
  const common = { apiKey: GATEWAY_KEY, maxRetries: 0, timeout: 20_000 };
  oai = new OpenAI({ ...common, baseURL: `${env.gateway.url}/v1` });
  ant = new Anthropic({ ...common, baseURL: env.gateway.url });
});
after(async () => {
  // Leave no fault behind, then stop.
  if (env) await setFaults(env.mock, {}).catch(() => {});
  await env?.stop();
});

const MODELS = FALLBACK_TARGETS.map((t) => t.model);
const PROVIDER_OF = Object.fromEntries(FALLBACK_TARGETS.map((t) => [t.model, t.provider]));
// What the mock answers to a plain prompt.
const reply = (prompt) => `Hello from the ringway mock. You said: ${prompt}`;
const user = (text) => [{ role: 'user', content: text }];

// Faults on the first target(s), the target that then serves, and the provider sends the
// gateway makes to each model (status faults are retried once on the same target; resets, and
// streams failing before content, move on at once). `streamSends` when streaming differs.
const CASES = [
  // A retryable status, twice on fo-a, then a format change to fo-b.
  { name: '503', table: { 'fo-a': 'status=503' }, served: 'fo-b', sends: { 'fo-a': 2, 'fo-b': 1 } },
  // RST before any response byte: not retried on fo-a (the provider may have acted).
  { name: 'reset', table: { 'fo-a': 'reset' }, served: 'fo-b', sends: { 'fo-a': 1, 'fo-b': 1 } },
  // Stream: an in-stream error after the preamble, before any content. Not streamed, the mock
  // answers this fault with a retryable 503 (OpenAI) instead.
  {
    name: 'error_event',
    table: { 'fo-a': 'error_event' },
    served: 'fo-b',
    sends: { 'fo-a': 2, 'fo-b': 1 },
    streamSends: { 'fo-a': 1, 'fo-b': 1 },
  },
  // Two targets down, two ways, before their first content event; the third serves. Not
  // streamed, `reset_before_content` breaks fo-a's body halfway: the gateway holds an answer
  // whole before sending it while another target could serve, so that falls back too.
  {
    name: 'before_content_x2',
    table: { 'fo-a': 'reset_before_content', 'fo-b': 'error_event' },
    served: 'fo-c',
    sends: { 'fo-a': 1, 'fo-b': 2, 'fo-c': 1 },
    streamSends: { 'fo-a': 1, 'fo-b': 1, 'fo-c': 1 },
  },
  // A 429 whose retry-after-ms is within the route's cap (retried), then an Anthropic 529.
  {
    name: '429_then_529',
    table: { 'fo-a': 'status=429,retry_after_ms=1', 'fo-b': 'status=529' },
    served: 'fo-c',
    sends: { 'fo-a': 2, 'fo-b': 2, 'fo-c': 1 },
  },
];
const sendsFor = (c, stream) => (stream && c.streamSends) || c.sends;

/** The mock saw exactly the sends the gateway reports, per model, and nothing after the
 * serving target. A `reset` fault may show one more request than the gateway counts: a pooled
 * connection that breaks before any byte is resent once on a fresh one. */
async function checkSends(table, sends) {
  const counts = await mockCounts(env.mock);
  for (const model of MODELS) {
    const want = sends[model] ?? 0;
    const got = counts[model]?.requests ?? 0;
    if (table[model] === 'reset') {
      assert.ok(want <= got && got <= 2 * want, `${model}: ${JSON.stringify(counts)}`);
    } else {
      assert.equal(got, want, `${model}: ${JSON.stringify(counts)}`);
    }
  }
}

function checkServed(headers, c, stream) {
  const sends = sendsFor(c, stream);
  const attempts = Number(headers.get('x-ringway-attempts'));
  assert.ok(attempts >= 2, `x-ringway-attempts ${attempts}`);
  // A `reset` target may take one more send: a pooled connection that breaks before any byte
  // is resent once on a fresh one, and the header counts every send.
  const want = Object.values(sends).reduce((a, b) => a + b, 0);
  const resets = Object.values(c.table).filter((f) => f === 'reset').length;
  assert.ok(attempts >= want && attempts <= want + resets, `attempts ${attempts}, want ${want}`);
  assert.equal(headers.get('x-ringway-provider'), PROVIDER_OF[c.served]);
  assert.equal(headers.get('x-ringway-model'), c.served);
}

/** Awaits `call()`, which must throw `Class`; returns the error. */
async function thrown(Class, call) {
  let err;
  try {
    await call();
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof Class, `expected ${Class.name}, got ${err?.constructor?.name}: ${err}`);
  return err;
}

async function lastBody() {
  const all = await mockSeen(env.mock);
  return all[all.length - 1].body;
}

// The last target's status reaches the client when every target fails. fo-c's 429 carries
// `retry-after: 1`, beyond the route's 50 ms cap: no same-target retry there.
const ALL_DOWN = { 'fo-a': 'status=503', 'fo-b': 'status=529', 'fo-c': 'status=429' };
const ALL_DOWN_SENDS = { 'fo-a': 2, 'fo-b': 2, 'fo-c': 1 };

describe('OpenAI SDK, failover', () => {
  for (const c of CASES) {
    test(`not streamed: ${c.name}`, async () => {
      await setFaults(env.mock, c.table);
      const prompt = `openai plain ${c.name}`;
      const { data: r, response } = await oai.chat.completions
        .create({ model: FALLBACK_ROUTE, messages: user(prompt) })
        .withResponse();
      checkServed(response.headers, c, false);
      assert.equal(r.object, 'chat.completion');
      assert.equal(r.model, c.served);
      assert.equal(r.choices[0].message.content, reply(prompt));
      assert.equal(r.choices[0].finish_reason, 'stop');
      assert.ok(r.usage.completion_tokens > 0);
      await checkSends(c.table, sendsFor(c, false));
    });
  }

  for (const c of CASES) {
    test(`streamed: ${c.name}`, async () => {
      await setFaults(env.mock, c.table);
      const prompt = `openai stream ${c.name}`;
      const { data: stream, response } = await oai.chat.completions
        .create({
          model: FALLBACK_ROUTE,
          messages: user(prompt),
          stream: true,
          stream_options: { include_usage: true },
        })
        .withResponse();
      checkServed(response.headers, c, true);
      let text = '';
      let usage = null;
      const roles = [];
      const finishes = [];
      const ids = new Set();
      for await (const chunk of stream) {
        ids.add(chunk.id);
        assert.equal(chunk.model, c.served);
        if (chunk.usage) usage = chunk.usage;
        for (const ch of chunk.choices) {
          if (ch.delta.role) roles.push(ch.delta.role);
          text += ch.delta.content ?? '';
          if (ch.finish_reason) finishes.push(ch.finish_reason);
        }
      }
      // One stream, from the target that served: nothing of the failed attempts leaked into it.
      assert.equal(text, reply(prompt));
      assert.deepEqual(roles, ['assistant']);
      assert.deepEqual(finishes, ['stop']);
      assert.equal(ids.size, 1, [...ids].join(' '));
      assert.ok(usage && usage.completion_tokens > 0);
      await checkSends(c.table, sendsFor(c, true));
    });
  }

  for (const stream of [false, true]) {
    test(`every target down, ${stream ? 'streamed' : 'not streamed'}: RateLimitError from the last`, async () => {
      await setFaults(env.mock, ALL_DOWN);
      const e = await thrown(OpenAI.RateLimitError, () =>
        oai.chat.completions.create({ model: FALLBACK_ROUTE, messages: user('all down'), stream }),
      );
      assert.equal(e.status, 429);
      assert.equal(e.code, 'rate_limit_exceeded');
      assert.equal(e.headers.get('x-ringway-attempts'), '5');
      assert.equal(e.headers.get('x-ringway-provider'), 'fc');
      assert.equal(e.headers.get('x-ringway-model'), 'fo-c');
      assert.equal(e.headers.get('retry-after'), '1');
      await checkSends({}, ALL_DOWN_SENDS);
    });
  }

  test('every target down, a 5xx last: InternalServerError', async () => {
    const table = { 'fo-a': 'status=502', 'fo-b': 'reset', 'fo-c': 'status=500' };
    await setFaults(env.mock, table);
    const e = await thrown(OpenAI.InternalServerError, () =>
      oai.chat.completions.create({ model: FALLBACK_ROUTE, messages: user('all down') }),
    );
    assert.equal(e.status, 500);
    // 5, or 6 when the reset target's pooled connection was resent once on a fresh one.
    assert.ok(['5', '6'].includes(e.headers.get('x-ringway-attempts')));
    await checkSends(table, { 'fo-a': 2, 'fo-b': 1, 'fo-c': 2 });
  });

  for (const stream of [false, true]) {
    test(`allow_fallbacks: false, ${stream ? 'streamed' : 'not streamed'}: the first target's error`, async () => {
      await setFaults(env.mock, { 'fo-a': 'status=503' });
      const e = await thrown(OpenAI.InternalServerError, () =>
        oai.chat.completions.create({
          model: FALLBACK_ROUTE,
          messages: user('no fallbacks'),
          stream,
          allow_fallbacks: false,
        }),
      );
      assert.equal(e.status, 503);
      assert.equal(e.headers.get('x-ringway-provider'), 'fa');
      assert.equal(e.headers.get('x-ringway-model'), 'fo-a');
      // Same-target retries still apply; other targets are never tried.
      assert.equal(e.headers.get('x-ringway-attempts'), '2');
      await checkSends({}, { 'fo-a': 2 });
      // The gateway-only field never reaches a provider.
      assert.ok(!(await lastBody()).includes('allow_fallbacks'));
    });
  }

  test('x-ringway-allow-fallbacks: false header: the first target\'s error', async () => {
    await setFaults(env.mock, { 'fo-a': 'status=503' });
    const e = await thrown(OpenAI.InternalServerError, () =>
      oai.chat.completions.create(
        { model: FALLBACK_ROUTE, messages: user('no fallbacks') },
        { headers: { 'x-ringway-allow-fallbacks': 'false' } },
      ),
    );
    assert.equal(e.status, 503);
    await checkSends({}, { 'fo-a': 2 });
  });

  test('allow_fallbacks: true still falls back', async () => {
    await setFaults(env.mock, CASES[0].table);
    const { data: r, response } = await oai.chat.completions
      .create({ model: FALLBACK_ROUTE, messages: user('fallbacks on'), allow_fallbacks: true })
      .withResponse();
    checkServed(response.headers, CASES[0], false);
    assert.equal(r.choices[0].message.content, reply('fallbacks on'));
    assert.ok(!(await lastBody()).includes('allow_fallbacks'));
  });
});

// For the Anthropic client, fo-a and fo-c are the other format and fo-b its own.
describe('Anthropic SDK, failover', () => {
  const params = (prompt) => ({ model: FALLBACK_ROUTE, max_tokens: 100, messages: user(prompt) });

  for (const c of CASES) {
    test(`not streamed: ${c.name}`, async () => {
      await setFaults(env.mock, c.table);
      const prompt = `anthropic plain ${c.name}`;
      const { data: m, response } = await ant.messages.create(params(prompt)).withResponse();
      checkServed(response.headers, c, false);
      assert.equal(m.type, 'message');
      assert.equal(m.model, c.served);
      assert.deepEqual(
        m.content.map((b) => b.type),
        ['text'],
      );
      assert.equal(m.content[0].text, reply(prompt));
      assert.equal(m.stop_reason, 'end_turn');
      assert.ok(m.usage.output_tokens > 0);
      await checkSends(c.table, sendsFor(c, false));
    });
  }

  for (const c of CASES) {
    test(`create({stream: true}): ${c.name}`, async () => {
      await setFaults(env.mock, c.table);
      const prompt = `anthropic create stream ${c.name}`;
      const { data: stream, response } = await ant.messages
        .create({ ...params(prompt), stream: true })
        .withResponse();
      checkServed(response.headers, c, true);
      const events = [];
      for await (const ev of stream) events.push(ev);
      const types = events.map((e) => e.type);
      const count = (t) => types.filter((x) => x === t).length;
      // One well-formed stream: nothing of a failed attempt's preamble in it.
      assert.equal(types[0], 'message_start', types.join(' '));
      assert.equal(types[types.length - 1], 'message_stop', types.join(' '));
      assert.equal(count('message_start'), 1, types.join(' '));
      assert.equal(count('content_block_start'), 1, types.join(' '));
      assert.equal(count('message_stop'), 1, types.join(' '));
      assert.equal(events[0].message.model, c.served);
      const text = events
        .filter((e) => e.type === 'content_block_delta')
        .map((e) => e.delta.text)
        .join('');
      assert.equal(text, reply(prompt));
      const deltas = events.filter((e) => e.type === 'message_delta');
      assert.equal(deltas.length, 1);
      assert.equal(deltas[0].delta.stop_reason, 'end_turn');
      assert.ok(deltas[0].usage.output_tokens > 0);
      await checkSends(c.table, sendsFor(c, true));
    });
  }

  for (const c of CASES) {
    test(`messages.stream(): ${c.name}`, async () => {
      await setFaults(env.mock, c.table);
      const prompt = `anthropic helper ${c.name}`;
      const s = ant.messages.stream(params(prompt));
      let text = '';
      s.on('text', (t) => {
        text += t;
      });
      const { response } = await s.withResponse();
      checkServed(response.headers, c, true);
      const final = await s.finalMessage();
      assert.equal(text, reply(prompt));
      assert.equal(final.content[0].text, text);
      assert.equal(final.model, c.served);
      assert.equal(final.stop_reason, 'end_turn');
      await checkSends(c.table, sendsFor(c, true));
    });
  }

  for (const mode of ['plain', 'create_stream', 'helper']) {
    test(`every target down (${mode}): RateLimitError from the last`, async () => {
      await setFaults(env.mock, ALL_DOWN);
      const e = await thrown(Anthropic.RateLimitError, () =>
        mode === 'helper'
          ? ant.messages.stream(params('all down')).finalMessage()
          : ant.messages.create({ ...params('all down'), stream: mode === 'create_stream' }),
      );
      assert.equal(e.status, 429);
      assert.equal(e.type, 'rate_limit_error');
      assert.equal(e.headers.get('x-ringway-attempts'), '5');
      assert.equal(e.headers.get('x-ringway-provider'), 'fc');
      assert.equal(e.headers.get('x-ringway-model'), 'fo-c');
      await checkSends({}, ALL_DOWN_SENDS);
    });
  }

  test('every target down, OpenAI 503 last: OverloadedError (529)', async () => {
    // The last target is OpenAI-kind: its 503 ("overloaded") reaches an Anthropic client as 529.
    const table = { 'fo-a': 'reset', 'fo-b': 'status=500', 'fo-c': 'status=503' };
    await setFaults(env.mock, table);
    const e = await thrown(Anthropic.OverloadedError, () => ant.messages.create(params('all down')));
    assert.equal(e.status, 529);
    assert.equal(e.type, 'overloaded_error');
    // 5, or 6 when the reset target's pooled connection was resent once on a fresh one.
    assert.ok(['5', '6'].includes(e.headers.get('x-ringway-attempts')));
    await checkSends(table, { 'fo-a': 1, 'fo-b': 2, 'fo-c': 2 });
  });

  for (const stream of [false, true]) {
    test(`allow_fallbacks: false, ${stream ? 'streamed' : 'not streamed'}: the first target's error`, async () => {
      await setFaults(env.mock, { 'fo-a': 'status=429,retry_after_ms=1' });
      const e = await thrown(Anthropic.RateLimitError, () =>
        ant.messages.create({ ...params('no fallbacks'), stream, allow_fallbacks: false }),
      );
      assert.equal(e.status, 429);
      assert.equal(e.type, 'rate_limit_error');
      assert.equal(e.headers.get('x-ringway-provider'), 'fa');
      assert.equal(e.headers.get('x-ringway-model'), 'fo-a');
      assert.equal(e.headers.get('x-ringway-attempts'), '2');
      await checkSends({}, { 'fo-a': 2 });
      assert.ok(!(await lastBody()).includes('allow_fallbacks'));
    });
  }
});
