// The official OpenAI TypeScript SDK (`openai`, pinned in package.json) through the real ringway
// binary: to `gpt` (an OpenAI-kind provider: same-format relay) and to `claude` (an
// Anthropic-kind provider: translation), each with a base URL ending in `/v1` (the SDK's
// documented form) and without it (the SDK then posts to `/chat/completions`).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

import { GATEWAY_KEY, TIME_O, WEATHER_O, lastSent, recordingFetch, startGateway } from './harness.mjs';

let env;
before(async () => {
  env = await startGateway();
});
after(async () => {
  await env?.stop();
});

const TARGETS = [
  { model: 'gpt', how: 'same-format', upstreamModel: 'mock-gpt', upstreamPath: '/v1/chat/completions', idPrefix: 'call_' },
  { model: 'claude', how: 'cross-format', upstreamModel: 'mock-claude', upstreamPath: '/v1/messages', idPrefix: 'toolu_' },
];
// The base URL users configure, after the gateway's origin, and the chat path the SDK then uses.
const BASES = [
  { suffix: '/v1', chatPath: '/v1/chat/completions', modelsPath: '/v1/models' },
  { suffix: '', chatPath: '/chat/completions', modelsPath: '/models' },
];

const user = (text) => [{ role: 'user', content: text }];

function client(suffix, opts = {}) {
  return new OpenAI({
    apiKey: GATEWAY_KEY,
    baseURL: env.gateway.url + suffix,
    maxRetries: 0,
    timeout: 20_000,
    ...opts,
  });
}

