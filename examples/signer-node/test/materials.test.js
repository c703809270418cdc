// fetchMaterials' error mapping, against a local mutual-TLS server that answers what the test
// asks (the statuses a real hookvault rarely gives on demand: 429, 403, a malformed 200).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { fetchMaterials, MaterialsError } from '../src/materials.js';
import { makeCa, makeClientCert, makeServerCert } from './helpers/pki.js';

let tmp;
let server;
let opts;
let answer; // (req, res) => void, set per test
const seen = [];

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'signer-node-materials-'));
  const ca = await makeCa(tmp, 'ca');
  const srv = await makeServerCert(tmp, 'server', ca);
  const client = await makeClientCert(tmp, 'client', 'signer', ca);
  server = https.createServer({
    cert: fs.readFileSync(srv.cert), key: fs.readFileSync(srv.key), ca: fs.readFileSync(ca.cert),
    requestCert: true, rejectUnauthorized: true,
  }, (req, res) => {
    seen.push({ url: req.url, cn: req.socket.getPeerCertificate().subject?.CN });
    answer(req, res);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  opts = {
    url: `https://localhost:${server.address().port}/`,
    ca: fs.readFileSync(ca.cert), cert: fs.readFileSync(client.cert), key: fs.readFileSync(client.key),
  };
});

after(async () => {
  await new Promise((resolve) => server.close(resolve));
  fs.rmSync(tmp, { recursive: true, force: true });
});

const reply = (status, body, headers = {}) => (req, res) => {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
};

async function expectError(code, check = () => {}) {
  await assert.rejects(fetchMaterials({ ...opts, walletId: 'w 1/x' }), (err) => {
    assert.ok(err instanceof MaterialsError, String(err));
    assert.equal(err.code, code, err.message);
    check(err);
    return true;
  });
}

test('the request names the wallet (escaped) and the source, with the client certificate', async () => {
  answer = reply(200, { walletId: 'w 1/x', chain: 'EVM', delegatedShare: '{"secretShare":"00"}', walletApiKey: 'k', extra: 1 });
  const m = await fetchMaterials({ ...opts, walletId: 'w 1/x', source: 'dyn-2' });
  assert.deepEqual(m, { walletId: 'w 1/x', chain: 'EVM', delegatedShare: '{"secretShare":"00"}', walletApiKey: 'k' });
  assert.deepEqual(seen.at(-1), { url: '/v1/materials/w%201%2Fx?source=dyn-2', cn: 'signer' });
});

test('429 is rate_limited with Retry-After', async () => {
  answer = reply(429, { error: 'rate_limited' }, { 'retry-after': '7' });
  await expectError('rate_limited', (err) => {
    assert.equal(err.status, 429);
    assert.equal(err.retryAfterSeconds, 7);
    assert.match(err.message, /retry after 7 s/);
  });
});

test('403 is forbidden and names the missing role', async () => {
  answer = reply(403, { error: 'forbidden' });
  await expectError('forbidden', (err) => assert.match(err.message, /materials:read/));
});

test('401 is unauthorized; other statuses are http_error', async () => {
  answer = reply(401, { error: 'unauthorized' });
  await expectError('unauthorized');
  answer = reply(500, { error: 'x' });
  await expectError('http_error', (err) => assert.equal(err.status, 500));
});

test('a 200 that is not materials is bad_response, without echoing the body', async () => {
  answer = reply(200, 'secret-looking text, not json');
  await expectError('bad_response', (err) => assert.ok(!err.message.includes('secret-looking')));
  answer = reply(200, { walletId: 'w 1/x', chain: 'EVM', walletApiKey: 'k' });
  await expectError('bad_response', (err) => assert.match(err.message, /delegatedShare/));
});

test('an unanswered request times out', async () => {
  answer = () => {}; // never answers
  await assert.rejects(fetchMaterials({ ...opts, walletId: 'w', timeoutMs: 200 }), (err) => err.code === 'timeout');
});
