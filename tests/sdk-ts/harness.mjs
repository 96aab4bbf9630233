// Starts the real ringway binary and its mock provider for the TypeScript SDK tests, like
// tests/sdk/conftest.py does for the Python ones.
//
// RINGWAY_BIN names the binary (default: target/debug/ringway in this repo); RINGWAY_TEST_DRIVER
// picks the io driver (auto, io_uring, epoll), passed as --driver to both processes.

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
export const BIN = process.env.RINGWAY_BIN || resolve(HERE, '../../target/debug/ringway');
export const DRIVER = process.env.RINGWAY_TEST_DRIVER || 'auto';
export const GATEWAY_KEY = 'sdk-ts-test-key';
// A second gateway key, configured with `pii = true` (startPiiGateway only).
export const PII_KEY = 'sdk-ts-pii-key';
// Seconds a process may take to print its listening address.
const START_TIMEOUT_MS = 20_000;

const children = new Set();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

/** Spawns `args` and resolves with `http://ADDR` from the first stderr line holding `marker`. */
function startProc(args, marker) {
  return new Promise((resolveUrl, reject) => {
    const child = spawn(BIN, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    children.add(child);
    const seen = [];
    let done = false;
    const fail = (why) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`${BIN} ${args[0]} ${why}; stderr:\n${seen.join('\n')}`));
    };
    const timer = setTimeout(() => fail(`printed no '${marker}' line in ${START_TIMEOUT_MS} ms`), START_TIMEOUT_MS);
    child.on('error', (e) => fail(`could not start (${e.message})`));
    child.on('exit', (code, sig) => {
      children.delete(child);
      clearTimeout(timer);
      fail(`exited early (code ${code}, signal ${sig})`);
    });
    // Keep reading stderr for the child's whole life so it never blocks on a full pipe.
    createInterface({ input: child.stderr }).on('line', (line) => {
      if (seen.length < 200) seen.push(line);
      const at = line.indexOf(marker);
      if (done || at < 0) return;
      const url = line.slice(at + marker.length).trim().split(/\s+/)[0];
      const scheme = /^https?:\/\//.exec(url)?.[0];
      if (!scheme) return fail(`printed an unexpected line: ${line}`);
      done = true;
      clearTimeout(timer);
      resolveUrl({ url, line, addr: url.slice(scheme.length), stop: () => stopProc(child) });
    });
  });
}

function stopProc(child) {
  return new Promise((res) => {
    if (child.exitCode !== null || child.signalCode !== null) return res();
    child.once('exit', () => res());
    child.kill('SIGKILL');
  });
}

/** The mock provider and a gateway routing `gpt` to its OpenAI side and `claude` to its
 * Anthropic side, and the `[[route]]`s in `extraRoutes` (TOML; they may target the providers
 * `mo` and `ma`). Resolves with `{ mock, gateway, stop }`. */
export async function startGateway(extraRoutes = '') {
  return startWith((mockAddr) => mainRoutes(mockAddr) + extraRoutes);
}

/** startGateway's mock and routes, and a second gateway key, `PII_KEY`, whose every request
 * has PII substitution on (`pii = true` on the key). Resolves with `{ mock, gateway, stop }`. */
export async function startPiiGateway() {
  const sha = createHash('sha256').update(PII_KEY).digest('hex');
  return startWith(mainRoutes, '', `\n[[key]]\nname = "sdk-ts-pii"\nsha256 = "${sha}"\npii = true\n`);
}

/** Providers `mo` (openai kind) and `ma` (anthropic kind) on the mock at `mockAddr`, and the
 * routes `gpt` and `claude` to them (startGateway's, also served over TLS by startTlsGateway). */
function mainRoutes(mockAddr) {
  return `
[[provider]]
name = "mo"
kind = "openai"
base_url = "http://${mockAddr}/v1"

[[provider]]
name = "ma"
kind = "anthropic"
base_url = "http://${mockAddr}"

[[route]]
model = "gpt"
targets = ["mo/mock-gpt"]

[[route]]
model = "claude"
targets = ["ma/mock-claude"]
`;
}

// The failover route of fallback.test.mjs (as in tests/sdk/conftest.py): three targets, each
// its own provider on the same mock, of alternating kinds, so a fallback from the first target
// to the second changes format and one to the third changes it back. Faults are set per
// upstream model in the mock (`setFaults`).
export const FALLBACK_ROUTE = 'fo';
export const FALLBACK_TARGETS = [
  { provider: 'fa', kind: 'openai', model: 'fo-a' },
  { provider: 'fb', kind: 'anthropic', model: 'fo-b' },
  { provider: 'fc', kind: 'openai', model: 'fo-c' },
];
// Same-target retries of that route (for refused connections and retryable statuses).
export const FALLBACK_RETRIES = 1;
// Longest provider `retry-after` the route honours; a longer hint moves on at once.
export const FALLBACK_MAX_RETRY_AFTER_MS = 50;

