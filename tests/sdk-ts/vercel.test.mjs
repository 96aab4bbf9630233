// The Vercel AI SDK's `openai()` provider (npm `ai` and `@ai-sdk/openai`, pinned in
// package.json) with its default settings, through the real ringway binary, to `gpt` (an
// OpenAI-kind provider: Responses → Chat Completions) and to `claude` (an Anthropic-kind
// provider: Responses → Messages). `openai(model)` speaks the Responses API and leaves `store`
// unset, so on a later turn or a tool step it sends `item_reference`s to ringway's own earlier
// output items: ringway's Responses store must expand them. What reached the provider is read
// back from the mock's `/mock/requests` record.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createOpenAI } from '@ai-sdk/openai';
import { generateText, jsonSchema, stepCountIs, streamText, tool } from 'ai';

import { GATEWAY_KEY, clearSeen, mockSeen, startGateway } from './harness.mjs';

// What the mock writes before its tool call for `mock:preamble` (src/mock/script.rs).
const PREAMBLE = 'Let me look that up.';
// Steps the tool loop may take: the call, then the answer (one spare to catch a loop).
const MAX_STEPS = 3;
// Routes whose names the SDK takes for reasoning models (`gpt-5…`): it then sends an answer's
// reasoning item back by reference too, and a message only when reasoning came before it.
const REASONING_ROUTES = `
[[route]]
model = "gpt-5-mo"
targets = ["mo/mock-gpt"]

[[route]]
model = "gpt-5-ma"
targets = ["ma/mock-claude"]
`;

let env;
let provider;
before(async () => {
  env = await startGateway(REASONING_ROUTES);
  // Default settings: only where to go and the key.
  provider = createOpenAI({ baseURL: `${env.gateway.url}/v1`, apiKey: GATEWAY_KEY });
});
after(async () => {
  await env?.stop();
});

const TARGETS = [
  { model: 'gpt', how: 'openai kind', reasoning: 'gpt-5-mo' },
  { model: 'claude', how: 'anthropic kind', reasoning: 'gpt-5-ma' },
];
// Makes the mock think before it answers, in either provider's way.
const THINK = 'mock:thinking mock:reasoning_content';

/** Runs generateText or streamText and returns what both give once finished. */
async function run(streamed, args) {
  // No SDK retries: a failure must show, not be papered over by a second attempt. The request
  // bodies are kept (off by default) to check the SDK really sent `item_reference`s.
  const opts = { maxRetries: 0, include: { requestBody: true }, ...args };
  if (!streamed) {
    const r = await generateText(opts);
    return { text: r.text, steps: r.steps, response: r.response, request: r.request };
  }
  let failure;
  const r = streamText({ ...opts, onError: ({ error }) => (failure ??= error) });
  // A failed stream rejects with NoOutputGeneratedError; the cause onError saw says more.
  const text = await r.text.catch((e) => {
    throw failure ?? e;
  });
  if (failure) throw failure;
  return { text, steps: await r.steps, response: await r.response, request: await r.request };
}

/** The texts of the assistant turns in a provider request body, either format. */
function assistantTexts(body) {
  return body.messages
    .filter((m) => m.role === 'assistant')
    .flatMap((m) =>
      typeof m.content === 'string'
        ? [m.content]
        : (m.content ?? []).filter((b) => b.type === 'text').map((b) => b.text),
    );
}

/** The tool results in a provider request body, either format: `[{ id, text }]`. */
function toolResults(body) {
  const text = (c) =>
    typeof c === 'string' ? c : (c ?? []).map((b) => b.text ?? '').join('');
  return body.messages.flatMap((m) => {
    if (m.role === 'tool') return [{ id: m.tool_call_id, text: text(m.content) }];
    if (m.role !== 'user' || !Array.isArray(m.content)) return [];
    return m.content
      .filter((b) => b.type === 'tool_result')
      .map((b) => ({ id: b.tool_use_id, text: text(b.content) }));
  });
}

/** The `item_reference` ids in a Responses request body the SDK sent. */
function references(requestBody) {
  const body = typeof requestBody === 'string' ? JSON.parse(requestBody) : requestBody;
  return (body.input ?? []).filter((i) => i.type === 'item_reference').map((i) => i.id);
}

/** get_weather, recording each city it is called for in `executed`. */
function weatherTool(executed) {
  return tool({
    description: 'Weather for a city',
    inputSchema: jsonSchema({
      type: 'object',
      properties: { city: { type: 'string' } },
      required: ['city'],
      additionalProperties: false,
    }),
    execute: async ({ city }) => {
      executed.push(city);
      return `22C and sunny in ${city}`;
    },
  });
}

/** Every request the mock received since the last clearSeen, parsed. */
async function seenBodies() {
  return (await mockSeen(env.mock)).map((r) => JSON.parse(r.body));
}

