// The @google/genai TypeScript SDK (the Gemini client dialect) through the real ringway binary,
// its base URL set to the gateway and its API key the gateway key: generate, stream, a function
// call and its result in a second turn, structured output, count tokens, the model list, and a
// wrong key. Each case runs against a route to a gemini-kind provider (passthrough; a Gemini 3
// model, so the mock enforces thought signatures), an openai-kind one and an anthropic-kind one
// (translated), all on the mock. What reached the mock is checked in the provider's own dialect,
// with the provider's key and never the gateway's.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiError, FinishReason, GoogleGenAI, Type } from '@google/genai';

import { GATEWAY_KEY, GEMINI_ROUTES, clearSeen, mockSeen, startGeminiGateway } from './harness.mjs';

let env;
before(async () => {
  env = await startGeminiGateway();
});
after(async () => {
  await env?.stop();
});

function client(apiKey = GATEWAY_KEY) {
  return new GoogleGenAI({ apiKey, httpOptions: { baseUrl: env.gateway.url, apiVersion: 'v1beta', timeout: 30_000 } });
}

const GREETING = 'Hello from the ringway mock.';
const PROMPT = 'tell the gateway something nice';
const SYSTEM = 'You answer in one short line.';
// The weather tool as JSON Schema (`parametersJsonSchema`, what Gemini CLI sends).
const WEATHER = {
  name: 'get_weather',
  description: 'Weather for a city',
  parametersJsonSchema: {
    type: 'object',
    properties: { city: { type: 'string' }, days: { type: 'integer' } },
    required: ['city', 'days'],
  },
};
const ARGS = { city: 'Paris', days: 2 };
const TOOL_PROMPT = 'Weather in Paris? mock:tool=get_weather mock:args={"city":"Paris","days":2}';
const RESULT = { output: 'sunny and 21C' };
// Each mock side thinks before it calls: Anthropic a signed thinking block, OpenAI
// `reasoning_content`, Gemini thought parts.
const THINKING_PROMPT = `${TOOL_PROMPT} mock:thinking mock:reasoning_content`;
const CITY_SCHEMA = {
  type: 'object',
  properties: { city: { type: 'string' }, population: { type: 'integer' } },
  required: ['city', 'population'],
  additionalProperties: false,
};
// The same as Gemini's OpenAPI `Schema` (`responseSchema`).
const CITY_OPENAPI = {
  type: Type.OBJECT,
  properties: { city: { type: Type.STRING }, population: { type: Type.INTEGER } },
  required: ['city', 'population'],
};

const UPSTREAM_PATHS = {
  gemini: /^\/v1beta\/models\/gemini-3-flash-preview:(generateContent|streamGenerateContent\?alt=sse|countTokens)$/,
  openai: /^\/v1\/chat\/completions$/,
  anthropic: /^\/v1\/messages(\/count_tokens)?$/,
};

function header(rec, name) {
  const hit = Object.entries(rec.headers).find(([k]) => k.toLowerCase() === name);
  return hit?.[1];
}

/** What the mock received since the last clear, each request on the provider's path, with the
 * provider's key and never the gateway's: `[{ path, body }]`, bodies parsed. */
async function upstream(kind) {
  const recs = (await mockSeen(env.mock)).filter((r) => !r.path.startsWith('/mock/'));
  const { key } = GEMINI_ROUTES[kind];
  return recs.map((rec) => {
    assert.match(rec.path, UPSTREAM_PATHS[kind]);
    if (kind === 'gemini') assert.equal(header(rec, 'x-goog-api-key'), key);
    else if (kind === 'openai') assert.equal(header(rec, 'authorization'), `Bearer ${key}`);
    else assert.equal(header(rec, 'x-api-key'), key);
    assert.ok(!(JSON.stringify(rec.headers) + rec.path).includes(GATEWAY_KEY));
    return { path: rec.path, raw: rec.body, body: JSON.parse(rec.body) };
  });
}

