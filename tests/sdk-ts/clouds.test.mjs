// The Anthropic and OpenAI TypeScript SDKs through the real ringway binary to a bedrock-kind
// route (`cb`) and a vertex-kind route (`cv`) on the mock: a tool round trip with thinking,
// streamed and not, on Messages, Chat Completions and Responses. What reached the mock is checked
// to be the cloud's request (path form, `anthropic_version`), so a route that silently went
// elsewhere fails.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';

import { GATEWAY_KEY, WEATHER_A, WEATHER_O, clearSeen, mockSeen, startCloudGateway } from './harness.mjs';

let env;
before(async () => {
  env = await startCloudGateway();
});
after(async () => {
  await env?.stop();
});

const ROUTES = [
  { model: 'cb', cloud: 'Bedrock', path: /^\/model\/[^/]+\/invoke(-with-response-stream)?$/, version: 'bedrock-2023-05-31' },
  {
    model: 'cv',
    cloud: 'Vertex',
    path: /^\/v1\/projects\/mock-project\/locations\/us-east5\/publishers\/anthropic\/models\/[^/]+:(stream)?[rR]awPredict$/,
    version: 'vertex-2023-10-16',
  },
];
const PROMPT = 'mock:thinking Weather in Paris? mock:tool=get_weather mock:args={"city":"Paris","days":2}';
const ARGS = { city: 'Paris', days: 2 };
const RESULT = '22C and sunny';
const RESPONSES_TOOL = { type: 'function', name: 'get_weather', description: 'Weather for a city', parameters: WEATHER_O.function.parameters };

/** The one cloud request the mock received since the last clear, its body parsed. */
async function upstream(r) {
  const recs = (await mockSeen(env.mock)).filter((x) => x.path.startsWith('/model/') || x.path.startsWith('/v1/projects/'));
  assert.equal(recs.length, 1, recs.map((x) => x.path).join(' '));
  assert.match(recs[0].path, r.path);
  const body = JSON.parse(recs[0].body);
  assert.equal(body.anthropic_version, r.version);
  assert.equal(body.model, undefined);
  return body;
}