for (const t of TARGETS) {
  for (const streamed of [false, true]) {
    const how = streamed ? 'streamText' : 'generateText';
    describe(`Vercel AI SDK openai() -> ${t.model} (${t.how}), ${how}`, () => {
      test('multi-turn chat: the second turn passes the first turn back', async () => {
        const model = provider(t.model);
        const messages = [{ role: 'user', content: 'Plan a trip to Paris.' }];
        const first = await run(streamed, { model, messages });
        assert.equal(first.text, 'Hello from the ringway mock. You said: Plan a trip to Paris.');
        await clearSeen(env.mock);
        const second = await run(streamed, {
          model,
          messages: [...messages, ...first.response.messages, { role: 'user', content: 'And then Rome?' }],
        });
        assert.equal(second.text, 'Hello from the ringway mock. You said: And then Rome?');
        // The SDK referred to its first answer by id (store left at its default)...
        assert.equal(references(second.request.body).length, 1, second.request.body);
        // ...and the provider got it back as the assistant's turn, in one request.
        const seen = await seenBodies();
        assert.equal(seen.length, 1, JSON.stringify(seen));
        assert.deepEqual(assistantTexts(seen[0]), [first.text], JSON.stringify(seen[0]));
      });

      test('tool loop: text, then a tool call, the result, and the final answer', async () => {
        const executed = [];
        const getWeather = weatherTool(executed);
        await clearSeen(env.mock);
        const r = await run(streamed, {
          model: provider(t.model),
          tools: { get_weather: getWeather },
          stopWhen: stepCountIs(MAX_STEPS),
          prompt: 'What is the weather? mock:preamble mock:args={"city":"Lyon"}',
        });
        assert.deepEqual(executed, ['Lyon']);
        assert.equal(r.steps.length, 2, JSON.stringify(r.steps.map((s) => s.finishReason)));
        const [call, answer] = r.steps;
        assert.equal(call.text, PREAMBLE);
        assert.equal(call.finishReason, 'tool-calls');
        assert.deepEqual(call.toolCalls.map((c) => [c.toolName, c.input]), [['get_weather', { city: 'Lyon' }]]);
        assert.equal(answer.finishReason, 'stop');
        assert.equal(r.text, 'Tool result received: 22C and sunny in Lyon');
        // The tool step referred to the earlier items by id...
        assert.ok(references(answer.request.body).length > 0, answer.request.body);
        // ...and the provider got the whole turn: the text, the call and its result.
        const seen = await seenBodies();
        assert.equal(seen.length, 2, JSON.stringify(seen));
        assert.deepEqual(assistantTexts(seen[1]), [PREAMBLE], JSON.stringify(seen[1]));
        const results = toolResults(seen[1]);
        assert.equal(results.length, 1, JSON.stringify(seen[1]));
        assert.equal(results[0].id, call.toolCalls[0].toolCallId);
        assert.ok(results[0].text.includes('22C and sunny in Lyon'), JSON.stringify(results));
      });

      test('reasoning model: the tool step refers to the reasoning and the text before the call', async () => {
        const executed = [];
        await clearSeen(env.mock);
        const r = await run(streamed, {
          model: provider(t.reasoning),
          tools: { get_weather: weatherTool(executed) },
          stopWhen: stepCountIs(MAX_STEPS),
          // Thinking asked for (`store` and `include` left unset, as the SDK's defaults).
          providerOptions: { openai: { reasoningEffort: 'low' } },
          prompt: `Weather in Nice? ${THINK} mock:preamble mock:args={"city":"Nice"}`,
        });
        assert.deepEqual(executed, ['Nice']);
        assert.equal(r.steps.length, 2, JSON.stringify(r.steps.map((s) => s.finishReason)));
        const [call] = r.steps;
        // No summary was asked for: the reasoning part is there, without text.
        assert.deepEqual(call.content.map((p) => p.type), ['reasoning', 'text', 'tool-call', 'tool-result']);
        assert.equal(call.text, PREAMBLE);
        assert.equal(r.text, 'Tool result received: 22C and sunny in Nice');
        // Both the reasoning item and the message went back as references.
        const refs = references(r.steps[1].request.body);
        assert.deepEqual(refs.map((id) => id.split('_')[0]), ['rs', 'msg'], r.steps[1].request.body);
        // The SDK got no `encrypted_content` (it asked for none)...
        const rs = call.content.find((p) => p.type === 'reasoning');
        assert.equal(rs.providerMetadata?.openai?.reasoningEncryptedContent ?? null, null);
        // ...and the provider gets the text, the call and its result.
        const seen = await seenBodies();
        assert.equal(seen.length, 2, JSON.stringify(seen));
        assert.deepEqual(assistantTexts(seen[1]), [PREAMBLE], JSON.stringify(seen[1]));
        assert.deepEqual(toolResults(seen[1]).map((x) => x.id), [call.toolCalls[0].toolCallId]);
        if (t.how === 'anthropic kind') {
          // The stored reasoning item kept its sealed thinking: the tool step gives Claude its
          // signed thinking back, and thinking stays on for that step.
          const turn = seen[1].messages.filter((m) => m.role === 'assistant').at(-1);
          assert.equal(turn.content[0].type, 'thinking', JSON.stringify(seen[1]));
          assert.ok(turn.content[0].signature, JSON.stringify(turn));
          assert.ok(seen[0].thinking, JSON.stringify(seen[0]));
          assert.deepEqual(seen[1].thinking, seen[0].thinking, JSON.stringify(seen[1]));
        }
      });
    });
  }
}
