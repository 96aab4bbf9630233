// The official Anthropic TypeScript SDK (`@anthropic-ai/sdk`, pinned in package.json) through
// the real ringway binary: to `claude` (an Anthropic-kind provider: same-format relay) and to
// `gpt` (an OpenAI-kind provider: translation), each with a base URL without `/v1` (the SDK's
// documented form) and with one (the SDK then posts to `/v1/v1/messages`, which ringway accepts).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';

import { GATEWAY_KEY, TIME_A, WEATHER_A, lastSent, mockSeen, recordingFetch, startGateway } from './harness.mjs';

let env;
before(async () => {
  env = await startGateway();
});
after(async () => {
  await env?.stop();
});

const TARGETS = [
  { model: 'claude', how: 'same-format', upstreamModel: 'mock-claude', upstreamPath: '/v1/messages', idPrefix: 'toolu_' },
  { model: 'gpt', how: 'cross-format', upstreamModel: 'mock-gpt', upstreamPath: '/v1/chat/completions', idPrefix: 'call_' },
];
// The base URL users configure, after the gateway's origin, and the paths the SDK then uses.
const BASES = [
  { suffix: '', prefix: '/v1' },
  { suffix: '/v1', prefix: '/v1/v1' },
];

const user = (text) => [{ role: 'user', content: text }];

function client(suffix, opts = {}) {
  return new Anthropic({
    apiKey: GATEWAY_KEY,
    baseURL: env.gateway.url + suffix,
    maxRetries: 0,
    timeout: 20_000,
    ...opts,
  });
}

