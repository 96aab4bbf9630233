// Both official TypeScript SDKs over HTTPS to ringway's TLS listener (`[server.tls]`, a
// certificate from a test CA), trusting the CA through NODE_EXTRA_CA_CERTS as users do: the
// client runs in a child node process (tls-client.mjs), since Node reads that variable only at
// start. Without the variable, the same client must refuse the certificate.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { GATEWAY_KEY, startTlsGateway } from './harness.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));

let env;
before(async () => {
  env = await startTlsGateway();
  assert.match(env.gateway.url, /^https:\/\//);
});
after(async () => {
  await env?.stop();
});

/** Runs tls-client.mjs against the gateway with `extraEnv`; resolves with its JSON line. */
function runClient(extraEnv) {
  const childEnv = { ...process.env, ...extraEnv };
  if (!('NODE_EXTRA_CA_CERTS' in extraEnv)) delete childEnv.NODE_EXTRA_CA_CERTS;
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [join(HERE, 'tls-client.mjs'), env.gateway.url, GATEWAY_KEY],
      { env: childEnv, timeout: 50_000 },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(`tls-client.mjs failed: ${err.message}\n${stderr}`));
        resolve(JSON.parse(stdout.trim().split('\n').pop()));
      },
    );
  });
}

test('both SDKs over HTTPS with NODE_EXTRA_CA_CERTS: both dialects, both provider kinds, streamed and not', async () => {
  const out = await runClient({ NODE_EXTRA_CA_CERTS: env.ca });
  assert.equal(out.error, undefined, out.error);
  for (const sdk of ['openai', 'anthropic']) {
    for (const model of ['gpt', 'claude']) {
      assert.match(out[`${sdk} ${model} whole`], /You said: hello tls$/, `${sdk} ${model}`);
      assert.match(out[`${sdk} ${model} stream`], /You said: stream tls$/, `${sdk} ${model} stream`);
    }
  }
});

test('without the CA the SDKs refuse the certificate', async () => {
  const out = await runClient({});
  assert.match(out.error ?? '', /APIConnectionError/, JSON.stringify(out));
  assert.match(out.error, /certificate|CERT/i, out.error);
});
