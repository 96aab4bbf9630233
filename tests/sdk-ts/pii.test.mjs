// PII substitution through the official TypeScript SDKs (the same matrix as
// tests/sdk/test_pii.py, and the per-key switch of tests/pii.rs): the mock echoes what it
// received, so the client must get its originals back (text and tool-call arguments, streaming
// and not, same format and translated), while the mock's request log shows that no original,
// and no `pii_substitution` flag, ever reached it. Substitution is turned on two ways: by the
// request's own `pii_substitution: true` (with the plain gateway key), and by the key (`PII_KEY`,
// `pii = true` in config, no flag in the request).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';

import { GATEWAY_KEY, PII_KEY, clearSeen, mockSeen, startPiiGateway } from './harness.mjs';

let env;
before(async () => {
  env = await startPiiGateway();
});
after(async () => {
  await env?.stop();
});

// Each is one word, so all three are within the mock's twelve echoed words.
const EMAIL = 'jane.doe@corp.example.io';
const CARD = '4111-1111-1111-1111';
const IP = '10.20.30.40';
const ORIGINALS = [EMAIL, CARD, IP];
const PROMPT = `mail ${EMAIL} card ${CARD} host ${IP}`;
// Makes the mock call the (first) tool with the email in its arguments.
const TOOL_PROMPT = `send it mock:args={"to":"${EMAIL}"}`;
const SEND_PARAMS = { type: 'object', properties: { to: { type: 'string' } } };
const TOOL_O = { type: 'function', function: { name: 'send', parameters: SEND_PARAMS } };
const TOOL_A = { name: 'send', input_schema: SEND_PARAMS };

// How substitution is turned on: the gateway key a client uses and what its requests add.
const SWITCHES = [
  { how: 'per request', apiKey: GATEWAY_KEY, extra: { pii_substitution: true } },
  { how: 'per key', apiKey: PII_KEY, extra: {} },
];
// Each SDK to a provider of its own format and to one of the other.
const ROUTES = {
  openai: [
    { model: 'gpt', how: 'same-format', upstreamPath: '/v1/chat/completions' },
    { model: 'claude', how: 'translated', upstreamPath: '/v1/messages' },
  ],
  anthropic: [
    { model: 'claude', how: 'same-format', upstreamPath: '/v1/messages' },
    { model: 'gpt', how: 'translated', upstreamPath: '/v1/chat/completions' },
  ],
};

const user = (text) => [{ role: 'user', content: text }];

/** The user turn's text in an upstream body of either format (string or text parts). */
function userText(body) {
  const content = body.messages.find((m) => m.role === 'user').content;
  if (typeof content === 'string') return content;
  return content.map((p) => p.text ?? '').join('');
}

/**
 * Runs `call` against a cleared mock log and checks what reached the provider: exactly one
 * request, on `upstreamPath`, with no original and no flag anywhere in it (path, headers, body),
 * its user text the prompt with every original replaced by a stand-in. Resolves with the
 * stand-ins the provider saw and `call`'s result.
 */
async function throughMock(upstreamPath, prompt, call) {
  await clearSeen(env.mock);
  const result = await call();
  const seen = await mockSeen(env.mock);
  assert.equal(seen.length, 1, JSON.stringify(seen));
  assert.equal(seen[0].path, upstreamPath);
  const raw = JSON.stringify(seen);
  for (const o of ORIGINALS) assert.ok(!raw.includes(o), `${o} reached the provider: ${raw}`);
  assert.ok(!raw.includes('pii_substitution'), `the flag reached the provider: ${raw}`);
  const sent = userText(JSON.parse(seen[0].body));
  let standIns;
  if (prompt === PROMPT) {
    const m = /^mail (\S+) card (\S+) host (\S+)$/.exec(sent);
    assert.ok(m, `the provider saw: ${sent}`);
    standIns = m.slice(1);
  } else {
    const m = /^send it mock:args=\{"to":"([^"]+)"\}$/.exec(sent);
    assert.ok(m, `the provider saw: ${sent}`);
    standIns = [m[1]];
  }
  standIns.forEach((s, i) => assert.notEqual(s, ORIGINALS[i], `no stand-in for ${ORIGINALS[i]}`));
  return { standIns, result };
}

/** The client's text is the mock's echo of the original prompt, without a stand-in in it. */
function assertEchoRestored(text, standIns) {
  assert.ok(text.endsWith(`You said: ${PROMPT}`), text);
  for (const s of standIns) assert.ok(!text.includes(s), `stand-in ${s} reached the client: ${text}`);
}