/** The mock provider and a gateway with only the failover route `fo`. No circuit breaker (the
 * tests fault the same targets again and again, and each must see every target tried) and a
 * millisecond of backoff (retries stay fast). Resolves with `{ mock, gateway, stop }`. */
export async function startFallbackGateway() {
  return startWith((mockAddr) => {
    const providers = FALLBACK_TARGETS.map(
      (t) => `
[[provider]]
name = "${t.provider}"
kind = "${t.kind}"
base_url = "http://${mockAddr}${t.kind === 'openai' ? '/v1' : ''}"
`,
    ).join('');
    const targets = FALLBACK_TARGETS.map((t) => `"${t.provider}/${t.model}"`).join(', ');
    return `${providers}
[[route]]
model = "${FALLBACK_ROUTE}"
targets = [${targets}]
retries = ${FALLBACK_RETRIES}
backoff_base_ms = 1
backoff_max_ms = 2
max_retry_after_ms = ${FALLBACK_MAX_RETRY_AFTER_MS}
breaker_failures = 0
request_timeout_ms = 15000
`;
  });
}

// The cloud gateway (startCloudGateway): route `cb` to a bedrock-kind provider (credentials
// from the mock's container endpoint, so signed with a session token) and `cv` to a vertex-kind
// one (a static token the mock accepts), both on the mock.
export const BEDROCK_MODEL = 'anthropic.claude-haiku-4-5-20251001-v1:0';
export const VERTEX_MODEL = 'claude-haiku-4-5@20251001';
const VERTEX_TOKEN_ENV = 'RW_TEST_VERTEX_TOKEN';

/** The mock and a gateway with the routes `cb` (Bedrock) and `cv` (Vertex AI) to its cloud
 * sides. Resolves with `{ mock, gateway, stop }`. */
export async function startCloudGateway() {
  // The gateway inherits this process's environment: the vertex provider's static token.
  process.env[VERTEX_TOKEN_ENV] = 'mock-static-token';
  return startWith(
    (mockAddr) => `
[[provider]]
name = "bedrock"
kind = "bedrock"
region = "ca-central-1"
base_url = "http://${mockAddr}"
aws_credentials_url = "http://${mockAddr}/mock/aws-credentials"

[[provider]]
name = "vertex"
kind = "vertex"
project = "mock-project"
region = "us-east5"
base_url = "http://${mockAddr}"
api_key_env = "${VERTEX_TOKEN_ENV}"

[[route]]
model = "cb"
targets = ["bedrock/${BEDROCK_MODEL}"]

[[route]]
model = "cv"
targets = ["vertex/${VERTEX_MODEL}"]
`,
  );
}

// The Gemini gateway (startGeminiGateway): one route per provider kind on the mock, each provider
// with its own key (`api_key_env`, from this process's environment), for the Gemini client
// dialect. `GEMINI_ROUTES[kind]` is `{ route, provider, model, key }`.
export const GEMINI_ROUTES = {
  gemini: { route: 'gem', provider: 'gg', model: 'gemini-3-flash-preview', key: 'genai-ts-gemini-provider-key' },
  openai: { route: 'gpt', provider: 'mo', model: 'mock-gpt', key: 'genai-ts-openai-provider-key' },
  anthropic: { route: 'claude', provider: 'ma', model: 'mock-claude', key: 'genai-ts-anthropic-provider-key' },
};

/** The mock and a gateway with the routes of `GEMINI_ROUTES`: `gem` to a gemini-kind provider
 * (a Gemini 3 model, so the mock enforces thought signatures), `gpt` to an openai-kind one and
 * `claude` to an anthropic-kind one. Resolves with `{ mock, gateway, stop }`. */
export async function startGeminiGateway() {
  const tables = [];
  for (const [kind, r] of Object.entries(GEMINI_ROUTES)) {
    const env = `RW_TEST_GENAI_TS_${kind.toUpperCase()}_KEY`;
    process.env[env] = r.key;
    tables.push((mockAddr) => `
[[provider]]
name = "${r.provider}"
kind = "${kind}"
base_url = "http://${mockAddr}${kind === 'openai' ? '/v1' : ''}"
api_key_env = "${env}"

[[route]]
model = "${r.route}"
targets = ["${r.provider}/${r.model}"]
`);
  }
  return startWith((mockAddr) => tables.map((t) => t(mockAddr)).join(''));
}

/** A test CA and a certificate it signed for localhost and 127.0.0.1, made in `dir` with the
 * openssl command (CI installs it). Returns the PEM paths `{ ca, cert, key }`. */