for (const base of BASES) {
  for (const t of TARGETS) {
    describe(`Anthropic SDK -> ${t.model} (${t.how}), baseURL origin+'${base.suffix}'`, () => {
      let ant;
      let rec;
      before(() => {
        rec = recordingFetch();
        ant = client(base.suffix, { fetch: rec.fetch });
      });

      test('text, not streamed', async () => {
        rec.paths.length = 0;
        const { data: m, response } = await ant.messages
          .create({ model: t.model, max_tokens: 100, messages: user('hello claude') })
          .withResponse();
        assert.deepEqual(rec.paths, [`${base.prefix}/messages`]);
        assert.equal(m.type, 'message');
        assert.equal(m.role, 'assistant');
        assert.equal(m.content.length, 1);
        assert.equal(m.content[0].type, 'text');
        assert.ok(m.content[0].text.endsWith('You said: hello claude'), m.content[0].text);
        assert.equal(m.stop_reason, 'end_turn');
        assert.ok(m.usage.input_tokens > 0 && m.usage.output_tokens > 0);
        assert.equal(response.headers.get('x-ringway-model'), t.upstreamModel);
        const sent = await lastSent(env.mock);
        assert.equal(sent.path, t.upstreamPath);
        assert.equal(sent.body.model, t.upstreamModel);
      });

      test('text, streamed: raw events', async () => {
        rec.paths.length = 0;
        const stream = await ant.messages.create({
          model: t.model,
          max_tokens: 100,
          messages: user('mock:tokens=4'),
          stream: true,
        });
        const types = [];
        let text = '';
        let stop = null;
        for await (const ev of stream) {
          types.push(ev.type);
          if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') text += ev.delta.text;
          if (ev.type === 'message_delta') stop = ev.delta.stop_reason;
        }
        assert.deepEqual(rec.paths, [`${base.prefix}/messages`]);
        assert.equal(text, 'w1 w2 w3 w4');
        assert.equal(stop, 'end_turn');
        assert.equal(types[0], 'message_start');
        assert.equal(types[types.length - 1], 'message_stop');
        assert.ok(types.includes('content_block_start') && types.includes('content_block_stop'));
      });

      test('stream helper: text events and the final message', async () => {
        const s = ant.messages.stream({ model: t.model, max_tokens: 100, messages: user('stream me please') });
        let text = '';
        s.on('text', (delta) => {
          text += delta;
        });
        const final = await s.finalMessage();
        assert.ok(text.endsWith('You said: stream me please'), text);
        assert.equal(final.content[0].text, text);
        assert.equal(final.stop_reason, 'end_turn');
        assert.ok(final.usage.output_tokens > 0);
      });

      test('tool use, not streamed: name and input', async () => {
        const m = await ant.messages.create({
          model: t.model,
          max_tokens: 200,
          messages: user('weather?'),
          tools: [WEATHER_A, TIME_A],
        });
        assert.equal(m.stop_reason, 'tool_use');
        const uses = m.content.filter((b) => b.type === 'tool_use');
        assert.equal(uses.length, 1);
        assert.equal(uses[0].name, 'get_weather');
        assert.deepEqual(uses[0].input, { city: 'mock', days: 1 });
        assert.ok(uses[0].id.startsWith(t.idPrefix), uses[0].id);
      });

      test('parallel tool use, streamed and parsed by the SDK, same as not streamed', async () => {
        const req = { model: t.model, max_tokens: 200, messages: user('mock:parallel weather'), tools: [WEATHER_A, TIME_A] };
        const s = ant.messages.stream(req);
        const jsonDeltas = [];
        s.on('inputJson', (partial) => jsonDeltas.push(partial));
        const final = await s.finalMessage();
        assert.equal(final.stop_reason, 'tool_use');
        const uses = final.content.filter((b) => b.type === 'tool_use');
        assert.deepEqual(
          uses.map((u) => [u.name, u.input]),
          [
            ['get_weather', { city: 'mock', days: 1 }],
            ['get_time', {}],
          ],
        );
        assert.ok(jsonDeltas.length > 0, 'input_json_delta events reach the SDK');
        assert.equal(new Set(uses.map((u) => u.id)).size, 2);
        // Not streamed: the same calls (ids differ: the mock derives them from the request body).
        const m = await ant.messages.create(req);
        assert.deepEqual(
          m.content.filter((b) => b.type === 'tool_use').map((b) => [b.name, b.input]),
          uses.map((u) => [u.name, u.input]),
        );
      });

      for (const stream of [false, true]) {
        test(`tool result round trip${stream ? ', streamed' : ''}`, async () => {
          const id = `${t.idPrefix}rt1`;
          const req = {
            model: t.model,
            max_tokens: 200,
            tools: [WEATHER_A],
            messages: [
              { role: 'user', content: 'weather?' },
              { role: 'assistant', content: [{ type: 'tool_use', id, name: 'get_weather', input: { city: 'x', days: 1 } }] },
              { role: 'user', content: [{ type: 'tool_result', tool_use_id: id, content: 'sunny and warm' }] },
            ],
          };
          const m = stream ? await ant.messages.stream(req).finalMessage() : await ant.messages.create(req);
          assert.equal(m.stop_reason, 'end_turn');
          assert.equal(m.content[0].type, 'text');
          assert.ok(m.content[0].text.startsWith('Tool result received'), m.content[0].text);
          assert.ok(m.content[0].text.includes('sunny and warm'), m.content[0].text);
          const sent = await lastSent(env.mock);
          assert.ok(JSON.stringify(sent.body.messages).includes('sunny and warm'));
        });
      }

      test('countTokens', async () => {
        rec.paths.length = 0;
        const seenBefore = (await mockSeen(env.mock)).length;
        const r = await ant.messages.countTokens({ model: t.model, messages: user('hello world') });
        assert.deepEqual(rec.paths, [`${base.prefix}/messages/count_tokens`]);
        assert.ok(Number.isInteger(r.input_tokens) && r.input_tokens > 0, JSON.stringify(r));
        const seen = await mockSeen(env.mock);
        if (t.model === 'gpt') {
          // An OpenAI-kind provider has no count_tokens: the gateway's own o200k_base estimate
          // (reply priming 3 + message 3 + "user" 1 + "hello world" 2), the provider not asked.
          assert.equal(r.input_tokens, 9);
          assert.equal(seen.length, seenBefore);
        } else {
          assert.equal(seen.length, seenBefore + 1);
          assert.equal(seen[seen.length - 1].path, '/v1/messages/count_tokens');
        }
        const tooled = await ant.messages.countTokens({ model: t.model, messages: user('hello world'), tools: [WEATHER_A] });
        assert.ok(tooled.input_tokens > r.input_tokens, `${tooled.input_tokens} > ${r.input_tokens}`);
      });

      test('provider errors map to the SDK error classes', async () => {
        const ask = (p, extra = {}) => ant.messages.create({ model: t.model, max_tokens: 10, messages: user(p), ...extra });
        await assert.rejects(ask('mock:status=429'), Anthropic.RateLimitError);
        await assert.rejects(ask('mock:status=429', { stream: true }), Anthropic.RateLimitError);
        await assert.rejects(ask('mock:status=500'), (e) => e instanceof Anthropic.InternalServerError && e.status === 500);
        // Anthropic's overloaded status; an OpenAI-kind provider's 503 is translated to it.
        const overloaded = t.model === 'claude' ? 'mock:status=529' : 'mock:status=503';
        await assert.rejects(
          ask(overloaded),
          (e) => e instanceof Anthropic.InternalServerError && e.status === 529 && e.error?.error?.type === 'overloaded_error',
        );
        await assert.rejects(ask('mock:status=400'), Anthropic.BadRequestError);
      });

      test('an error in the middle of a stream rejects the stream helper', async () => {
        const s = ant.messages.stream({ model: t.model, max_tokens: 50, messages: user('mock:midstream_error mock:tokens=9') });
        let text = '';
        s.on('text', (d) => {
          text += d;
        });
        await assert.rejects(s.finalMessage(), Anthropic.APIError);
        assert.equal(text, 'w1 w2 w3');
      });
    });
  }

  describe(`Anthropic SDK gateway answers, baseURL origin+'${base.suffix}'`, () => {
    let ant;
    let rec;
    before(() => {
      rec = recordingFetch();
      ant = client(base.suffix, { fetch: rec.fetch });
    });

    test('models.list', async () => {
      rec.paths.length = 0;
      const ids = [];
      for await (const m of ant.models.list()) {
        assert.equal(m.type, 'model');
        ids.push(m.id);
      }
      assert.deepEqual(ids, ['gpt', 'claude']);
      assert.deepEqual(rec.paths, [`${base.prefix}/models`]);
    });

    test('models.retrieve', async () => {
      rec.paths.length = 0;
      const m = await ant.models.retrieve('gpt');
      assert.equal(m.id, 'gpt');
      assert.equal(m.type, 'model');
      assert.equal(m.display_name, 'gpt');
      assert.deepEqual(rec.paths, [`${base.prefix}/models/gpt`]);
      await assert.rejects(ant.models.retrieve('no-such-model'), Anthropic.NotFoundError);
    });

    test('unknown model and wrong key', async () => {
      await assert.rejects(
        ant.messages.create({ model: 'nope', max_tokens: 10, messages: user('x') }),
        Anthropic.NotFoundError,
      );
      const bad = client(base.suffix, { apiKey: 'wrong' });
      await assert.rejects(
        bad.messages.create({ model: 'claude', max_tokens: 10, messages: user('x') }),
        Anthropic.AuthenticationError,
      );
    });
  });
}