for (const sw of SWITCHES) {
  for (const t of ROUTES.openai) {
    describe(`OpenAI SDK -> ${t.model} (${t.how}), PII ${sw.how}`, () => {
      let oai;
      before(() => {
        oai = new OpenAI({ apiKey: sw.apiKey, baseURL: `${env.gateway.url}/v1`, maxRetries: 0, timeout: 20_000 });
      });

      test('text, not streamed', async () => {
        const { standIns, result } = await throughMock(t.upstreamPath, PROMPT, () =>
          oai.chat.completions.create({ model: t.model, messages: user(PROMPT), ...sw.extra }),
        );
        assertEchoRestored(result.choices[0].message.content, standIns);
      });

      test('text, streamed', async () => {
        const { standIns, result } = await throughMock(t.upstreamPath, PROMPT, async () => {
          const stream = await oai.chat.completions.create({
            model: t.model,
            messages: user(PROMPT),
            stream: true,
            ...sw.extra,
          });
          let text = '';
          for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
          return text;
        });
        assertEchoRestored(result, standIns);
      });

      test('tool-call arguments, not streamed', async () => {
        const { standIns, result } = await throughMock(t.upstreamPath, TOOL_PROMPT, () =>
          oai.chat.completions.create({ model: t.model, messages: user(TOOL_PROMPT), tools: [TOOL_O], ...sw.extra }),
        );
        const calls = result.choices[0].message.tool_calls;
        assert.equal(calls.length, 1);
        assert.equal(calls[0].function.name, 'send');
        assert.ok(!calls[0].function.arguments.includes(standIns[0]), calls[0].function.arguments);
        assert.deepEqual(JSON.parse(calls[0].function.arguments), { to: EMAIL });
      });

      test('tool-call arguments, streamed', async () => {
        const { standIns, result } = await throughMock(t.upstreamPath, TOOL_PROMPT, async () => {
          const stream = await oai.chat.completions.create({
            model: t.model,
            messages: user(TOOL_PROMPT),
            tools: [TOOL_O],
            stream: true,
            ...sw.extra,
          });
          let args = '';
          let finish = null;
          for await (const chunk of stream) {
            const c = chunk.choices[0];
            for (const tc of c?.delta?.tool_calls ?? []) args += tc.function?.arguments ?? '';
            finish = c?.finish_reason ?? finish;
          }
          return { args, finish };
        });
        assert.equal(result.finish, 'tool_calls');
        assert.ok(!result.args.includes(standIns[0]), result.args);
        assert.deepEqual(JSON.parse(result.args), { to: EMAIL });
      });
    });
  }

  for (const t of ROUTES.anthropic) {
    describe(`Anthropic SDK -> ${t.model} (${t.how}), PII ${sw.how}`, () => {
      let ant;
      before(() => {
        ant = new Anthropic({ apiKey: sw.apiKey, baseURL: env.gateway.url, maxRetries: 0, timeout: 20_000 });
      });
      const req = (prompt, more = {}) => ({
        model: t.model,
        max_tokens: 64,
        messages: user(prompt),
        ...more,
        ...sw.extra,
      });

      test('text, not streamed', async () => {
        const { standIns, result } = await throughMock(t.upstreamPath, PROMPT, () => ant.messages.create(req(PROMPT)));
        assert.equal(result.content.length, 1);
        assertEchoRestored(result.content[0].text, standIns);
      });

      test('text, streamed (the stream helper)', async () => {
        const { standIns, result } = await throughMock(t.upstreamPath, PROMPT, async () => {
          const s = ant.messages.stream(req(PROMPT));
          let deltas = '';
          s.on('text', (d) => {
            deltas += d;
          });
          const final = await s.finalMessage();
          return { deltas, final };
        });
        assertEchoRestored(result.deltas, standIns);
        assert.equal(result.final.content[0].text, result.deltas);
      });

      test('tool-use input, not streamed', async () => {
        const { result } = await throughMock(t.upstreamPath, TOOL_PROMPT, () =>
          ant.messages.create(req(TOOL_PROMPT, { tools: [TOOL_A] })),
        );
        assert.equal(result.stop_reason, 'tool_use');
        const uses = result.content.filter((b) => b.type === 'tool_use');
        assert.deepEqual(
          uses.map((b) => [b.name, b.input]),
          [['send', { to: EMAIL }]],
        );
      });

      test('tool-use input, streamed', async () => {
        const { standIns, result } = await throughMock(t.upstreamPath, TOOL_PROMPT, async () => {
          const stream = await ant.messages.create(req(TOOL_PROMPT, { tools: [TOOL_A], stream: true }));
          let json = '';
          let stop = null;
          for await (const ev of stream) {
            if (ev.type === 'content_block_delta' && ev.delta.type === 'input_json_delta') {
              json += ev.delta.partial_json;
            }
            if (ev.type === 'message_delta') stop = ev.delta.stop_reason;
          }
          return { json, stop };
        });
        assert.equal(result.stop, 'tool_use');
        assert.ok(!result.json.includes(standIns[0]), result.json);
        assert.deepEqual(JSON.parse(result.json), { to: EMAIL });
      });
    });
  }
}

// The control: with neither the flag nor the key, the prompt goes upstream as written (so the
// checks above can see a leak) and the answer carries it back unchanged.
describe('PII off: no flag, plain key', () => {
  for (const t of ROUTES.openai) {
    test(`OpenAI SDK -> ${t.model}: the original reaches the provider`, async () => {
      const oai = new OpenAI({ apiKey: GATEWAY_KEY, baseURL: `${env.gateway.url}/v1`, maxRetries: 0, timeout: 20_000 });
      await clearSeen(env.mock);
      const r = await oai.chat.completions.create({ model: t.model, messages: user(PROMPT) });
      assert.ok(r.choices[0].message.content.endsWith(`You said: ${PROMPT}`));
      const seen = await mockSeen(env.mock);
      assert.equal(seen.length, 1);
      assert.equal(userText(JSON.parse(seen[0].body)), PROMPT);
    });
  }
});