for (const r of ROUTES) {
  for (const stream of [false, true]) {
    const how = stream ? 'streamed' : 'not streamed';

    describe(`${r.cloud} (${r.model}), ${how}`, () => {
      let ant;
      let oai;
      before(() => {
        ant = new Anthropic({ apiKey: GATEWAY_KEY, baseURL: env.gateway.url, maxRetries: 0, timeout: 30_000 });
        oai = new OpenAI({ apiKey: GATEWAY_KEY, baseURL: env.gateway.url + '/v1', maxRetries: 0, timeout: 30_000 });
      });

      test('Anthropic SDK: thinking, a tool call, its result', async () => {
        const turn = async (messages) => {
          const req = { model: r.model, max_tokens: 4000, thinking: { type: 'enabled', budget_tokens: 1024 }, tools: [WEATHER_A], messages };
          return stream ? ant.messages.stream(req).finalMessage() : ant.messages.create(req);
        };
        await clearSeen(env.mock);
        const first = await turn([{ role: 'user', content: PROMPT }]);
        await upstream(r);
        assert.equal(first.stop_reason, 'tool_use');
        assert.equal(first.content[0].type, 'thinking');
        assert.ok(first.content[0].signature);
        const call = first.content.at(-1);
        assert.equal(call.type, 'tool_use');
        assert.deepEqual(call.input, ARGS);
        await clearSeen(env.mock);
        const second = await turn([
          { role: 'user', content: PROMPT },
          { role: 'assistant', content: first.content },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: call.id, content: RESULT }] },
        ]);
        const sent = await upstream(r);
        assert.equal(sent.messages[1].content[0].signature, first.content[0].signature);
        const text = second.content.filter((b) => b.type === 'text').map((b) => b.text).join('');
        assert.equal(second.stop_reason, 'end_turn');
        assert.ok(text.startsWith('Tool result received') && text.includes('22C'), text);
      });

      test('OpenAI SDK, Chat Completions: reasoning, a tool call, its result', async () => {
        const turn = async (messages) => {
          const req = { model: r.model, reasoning_effort: 'low', max_completion_tokens: 4000, tools: [WEATHER_O], messages };
          if (!stream) {
            const c = (await oai.chat.completions.create(req)).choices[0];
            return { text: c.message.content ?? '', calls: c.message.tool_calls ?? [], reasoning: c.message.reasoning_content, finish: c.finish_reason };
          }
          let text = '';
          let reasoning = '';
          let finish = null;
          const calls = [];
          for await (const chunk of await oai.chat.completions.create({ ...req, stream: true })) {
            const c = chunk.choices[0];
            if (!c) continue;
            text += c.delta.content ?? '';
            reasoning += c.delta.reasoning_content ?? '';
            for (const tc of c.delta.tool_calls ?? []) {
              const slot = (calls[tc.index] ??= { id: '', type: 'function', function: { name: '', arguments: '' } });
              slot.id = tc.id ?? slot.id;
              slot.function.name += tc.function?.name ?? '';
              slot.function.arguments += tc.function?.arguments ?? '';
            }
            finish = c.finish_reason ?? finish;
          }
          return { text, calls, reasoning, finish };
        };
        await clearSeen(env.mock);
        const first = await turn([{ role: 'user', content: PROMPT }]);
        const sent1 = await upstream(r);
        assert.equal(sent1.thinking?.type, 'enabled', JSON.stringify(sent1.thinking));
        assert.equal(first.finish, 'tool_calls');
        assert.ok(first.reasoning, 'reasoning_content');
        assert.equal(first.calls.length, 1);
        const call = first.calls[0];
        assert.deepEqual(JSON.parse(call.function.arguments), ARGS);
        await clearSeen(env.mock);
        const second = await turn([
          { role: 'user', content: PROMPT },
          { role: 'assistant', content: null, tool_calls: [call] },
          { role: 'tool', tool_call_id: call.id, content: RESULT },
        ]);
        const sent = await upstream(r);
        assert.ok(sent.messages.at(-1).content.some((b) => b.type === 'tool_result' && b.tool_use_id === call.id));
        assert.equal(second.finish, 'stop');
        assert.ok(second.text.startsWith('Tool result received') && second.text.includes('22C'), second.text);
      });

      test('OpenAI SDK, Responses: reasoning, a function call, its output', async () => {
        const base = {
          model: r.model,
          tools: [RESPONSES_TOOL],
          reasoning: { effort: 'low', summary: 'auto' },
          include: ['reasoning.encrypted_content'],
          store: false,
        };
        const turn = async (input) => {
          if (!stream) return oai.responses.create({ ...base, input });
          const s = oai.responses.stream({ ...base, input });
          const types = [];
          for await (const e of s) types.push(e.type);
          assert.equal(types[0], 'response.created');
          assert.equal(types.at(-1), 'response.completed');
          return s.finalResponse();
        };
        await clearSeen(env.mock);
        const first = await turn(PROMPT);
        await upstream(r);
        assert.deepEqual(first.output.map((o) => o.type), ['reasoning', 'function_call']);
        assert.ok(first.output[0].encrypted_content);
        const call = first.output[1];
        assert.deepEqual(JSON.parse(call.arguments), ARGS);
        await clearSeen(env.mock);
        const second = await turn([
          { role: 'user', content: PROMPT },
          ...first.output,
          { type: 'function_call_output', call_id: call.call_id, output: RESULT },
        ]);
        const sent = await upstream(r);
        const assistant = sent.messages.filter((m) => m.role === 'assistant');
        assert.equal(assistant[0]?.content[0]?.type, 'thinking', JSON.stringify(sent.messages));
        assert.equal(second.status, 'completed');
        assert.ok(second.output_text.startsWith('Tool result received') && second.output_text.includes('22C'), second.output_text);
      });
    });
  }
}