async function oneUpstream(kind) {
  const recs = await upstream(kind);
  assert.equal(recs.length, 1, recs.map((r) => r.path).join(' '));
  return recs[0];
}

/** The text of an OpenAI or Anthropic content (a string or a list of text parts). */
function text(content) {
  return typeof content === 'string' ? content : content.map((p) => p.text ?? '').join('');
}

/** `[system text, last user text]` of an upstream body in the provider's dialect. */
function upstreamPrompt(kind, body) {
  if (kind === 'gemini') {
    return [body.systemInstruction.parts.map((p) => p.text).join(''), body.contents.at(-1).parts.map((p) => p.text ?? '').join('')];
  }
  if (kind === 'openai') {
    assert.ok(['system', 'developer'].includes(body.messages[0].role), JSON.stringify(body.messages[0]));
    return [text(body.messages[0].content), text(body.messages.at(-1).content)];
  }
  return [text(body.system), text(body.messages.at(-1).content)];
}

function upstreamStreamed(kind, { path, body }) {
  return kind === 'gemini' ? path.endsWith(':streamGenerateContent?alt=sse') : body.stream === true;
}

function checkUsage(u) {
  assert.ok(u.promptTokenCount > 0, JSON.stringify(u));
  assert.ok(u.candidatesTokenCount > 0, JSON.stringify(u));
  assert.equal(u.totalTokenCount, u.promptTokenCount + u.candidatesTokenCount + (u.thoughtsTokenCount ?? 0));
}

/** Every part of a response, or of a stream's chunks in order. */
function partsOf(r) {
  const chunks = Array.isArray(r) ? r : [r];
  return chunks.flatMap((c) => c.candidates?.[0]?.content?.parts ?? []);
}

/** `[name, args, result text]` of the second tool turn as the provider got it; the call and its
 * result matched by id where the dialect has ids. */
function upstreamToolTurn(kind, body) {
  if (kind === 'gemini') {
    const call = body.contents[1].parts.find((p) => p.functionCall).functionCall;
    const resp = body.contents[2].parts[0].functionResponse;
    assert.equal(resp.name, call.name);
    if (call.id !== undefined) assert.equal(resp.id, call.id);
    return [call.name, call.args, JSON.stringify(resp.response)];
  }
  if (kind === 'openai') {
    const assistant = body.messages.find((m) => m.role === 'assistant');
    assert.equal(assistant.tool_calls.length, 1);
    const call = assistant.tool_calls[0];
    const tool = body.messages.find((m) => m.role === 'tool');
    assert.equal(tool.tool_call_id, call.id);
    return [call.function.name, JSON.parse(call.function.arguments), text(tool.content)];
  }
  const assistant = body.messages.find((m) => m.role === 'assistant');
  const uses = assistant.content.filter((b) => b.type === 'tool_use');
  assert.equal(uses.length, 1);
  const result = body.messages.at(-1).content.find((b) => b.type === 'tool_result');
  assert.equal(result.tool_use_id, uses[0].id);
  return [uses[0].name, uses[0].input, text(result.content)];
}

function upstreamSchema(kind, body) {
  if (kind === 'gemini') {
    assert.equal(body.generationConfig.responseMimeType, 'application/json');
    return body.generationConfig.responseJsonSchema ?? body.generationConfig.responseSchema;
  }
  if (kind === 'openai') {
    assert.equal(body.response_format.type, 'json_schema', JSON.stringify(body.response_format));
    return body.response_format.json_schema.schema;
  }
  assert.equal(body.output_config.format.type, 'json_schema', JSON.stringify(body.output_config));
  return body.output_config.format.schema;
}

