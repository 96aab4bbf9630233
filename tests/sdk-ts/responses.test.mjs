// The official OpenAI TypeScript SDK's `responses` resource (`POST /v1/responses`) through the
// real ringway binary (the same matrix as tests/sdk/test_responses.py): to `gpt` (an
// OpenAI-kind provider: Responses → Chat Completions) and to `claude` (an Anthropic-kind
// provider: Responses → Messages). The mock provider is steered by directives in the prompt
// (src/mock/script.rs); what it received is read back from its `/mock/requests` record.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { deflateSync } from 'node:zlib';
import OpenAI from 'openai';

import { GATEWAY_KEY, lastSent, startGateway } from './harness.mjs';

let env;
let oai;
before(async () => {
  env = await startGateway();
  oai = new OpenAI({ apiKey: GATEWAY_KEY, baseURL: `${env.gateway.url}/v1`, maxRetries: 0, timeout: 20_000 });
});
after(async () => {
  await env?.stop();
});

const TARGETS = [
  { model: 'gpt', how: 'openai kind', callPrefix: 'call_' },
  { model: 'claude', how: 'anthropic kind', callPrefix: 'toolu_' },
];

const WEATHER_TOOL = {
  type: 'function',
  name: 'get_weather',
  description: 'Weather for a city',
  parameters: {
    type: 'object',
    properties: { city: { type: 'string' } },
    required: ['city'],
    additionalProperties: false,
  },
  strict: true,
};
const TOOL_PROMPT = 'What is the weather? mock:tool=get_weather mock:args={"city":"Paris"}';
const THINKING_PROMPT = `mock:thinking ${TOOL_PROMPT}`;
const REASONING = {
  reasoning: { effort: 'low', summary: 'auto' },
  include: ['reasoning.encrypted_content'],
  store: false,
  tools: [WEATHER_TOOL],
};
// `ResponseError.code` in the SDK's types (resources/responses/responses.d.ts): a closed union.
const ERROR_CODES = [
  'server_error', 'rate_limit_exceeded', 'invalid_prompt', 'data_residency_mismatch', 'bio_policy',
  'vector_store_timeout', 'invalid_image', 'invalid_image_format', 'invalid_base64_image',
  'invalid_image_url', 'image_too_large', 'image_too_small', 'image_parse_error',
  'image_content_policy_violation', 'invalid_image_mode', 'image_file_too_large',
  'unsupported_image_media_type', 'empty_image_file', 'failed_to_download_image', 'image_file_not_found',
];

