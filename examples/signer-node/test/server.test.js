// The HTTP front (src/server.js) with a stub signer: the answers the README documents for
// POST /sign, without hookvault or the SDK.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { MaterialsError } from '../src/materials.js';
import { SignerError } from '../src/signer.js';
import { createSignerServer } from '../src/server.js';

let server;
let base;
let behave; // the stub signer's sign(), set per test
const logs = [];
const calls = [];

before(async () => {
  const signer = { sign: async (req) => { calls.push(req); return behave(req); } };
  server = createSignerServer(signer, { log: (line) => logs.push(line) });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${server.address().port}`;
});

after(async () => {
  await new Promise((resolve) => server.close(resolve));
});

/** A raw request (so that malformed and oversized bodies go out exactly as given). */
function request(method, pathname, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${pathname}`, { method, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text, json: text ? JSON.parse(text) : undefined }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const sign = (body) => request('POST', '/sign', typeof body === 'string' ? body : JSON.stringify(body));

test('a signature is answered 200 with its hex fields', async () => {
  behave = async () => new Uint8Array([0xab, 0xcd]);
  const res = await sign({ walletId: 'w-1', message: 'hello' });
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(res.json, { walletId: 'w-1', signature: '0xabcd' });
  assert.deepEqual(calls.at(-1), { walletId: 'w-1', message: 'hello' });
  assert.deepEqual({ ...logs.at(-1), ms: 0 }, { msg: 'request', method: 'POST', path: '/sign', status: 200, error: undefined, ms: 0 });
  assert.ok(Number.isFinite(logs.at(-1).ms) && logs.at(-1).ms >= 0, `ms: ${logs.at(-1).ms}`);
});

test("hookvault's rate limit is 503 rate_limited with Retry-After", async () => {
  behave = async () => {
    throw new MaterialsError('rate_limited', 'hookvault rate-limited the request (429); retry after 7 s', { status: 429, retryAfterSeconds: 7 });
  };
  const res = await sign({ walletId: 'w-1', message: 'hello' });
  assert.equal(res.status, 503, res.text);
  assert.equal(res.headers['retry-after'], '7');
  assert.equal(res.json.error, 'rate_limited');
  assert.match(res.json.message, /retry after 7 s/);
  assert.equal(logs.at(-1).status, 503);
  assert.equal(logs.at(-1).error, 'rate_limited');
});

test('no materials is 404 not_found; other hookvault and SDK failures are 502', async () => {
  behave = async () => { throw new MaterialsError('not_found', 'no delegated materials for wallet w-1', { status: 404 }); };
  let res = await sign({ walletId: 'w-1', message: 'hello' });
  assert.equal(res.status, 404);
  assert.equal(res.json.error, 'not_found');
  behave = async () => { throw new MaterialsError('forbidden', 'hookvault refused access (403)', { status: 403 }); };
  res = await sign({ walletId: 'w-1', message: 'hello' });
  assert.equal(res.status, 502);
  assert.equal(res.json.error, 'hookvault_forbidden');
  assert.equal(res.headers['retry-after'], undefined);
  behave = async () => { throw new SignerError('sdk_failed', 'Dynamic SDK signing failed: boom'); };
  res = await sign({ walletId: 'w-1', message: 'hello' });
  assert.equal(res.status, 502);
  assert.equal(res.json.error, 'sdk_failed');
  behave = async () => { throw new Error('unexpected secret-looking text'); };
  res = await sign({ walletId: 'w-1', message: 'hello' });
  assert.equal(res.status, 500);
  assert.deepEqual(res.json, { error: 'internal' });
  assert.equal(logs.at(-1).status, 500);
  assert.doesNotMatch(JSON.stringify(logs.at(-1)), /secret-looking/);
});

test('a body that is not JSON, or lacks walletId/message, is 400 bad_request; the signer is not called', async () => {
  behave = async () => { throw new Error('the signer must not be called'); };
  const before = calls.length;
  for (const body of ['{"walletId":', 'not json', '[]', 'null', '{}', JSON.stringify({ walletId: 'w' }),
    JSON.stringify({ walletId: '', message: 'x' }), JSON.stringify({ walletId: 'w', message: 7 })]) {
    const res = await sign(body);
    assert.equal(res.status, 400, `${body}: ${res.text}`);
    assert.equal(res.json.error, 'bad_request', body);
  }
  assert.equal(calls.length, before);
});

test('a body over 64 KiB is 413 body_too_large; the signer is not called', async () => {
  behave = async () => { throw new Error('the signer must not be called'); };
  const before = calls.length;
  const res = await sign({ walletId: 'w', message: 'x'.repeat(64 * 1024) });
  assert.equal(res.status, 413, res.text);
  assert.equal(res.json.error, 'body_too_large');
  assert.equal(calls.length, before);
  // Just under the limit is read.
  behave = async () => new Uint8Array([1]);
  const fits = await sign({ walletId: 'w', message: 'x'.repeat(64 * 1024 - 64) });
  assert.equal(fits.status, 200, fits.text);
});

test('other paths are 404 and other methods 405', async () => {
  assert.equal((await request('POST', '/other', '{}')).status, 404);
  const res = await request('GET', '/sign');
  assert.equal(res.status, 405);
  assert.equal(res.headers.allow, 'POST');
});