for (const [kind, r] of Object.entries(GEMINI_ROUTES)) {
  describe(`@google/genai to a ${kind}-kind provider (${r.route})`, () => {
    const config = { systemInstruction: SYSTEM, maxOutputTokens: 200, temperature: 0.5 };

    test('generateContent', async () => {
      await clearSeen(env.mock);
      const res = await client().models.generateContent({ model: r.route, contents: PROMPT, config });
      assert.equal(res.text, `${GREETING} You said: ${PROMPT}`);
      assert.equal(res.candidates[0].finishReason, FinishReason.STOP);
      assert.equal(res.candidates[0].content.role, 'model');
      checkUsage(res.usageMetadata);
      assert.equal(res.sdkHttpResponse.headers['x-ringway-provider'], r.provider);
      assert.equal(res.sdkHttpResponse.headers['x-ringway-model'], r.model);
      const up = await oneUpstream(kind);
      assert.ok(!upstreamStreamed(kind, up));
      assert.deepEqual(upstreamPrompt(kind, up.body), [SYSTEM, PROMPT]);
      const max = kind === 'gemini' ? up.body.generationConfig.maxOutputTokens
        : kind === 'openai' ? (up.body.max_completion_tokens ?? up.body.max_tokens) : up.body.max_tokens;
      assert.equal(max, 200);
      assert.equal(kind === 'gemini' ? up.body.generationConfig.temperature : up.body.temperature, 0.5);
    });

    test('generateContentStream', async () => {
      await clearSeen(env.mock);
      const chunks = [];
      for await (const c of await client().models.generateContentStream({ model: r.route, contents: PROMPT, config })) {
        chunks.push(c);
      }
      // The mock streams a word at a time: a stream that came in one piece was buffered.
      assert.ok(chunks.length >= 3, `${chunks.length} chunks`);
      assert.equal(chunks.map((c) => c.text ?? '').join(''), `${GREETING} You said: ${PROMPT}`);
      const finishes = chunks.map((c) => c.candidates?.[0]?.finishReason).filter(Boolean);
      assert.deepEqual(finishes, [FinishReason.STOP]);
      checkUsage(chunks.at(-1).usageMetadata);
      const up = await oneUpstream(kind);
      assert.ok(upstreamStreamed(kind, up));
      assert.deepEqual(upstreamPrompt(kind, up.body), [SYSTEM, PROMPT]);
    });

    for (const stream of [false, true]) {
      test(`function call and its result in a second turn (${stream ? 'streamed' : 'not streamed'})`, async () => {
        const ai = client();
        const cfg = { tools: [{ functionDeclarations: [WEATHER] }] };
        const turn = async (contents) => {
          if (!stream) return ai.models.generateContent({ model: r.route, contents, config: cfg });
          const chunks = [];
          for await (const c of await ai.models.generateContentStream({ model: r.route, contents, config: cfg })) chunks.push(c);
          return chunks;
        };
        const question = { role: 'user', parts: [{ text: TOOL_PROMPT }] };
        await clearSeen(env.mock);
        const first = await turn([question]);
        const parts = partsOf(first);
        const calls = parts.filter((p) => p.functionCall);
        assert.equal(calls.length, 1, JSON.stringify(parts));
        const call = calls[0].functionCall;
        assert.equal(call.name, 'get_weather');
        assert.deepEqual(call.args, ARGS);
        // Gemini 3 signs its first call.
        if (kind === 'gemini') assert.ok(calls[0].thoughtSignature);
        let up = await oneUpstream(kind);
        if (kind === 'gemini') assert.deepEqual(up.body.tools[0].functionDeclarations[0], WEATHER);

        // The second turn: the model's content as the SDK returned it, then the function's result.
        await clearSeen(env.mock);
        const second = await turn([
          question,
          { role: 'model', parts },
          { role: 'user', parts: [{ functionResponse: { id: call.id, name: call.name, response: RESULT } }] },
        ]);
        const after = partsOf(second);
        assert.ok(!after.some((p) => p.functionCall), JSON.stringify(after));
        const answer = after.map((p) => p.text ?? '').join('');
        assert.ok(answer.startsWith('Tool result received:'), answer);
        assert.ok(answer.includes('sunny'), answer);
        up = await oneUpstream(kind);
        const [name, args, resultText] = upstreamToolTurn(kind, up.body);
        assert.deepEqual([name, args], ['get_weather', ARGS]);
        assert.ok(resultText.includes('sunny and 21C'), resultText);
        if (kind === 'gemini') {
          const sent = up.body.contents[1].parts.find((p) => p.functionCall);
          assert.equal(sent.thoughtSignature, calls[0].thoughtSignature);
        }
      });
    }

    for (const stream of [false, true]) {
      test(`thinking, then a function call and its result (${stream ? 'streamed' : 'not streamed'})`, async () => {
        const ai = client();
        const cfg = { tools: [{ functionDeclarations: [WEATHER] }], thinkingConfig: { includeThoughts: true, thinkingBudget: 2048 } };
        const turn = async (contents) => {
          if (!stream) return ai.models.generateContent({ model: r.route, contents, config: cfg });
          const chunks = [];
          for await (const c of await ai.models.generateContentStream({ model: r.route, contents, config: cfg })) chunks.push(c);
          return chunks;
        };
        const question = { role: 'user', parts: [{ text: THINKING_PROMPT }] };
        await clearSeen(env.mock);
        const parts = partsOf(await turn([question]));
        const thoughts = parts.filter((p) => p.thought);
        assert.ok(thoughts.length > 0 && thoughts.every((p) => p.text), JSON.stringify(parts));
        const calls = parts.filter((p) => p.functionCall);
        assert.equal(calls.length, 1, JSON.stringify(parts));
        const call = calls[0].functionCall;
        assert.deepEqual([call.name, call.args], ['get_weather', ARGS]);
        let up = await oneUpstream(kind);
        if (kind === 'anthropic') assert.ok(['enabled', 'adaptive'].includes(up.body.thinking.type), JSON.stringify(up.body.thinking));
        if (kind === 'openai') assert.ok(up.body.reasoning_effort, JSON.stringify(up.body));

        await clearSeen(env.mock);
        const second = partsOf(await turn([
          question,
          { role: 'model', parts },
          { role: 'user', parts: [{ functionResponse: { id: call.id, name: call.name, response: RESULT } }] },
        ]));
        const answer = second.filter((p) => !p.thought && !p.functionCall).map((p) => p.text ?? '').join('');
        assert.ok(answer.startsWith('Tool result received:'), answer);
        up = await oneUpstream(kind);
        const [name, args, resultText] = upstreamToolTurn(kind, up.body);
        assert.deepEqual([name, args], ['get_weather', ARGS]);
        assert.ok(resultText.includes('sunny and 21C'), resultText);
        if (kind === 'anthropic') {
          // The signed thinking block went back (the mock checks its signature).
          const assistant = up.body.messages.find((m) => m.role === 'assistant');
          assert.equal(assistant.content[0].type, 'thinking', JSON.stringify(assistant));
          assert.ok(assistant.content[0].signature);
        }
      });
    }

    for (const form of ['responseJsonSchema', 'responseSchema']) {
      test(`structured output (${form})`, async () => {
        const schemaIn = form === 'responseJsonSchema' ? CITY_SCHEMA : CITY_OPENAPI;
        await clearSeen(env.mock);
        const res = await client().models.generateContent({
          model: r.route,
          contents: 'Describe Paris as JSON',
          config: { responseMimeType: 'application/json', [form]: schemaIn },
        });
        // The mock does not write JSON; what matters is that the schema reached the provider.
        assert.ok(res.text.startsWith(GREETING), res.text);
        assert.equal(res.candidates[0].finishReason, FinishReason.STOP);
        const { body } = await oneUpstream(kind);
        const schema = upstreamSchema(kind, body);
        if (kind === 'gemini') {
          // Passed through as the SDK wrote it.
          assert.deepEqual(body.generationConfig[form], schemaIn);
        } else if (form === 'responseJsonSchema') {
          assert.deepEqual(schema, CITY_SCHEMA);
        }
        assert.deepEqual(Object.keys(schema.properties).sort(), ['city', 'population']);
        assert.deepEqual([...schema.required].sort(), ['city', 'population']);
        const types = Object.fromEntries(Object.entries(schema.properties).map(([k, v]) => [k, v.type]));
        if (kind === 'gemini' && form === 'responseSchema') {
          assert.deepEqual(types, { city: 'STRING', population: 'INTEGER' });
        } else {
          // JSON Schema for the other dialects: lower-case types.
          assert.deepEqual(types, { city: 'string', population: 'integer' });
        }
      });
    }

    test('countTokens', async () => {
      const ai = client();
      await clearSeen(env.mock);
      const res = await ai.models.countTokens({ model: r.route, contents: 'count these few words please' });
      assert.ok(Number.isInteger(res.totalTokens) && res.totalTokens > 0, JSON.stringify(res));
      const recs = await upstream(kind);
      if (kind === 'gemini') {
        // The mock counts a quarter token per byte of the body it received.
        assert.equal(recs.length, 1);
        assert.ok(recs[0].path.endsWith(':countTokens'));
        assert.equal(recs[0].body.contents[0].parts[0].text, 'count these few words please');
        assert.equal(res.totalTokens, Math.ceil(Buffer.byteLength(recs[0].raw) / 4));
      }
      const longer = await ai.models.countTokens({ model: r.route, contents: 'count these few words please '.repeat(50) });
      assert.ok(longer.totalTokens > res.totalTokens, `${longer.totalTokens} <= ${res.totalTokens}`);
    });

    test('models.list and models.get', async () => {
      const ai = client();
      const names = [];
      for await (const m of await ai.models.list()) names.push(m.name);
      assert.ok(names.includes(`models/${r.route}`), names.join(' '));
      const got = await ai.models.get({ model: r.route });
      assert.equal(got.name, `models/${r.route}`);
      assert.equal(got.displayName, r.route);
      assert.ok(got.supportedActions?.includes('generateContent'), JSON.stringify(got));
    });

    test('a wrong gateway key is refused in Gemini\'s error shape', async () => {
      const bad = client('not-the-gateway-key');
      await clearSeen(env.mock);
      const err = await bad.models.generateContent({ model: r.route, contents: 'hello' }).then(
        () => assert.fail('a wrong key was accepted'),
        (e) => e,
      );
      assert.ok(err instanceof ApiError, String(err));
      assert.ok([401, 403].includes(err.status), String(err.status));
      const body = JSON.parse(err.message);
      assert.equal(body.error.code, err.status);
      assert.ok(['UNAUTHENTICATED', 'PERMISSION_DENIED'].includes(body.error.status), err.message);
      assert.ok(body.error.message);
      const streamErr = await (async () => {
        for await (const _ of await bad.models.generateContentStream({ model: r.route, contents: 'hello' }));
      })().then(
        () => assert.fail('a wrong key was accepted (stream)'),
        (e) => e,
      );
      assert.ok(streamErr instanceof ApiError, String(streamErr));
      assert.ok([401, 403].includes(streamErr.status));
      assert.deepEqual(await upstream(kind), []);
      // The right key still works on the same gateway.
      const ok = await client().models.generateContent({ model: r.route, contents: 'hello' });
      assert.ok(ok.text.startsWith(GREETING), ok.text);
    });
  });
}

test('models.get of a model no route names is a Gemini 404', async () => {
  const err = await client().models.get({ model: 'no-such-route' }).then(
    () => assert.fail('an unknown model was found'),
    (e) => e,
  );
  assert.ok(err instanceof ApiError, String(err));
  assert.equal(err.status, 404);
  assert.equal(JSON.parse(err.message).error.status, 'NOT_FOUND');
});