function crc32(buf) {
  let c = ~0;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

/** A valid 2×2 RGB PNG, built here, as a data URL. */
function pngDataUrl(width = 2, height = 2) {
  const chunk = (kind, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(kind, 'latin1'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const row = Buffer.concat([Buffer.from([0]), Buffer.from('ff0000'.repeat(width), 'hex')]);
  const png = Buffer.concat([
    Buffer.from('89504e470d0a1a0a', 'hex'),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(Buffer.concat(Array(height).fill(row)))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
  return `data:image/png;base64,${png.toString('base64')}`;
}

async function collect(iterable) {
  const events = [];
  for await (const ev of iterable) events.push(ev);
  return events;
}

/** Lifecycle order and sequence numbers of a whole stream. */
function assertSequence(events) {
  const types = events.map((e) => e.type);
  assert.deepEqual(types.slice(0, 2), ['response.created', 'response.in_progress'], types.join(' '));
  assert.equal(types.at(-1), 'response.completed', types.join(' '));
  const seq = events.map((e) => e.sequence_number);
  assert.equal(seq[0], 0, seq.join(' '));
  for (let i = 1; i < seq.length; i++) assert.ok(seq[i] > seq[i - 1], seq.join(' '));
}

const deltasOf = (events, type) =>
  events
    .filter((e) => e.type === type)
    .map((e) => e.delta)
    .join('');
const callsOf = (r) => r.output.filter((o) => o.type === 'function_call');

for (const t of TARGETS) {
  describe(`OpenAI SDK responses -> ${t.model} (${t.how})`, () => {
    test('compact, then continue from the compaction item', async () => {
      const history = [
        { role: 'user', content: 'Plan the trip to Paris.' },
        { role: 'assistant', content: [{ type: 'output_text', text: 'Day one: the Louvre.' }] },
      ];
      const c = await oai.responses.compact({ model: t.model, input: history });
      assert.equal(c.object, 'response.compaction');
      assert.deepEqual(c.output.map((o) => o.type), ['compaction']);
      assert.ok(c.output[0].encrypted_content.startsWith('rw1.'));
      assert.ok(!c.output[0].encrypted_content.includes('Louvre'));
      assert.ok(JSON.stringify((await lastSent(env.mock)).body).includes('Summarise the conversation so far'));
      const r = await oai.responses.create({
        model: t.model,
        input: [c.output[0], { role: 'user', content: 'Go on. mock:tokens=2' }],
      });
      assert.equal(r.output_text, 'w1 w2');
      const sent = JSON.stringify((await lastSent(env.mock)).body);
      assert.ok(sent.includes('The earlier part of this conversation was compacted'), sent);
    });

    test('text, not streamed', async () => {
      const r = await oai.responses.create({ model: t.model, input: 'hello gateway' });
      assert.ok(r.id.startsWith('resp_'), r.id);
      assert.equal(r.object, 'response');
      assert.equal(r.status, 'completed');
      assert.equal(r.output[0].type, 'message');
      assert.equal(r.output[0].role, 'assistant');
      assert.ok(r.output_text.endsWith('You said: hello gateway'), r.output_text);
      assert.ok(r.usage.input_tokens > 0);
      assert.ok(r.usage.output_tokens > 0);
      assert.equal(r.usage.total_tokens, r.usage.input_tokens + r.usage.output_tokens);
    });

    test('text, stream helper', async () => {
      const s = oai.responses.stream({ model: t.model, input: 'mock:tokens=5' });
      const events = await collect(s);
      const final = await s.finalResponse();
      assertSequence(events);
      const deltas = deltasOf(events, 'response.output_text.delta');
      assert.equal(deltas, 'w1 w2 w3 w4 w5');
      assert.equal(final.output_text, deltas);
      assert.equal(final.status, 'completed');
      assert.ok(final.id.startsWith('resp_'), final.id);
      assert.ok(final.usage.input_tokens > 0 && final.usage.output_tokens > 0);
    });

    test('text, stream: true raw iteration', async () => {
      const stream = await oai.responses.create({ model: t.model, input: 'mock:tokens=4', stream: true });
      const events = await collect(stream);
      assertSequence(events);
      const deltas = deltasOf(events, 'response.output_text.delta');
      assert.equal(deltas, 'w1 w2 w3 w4');
      assert.deepEqual(
        events.filter((e) => e.type === 'response.output_text.done').map((e) => e.text),
        [deltas],
      );
      const completed = events.at(-1).response;
      assert.equal(completed.status, 'completed');
      assert.equal(completed.output[0].content[0].text, deltas);
      assert.ok(completed.usage.output_tokens > 0);
      assert.equal((await lastSent(env.mock)).body.stream, true);
    });

    test('function call, not streamed', async () => {
      const r = await oai.responses.create({ model: t.model, input: TOOL_PROMPT, tools: [WEATHER_TOOL] });
      assert.equal(r.status, 'completed');
      const calls = callsOf(r);
      assert.equal(calls.length, 1, JSON.stringify(r.output));
      assert.equal(calls[0].name, 'get_weather');
      assert.ok(calls[0].call_id.startsWith(t.callPrefix), calls[0].call_id);
      assert.deepEqual(JSON.parse(calls[0].arguments), { city: 'Paris' });
    });

    test('function call, streamed arguments', async () => {
      const s = oai.responses.stream({ model: t.model, input: TOOL_PROMPT, tools: [WEATHER_TOOL] });
      const events = await collect(s);
      const final = await s.finalResponse();
      assertSequence(events);
      const deltas = events.filter((e) => e.type === 'response.function_call_arguments.delta');
      assert.ok(deltas.length > 0, events.map((e) => e.type).join(' '));
      const done = events.filter((e) => e.type === 'response.function_call_arguments.done');
      assert.equal(done.length, 1);
      assert.equal(deltas.map((e) => e.delta).join(''), done[0].arguments);
      assert.equal(done[0].name, 'get_weather');
      assert.deepEqual(JSON.parse(done[0].arguments), { city: 'Paris' });
      const calls = callsOf(final);
      assert.deepEqual(calls.map((c) => c.name), ['get_weather']);
      assert.equal(calls[0].arguments, done[0].arguments);
      assert.ok(calls[0].call_id.startsWith(t.callPrefix), calls[0].call_id);
    });

    test('tool round trip: output items and function_call_output back', async () => {
      const first = await oai.responses.create({ model: t.model, input: TOOL_PROMPT, tools: [WEATHER_TOOL] });
      const [call] = callsOf(first);
      assert.ok(call, JSON.stringify(first.output));
      const second = await oai.responses.create({
        model: t.model,
        tools: [WEATHER_TOOL],
        input: [
          { role: 'user', content: TOOL_PROMPT },
          ...first.output,
          { type: 'function_call_output', call_id: call.call_id, output: '22C and sunny' },
        ],
      });
      assert.equal(second.status, 'completed');
      assert.equal(second.output.at(-1).type, 'message');
      assert.ok(second.output_text.startsWith('Tool result received'), second.output_text);
      assert.ok(second.output_text.includes('22C and sunny'), second.output_text);
      const sent = await lastSent(env.mock);
      assert.ok(JSON.stringify(sent.body).includes(call.call_id));
    });

    test('input_image data URL in a user message', async () => {
      const url = pngDataUrl();
      const r = await oai.responses.create({
        model: t.model,
        input: [
          {
            role: 'user',
            content: [
              { type: 'input_text', text: 'what is in this image' },
              { type: 'input_image', image_url: url, detail: 'auto' },
            ],
          },
        ],
      });
      assert.equal(r.status, 'completed');
      assert.ok(r.output_text.endsWith('You said: what is in this image'), r.output_text);
      const sent = await lastSent(env.mock);
      assert.ok(JSON.stringify(sent.body).includes(url.split(',')[1]));
    });

    test('structured output: a json_schema text format is accepted', async () => {
      const r = await oai.responses.create({
        model: t.model,
        input: 'answer in json',
        text: {
          format: {
            type: 'json_schema',
            name: 'x',
            strict: true,
            schema: {
              type: 'object',
              properties: { answer: { type: 'string' } },
              required: ['answer'],
              additionalProperties: false,
            },
          },
        },
      });
      assert.equal(r.status, 'completed');
      assert.ok(r.output_text, JSON.stringify(r.output));
      assert.equal(r.text.format.type, 'json_schema');
    });

    test('provider 429 is a RateLimitError, streamed or not', async () => {
      await assert.rejects(oai.responses.create({ model: t.model, input: 'mock:status=429' }), OpenAI.RateLimitError);
      await assert.rejects(
        oai.responses.create({ model: t.model, input: 'mock:status=429', stream: true }),
        OpenAI.RateLimitError,
      );
    });

    test('an unknown previous_response_id is a BadRequestError naming it', async () => {
      await assert.rejects(
        oai.responses.create({ model: t.model, input: 'hi', previous_response_id: 'resp_x' }),
        (e) => {
          assert.ok(e instanceof OpenAI.BadRequestError, String(e));
          assert.equal(e.code, 'previous_response_not_found');
          assert.equal(e.param, 'previous_response_id');
          return true;
        },
      );
    });

    test('a request without input is a BadRequestError', async () => {
      await assert.rejects(oai.responses.create({ model: t.model }), OpenAI.BadRequestError);
    });

    test('mid-stream provider failure: raw stream ends in response.failed after some text', async () => {
      const stream = await oai.responses.create({
        model: t.model,
        input: 'mock:midstream_error mock:tokens=9',
        stream: true,
      });
      const events = await collect(stream);
      const types = events.map((e) => e.type);
      assert.deepEqual(types.slice(0, 2), ['response.created', 'response.in_progress'], types.join(' '));
      assert.equal(types.at(-1), 'response.failed', types.join(' '));
      assert.ok(!types.includes('response.completed'), types.join(' '));
      assert.equal(deltasOf(events, 'response.output_text.delta'), 'w1 w2 w3');
      const failed = events.at(-1).response;
      assert.equal(failed.status, 'failed');
      assert.ok(failed.error.message);
      assert.ok(ERROR_CODES.includes(failed.error.code), `error.code ${failed.error.code} is not in the SDK's union`);
    });

    test('provider connection reset mid-stream: response.failed after some text', async () => {
      const stream = await oai.responses.create({ model: t.model, input: 'mock:reset mock:tokens=9', stream: true });
      const events = await collect(stream);
      assert.equal(events.at(-1).type, 'response.failed', events.map((e) => e.type).join(' '));
      assert.equal(deltasOf(events, 'response.output_text.delta'), 'w1 w2 w3');
      const failed = events.at(-1).response;
      assert.equal(failed.status, 'failed');
      assert.ok(failed.error.message);
      assert.ok(ERROR_CODES.includes(failed.error.code), `error.code ${failed.error.code} is not in the SDK's union`);
    });

    test('mid-stream provider failure: stream helper resolves with a failed response', async () => {
      const s = oai.responses.stream({ model: t.model, input: 'mock:midstream_error mock:tokens=9' });
      const events = await collect(s);
      const final = await s.finalResponse();
      assert.equal(deltasOf(events, 'response.output_text.delta'), 'w1 w2 w3');
      assert.equal(events.at(-1).type, 'response.failed');
      assert.equal(final.status, 'failed');
      assert.ok(final.error.message);
    });
  });
}

describe('OpenAI SDK responses -> claude: reasoning round trip', () => {
  function checkReasoning(r) {
    assert.equal(r.status, 'completed');
    assert.deepEqual(r.output.map((o) => o.type), ['reasoning', 'function_call']);
    const item = r.output[0];
    assert.ok(item.encrypted_content?.startsWith('rw1.'), String(item.encrypted_content));
    const summary = item.summary.map((s) => s.text).join('');
    assert.ok(summary.trim(), JSON.stringify(item.summary));
    assert.deepEqual(JSON.parse(r.output[1].arguments), { city: 'Paris' });
    return summary;
  }

  test('reasoning item with encrypted_content goes back with the tool result', async () => {
    const first = await oai.responses.create({ model: 'claude', input: THINKING_PROMPT, ...REASONING });
    const summary = checkReasoning(first);
    const call = first.output[1];
    const second = await oai.responses.create({
      model: 'claude',
      input: [
        { role: 'user', content: THINKING_PROMPT },
        ...first.output,
        { type: 'function_call_output', call_id: call.call_id, output: 'rainy' },
      ],
      ...REASONING,
    });
    assert.equal(second.status, 'completed');
    assert.ok(second.output_text.startsWith('Tool result received'), second.output_text);
    // The thinking block went back to the provider, signed, before the tool call.
    const sent = await lastSent(env.mock);
    const assistant = sent.body.messages.filter((m) => m.role === 'assistant');
    assert.equal(assistant.length, 1, JSON.stringify(sent.body.messages));
    const blocks = assistant[0].content;
    assert.deepEqual(blocks.map((b) => b.type), ['thinking', 'tool_use']);
    assert.equal(blocks[0].thinking, summary);
    assert.ok(blocks[0].signature);
    assert.equal(blocks[1].id, call.call_id);
  });

  test('reasoning, streamed with the helper', async () => {
    const s = oai.responses.stream({ model: 'claude', input: THINKING_PROMPT, ...REASONING });
    const events = await collect(s);
    const final = await s.finalResponse();
    assertSequence(events);
    const summary = checkReasoning(final);
    assert.equal(deltasOf(events, 'response.reasoning_summary_text.delta'), summary);
    assert.deepEqual(JSON.parse(deltasOf(events, 'response.function_call_arguments.delta')), { city: 'Paris' });
  });
});