for (const base of BASES) {
  for (const t of TARGETS) {
    describe(`OpenAI SDK -> ${t.model} (${t.how}), baseURL origin+'${base.suffix}'`, () => {
      let oai;
      let rec;
      before(() => {
        rec = recordingFetch();
        oai = client(base.suffix, { fetch: rec.fetch });
      });

      test('text, not streamed', async () => {
        rec.paths.length = 0;
        const raw = await oai.chat.completions
          .create({ model: t.model, messages: user('hello gateway') })
          .withResponse();
        const r = raw.data;
        assert.deepEqual(rec.paths, [base.chatPath]);
        assert.equal(r.object, 'chat.completion');
        assert.ok(r.choices[0].message.content.endsWith('You said: hello gateway'), r.choices[0].message.content);
        assert.equal(r.choices[0].message.role, 'assistant');
        assert.equal(r.choices[0].finish_reason, 'stop');
        assert.ok(r.usage.prompt_tokens > 0 && r.usage.completion_tokens > 0);
        assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
        assert.equal(raw.response.headers.get('x-ringway-model'), t.upstreamModel);
        const sent = await lastSent(env.mock);
        assert.equal(sent.path, t.upstreamPath);
        assert.equal(sent.body.model, t.upstreamModel);
      });

      test('text, streamed, usage chunk when asked', async () => {
        rec.paths.length = 0;
        const stream = await oai.chat.completions.create({
          model: t.model,
          messages: user('mock:tokens=4'),
          stream: true,
          stream_options: { include_usage: true },
        });
        let text = '';
        const finishes = [];
        const usages = [];
        for await (const chunk of stream) {
          assert.equal(chunk.object, 'chat.completion.chunk');
          if (chunk.usage) usages.push(chunk.usage);
          for (const c of chunk.choices) {
            text += c.delta.content ?? '';
            if (c.finish_reason) finishes.push(c.finish_reason);
          }
        }
        assert.deepEqual(rec.paths, [base.chatPath]);
        assert.equal(text, 'w1 w2 w3 w4');
        assert.deepEqual(finishes, ['stop']);
        assert.equal(usages.length, 1);
        assert.equal(usages[0].completion_tokens, 4);
        const sent = await lastSent(env.mock);
        assert.equal(sent.body.stream, true);
      });

      test('stream helper: text events and the final completion', async () => {
        const s = oai.chat.completions.stream({ model: t.model, messages: user('stream this please') });
        let deltas = '';
        s.on('content', (delta) => {
          deltas += delta;
        });
        const final = await s.finalChatCompletion();
        assert.ok(deltas.endsWith('You said: stream this please'), deltas);
        assert.equal(final.choices[0].message.content, deltas);
        assert.equal(final.choices[0].finish_reason, 'stop');
      });

      test('tool call, not streamed: name and arguments', async () => {
        const r = await oai.chat.completions.create({
          model: t.model,
          messages: user('weather?'),
          tools: [WEATHER_O, TIME_O],
        });
        const msg = r.choices[0].message;
        assert.equal(r.choices[0].finish_reason, 'tool_calls');
        assert.equal(msg.tool_calls.length, 1);
        const call = msg.tool_calls[0];
        assert.equal(call.type, 'function');
        assert.equal(call.function.name, 'get_weather');
        assert.deepEqual(JSON.parse(call.function.arguments), { city: 'mock', days: 1 });
        assert.ok(call.id.startsWith(t.idPrefix), call.id);
      });

      test('parallel tool calls, streamed and accumulated by the SDK, same as not streamed', async () => {
        const req = { model: t.model, messages: user('mock:parallel both'), tools: [WEATHER_O, TIME_O] };
        const final = await oai.chat.completions.stream(req).finalChatCompletion();
        assert.equal(final.choices[0].finish_reason, 'tool_calls');
        const calls = final.choices[0].message.tool_calls;
        assert.deepEqual(
          calls.map((c) => c.function.name),
          ['get_weather', 'get_time'],
        );
        assert.deepEqual(
          calls.map((c) => JSON.parse(c.function.arguments)),
          [{ city: 'mock', days: 1 }, {}],
        );
        assert.equal(new Set(calls.map((c) => c.id)).size, 2);
        // Not streamed: the same calls (ids differ: the mock derives them from the request body).
        const r = await oai.chat.completions.create(req);
        assert.deepEqual(
          r.choices[0].message.tool_calls.map((c) => [c.function.name, JSON.parse(c.function.arguments)]),
          calls.map((c) => [c.function.name, JSON.parse(c.function.arguments)]),
        );
      });

      test('strict tool parsed by chat.completions.parse into parsed_arguments', async () => {
        const strictWeather = {
          type: 'function',
          function: {
            ...WEATHER_O.function,
            strict: true,
            parameters: { ...WEATHER_O.function.parameters, additionalProperties: false },
          },
        };
        const r = await oai.chat.completions.parse({
          model: t.model,
          messages: user('weather?'),
          tools: [strictWeather],
        });
        const call = r.choices[0].message.tool_calls[0];
        assert.equal(call.function.name, 'get_weather');
        assert.deepEqual(call.function.parsed_arguments, { city: 'mock', days: 1 });
      });

      for (const stream of [false, true]) {
        test(`tool result round trip${stream ? ', streamed' : ''}`, async () => {
          const id = `${t.idPrefix}rt1`;
          const req = {
            model: t.model,
            tools: [WEATHER_O],
            messages: [
              { role: 'user', content: 'weather?' },
              {
                role: 'assistant',
                content: null,
                tool_calls: [{ id, type: 'function', function: { name: 'get_weather', arguments: '{"city":"x","days":1}' } }],
              },
              { role: 'tool', tool_call_id: id, content: 'sunny and warm' },
            ],
          };
          let text;
          if (stream) {
            const final = await oai.chat.completions.stream(req).finalChatCompletion();
            text = final.choices[0].message.content;
            assert.equal(final.choices[0].finish_reason, 'stop');
          } else {
            const r = await oai.chat.completions.create(req);
            text = r.choices[0].message.content;
            assert.equal(r.choices[0].finish_reason, 'stop');
          }
          assert.ok(text.startsWith('Tool result received'), text);
          assert.ok(text.includes('sunny and warm'), text);
        });
      }

      test('provider errors map to the SDK error classes', async () => {
        await assert.rejects(
          oai.chat.completions.create({ model: t.model, messages: user('mock:status=429') }),
          OpenAI.RateLimitError,
        );
        await assert.rejects(
          oai.chat.completions.create({ model: t.model, messages: user('mock:status=429'), stream: true }),
          OpenAI.RateLimitError,
        );
        await assert.rejects(
          oai.chat.completions.create({ model: t.model, messages: user('mock:status=500') }),
          (e) => e instanceof OpenAI.InternalServerError && e.status === 500,
        );
        await assert.rejects(
          oai.chat.completions.create({ model: t.model, messages: user('mock:status=400') }),
          OpenAI.BadRequestError,
        );
      });

      test('an error in the middle of a stream rejects the iteration', async () => {
        const stream = await oai.chat.completions.create({
          model: t.model,
          messages: user('mock:midstream_error mock:tokens=9'),
          stream: true,
        });
        let text = '';
        await assert.rejects(async () => {
          for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
        }, OpenAI.APIError);
        assert.equal(text, 'w1 w2 w3');
      });
    });
  }

  describe(`OpenAI SDK gateway answers, baseURL origin+'${base.suffix}'`, () => {
    let oai;
    let rec;
    before(() => {
      rec = recordingFetch();
      oai = client(base.suffix, { fetch: rec.fetch });
    });

    test('models.list', async () => {
      rec.paths.length = 0;
      const ids = [];
      for await (const m of oai.models.list()) {
        assert.equal(m.object, 'model');
        ids.push(m.id);
      }
      assert.deepEqual(ids, ['gpt', 'claude']);
      assert.deepEqual(rec.paths, [base.modelsPath]);
    });

    test('models.retrieve', async () => {
      rec.paths.length = 0;
      const m = await oai.models.retrieve('claude');
      assert.equal(m.id, 'claude');
      assert.equal(m.object, 'model');
      assert.equal(m.owned_by, 'ringway');
      assert.deepEqual(rec.paths, [`${base.modelsPath}/claude`]);
      await assert.rejects(oai.models.retrieve('no-such-model'), OpenAI.NotFoundError);
    });

    test('unknown model, wrong key, empty model', async () => {
      await assert.rejects(
        oai.chat.completions.create({ model: 'no-such-model', messages: user('x') }),
        (e) => e instanceof OpenAI.NotFoundError && e.code === 'model_not_found',
      );
      const bad = client(base.suffix, { apiKey: 'wrong' });
      await assert.rejects(
        bad.chat.completions.create({ model: 'gpt', messages: user('x') }),
        OpenAI.AuthenticationError,
      );
      await assert.rejects(oai.chat.completions.create({ model: '', messages: user('x') }), OpenAI.BadRequestError);
    });
  });
}