export function makePki(dir) {
  const run = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run('req', '-x509', '-new', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=ringway SDK test CA');
  run('req', '-new', ...ec, '-keyout', 'key.pem', '-out', 'leaf.csr', '-subj', '/CN=localhost');
  writeFileSync(join(dir, 'leaf.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n');
  run('x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'cert.pem', '-days', '2', '-extfile', 'leaf.ext');
  return { ca: join(dir, 'ca.pem'), cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') };
}

/** startGateway's routes over HTTPS (`[server.tls]` with a certificate from a test CA).
 * Resolves with `{ mock, gateway, ca, stop }`; `gateway.url` is `https://…`. */
export async function startTlsGateway() {
  const pkiDir = mkdtempSync(join(tmpdir(), 'ringway-sdk-ts-pki-'));
  const pki = makePki(pkiDir);
  const env = await startWith(
    mainRoutes,
    `\n[server.tls]\ncert = "${pki.cert}"\nkey = "${pki.key}"\n`,
  );
  return {
    ...env,
    ca: pki.ca,
    async stop() {
      await env.stop();
      rmSync(pkiDir, { recursive: true, force: true });
    },
  };
}

/** Starts the mock, then a gateway whose providers and routes are `routes(mockAddr)` (the
 * worker count and the gateway key are added here; `serverTables` after `[server]`, `keys`
 * after the gateway key). */
async function startWith(routes, serverTables = '', keys = '') {
  const mock = await startProc(
    ['mock-upstream', '--listen', '127.0.0.1:0', '--driver', DRIVER],
    'mock provider listening on ',
  );
  const dir = mkdtempSync(join(tmpdir(), 'ringway-sdk-ts-'));
  const sha = createHash('sha256').update(GATEWAY_KEY).digest('hex');
  const cfg = `
[server]
workers = 2
${serverTables}
${routes(mock.addr)}
[[key]]
name = "sdk-ts"
sha256 = "${sha}"
${keys}`;
  const path = join(dir, 'ringway.toml');
  writeFileSync(path, cfg);
  let gateway;
  try {
    gateway = await startProc(
      ['serve', '--config', path, '--listen', '127.0.0.1:0', '--driver', DRIVER],
      'listening on ',
    );
    // The gateway names its driver on that line: make sure the one asked for is the one running.
    const running = / driver (\S+)/.exec(gateway.line)?.[1];
    if (DRIVER !== 'auto' && running !== DRIVER) {
      await gateway.stop();
      throw new Error(`asked for driver ${DRIVER}, the gateway says: ${gateway.line}`);
    }
  } catch (e) {
    await mock.stop();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    mock,
    gateway,
    async stop() {
      await gateway.stop();
      await mock.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function mockJson(mock, method, path, body) {
  const r = await fetch(`${mock.url}${path}`, {
    method,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${await r.text()}`);
  return r.json();
}

/** Replaces the mock's per-model fault table (`{}` clears it) and forgets earlier requests
 * and counts. */
export async function setFaults(mock, table) {
  assert.deepEqual(await mockJson(mock, 'POST', '/mock/faults', table), { ok: true });
  assert.deepEqual(await mockJson(mock, 'GET', '/mock/faults'), table);
  await mockJson(mock, 'DELETE', '/mock/requests');
}

/** The mock's per-model counts since the last `setFaults`:
 * `{ model: { requests: N, '<answered>': N, ... } }`. */
export function mockCounts(mock) {
  return mockJson(mock, 'GET', '/mock/counts');
}

/** What the mock provider received, oldest first: `[{ path, body }]`. */
export async function mockSeen(mock) {
  const r = await fetch(`${mock.url}/mock/requests`);
  if (!r.ok) throw new Error(`GET /mock/requests: ${r.status}`);
  return r.json();
}

/** Makes the mock forget the requests it received so far. */
export async function clearSeen(mock) {
  await mockJson(mock, 'DELETE', '/mock/requests');
}

/** The last request the mock received: its path and parsed body. */
export async function lastSent(mock) {
  const all = await mockSeen(mock);
  const rec = all[all.length - 1];
  return { path: rec.path, body: JSON.parse(rec.body) };
}

/** A `fetch` for an SDK client that records the path of every request it sends, so a test can
 * check which URL a base-URL form really produced. */
export function recordingFetch() {
  const paths = [];
  const f = (input, init) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    paths.push(new URL(url).pathname);
    return fetch(input, init);
  };
  return { fetch: f, paths };
}

// Tool definitions in both formats (the same as tests/sdk/test_same_format.py).
const WEATHER_PARAMS = {
  type: 'object',
  properties: { city: { type: 'string' }, days: { type: 'integer' } },
  required: ['city', 'days'],
};
export const WEATHER_O = {
  type: 'function',
  function: { name: 'get_weather', description: 'Weather for a city', parameters: WEATHER_PARAMS },
};
export const TIME_O = { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: {} } } };
export const WEATHER_A = { name: 'get_weather', description: 'Weather for a city', input_schema: WEATHER_PARAMS };
export const TIME_A = { name: 'get_time', input_schema: { type: 'object', properties: {} } };
