// End to end against a real hookvault: `hookvault init`, `hookvault serve`, a signed and
// encrypted `wallet.delegation.created` webhook delivered to the public listener, then the
// signer fetching the materials over mutual TLS from the admin listener and handing them to
// @dynamic-labs-wallet/node. Dynamic's side is played on loopback (see helpers/fake-dynamic.js).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageHash } from '@dynamic-labs-wallet/node';

import { fetchMaterials, MaterialsError } from '../src/materials.js';
import { createSigner } from '../src/signer.js';
import { createSignerServer } from '../src/server.js';
import { hookvaultBin, initHookvault, prepareConfig, startHookvault } from './helpers/hookvault.js';
import { delegationCreatedEvent, signedDelivery } from './helpers/dynamic-webhook.js';
import { startFakeDynamicApi, startFakeRelay, spyOnMpcSigning } from './helpers/fake-dynamic.js';
import { allowOnlyLoopback } from './helpers/loopback-only.js';
import { makeCa, makeClientCert } from './helpers/pki.js';


// What Dynamic would send: a share shaped like an EVM share (JSON made in the user's browser,
// with a secretShare string; the value is synthetic) and a per-wallet API key.
const walletId = crypto.randomUUID();
const userId = crypto.randomUUID();
const shareSetId = crypto.randomUUID();
const secretShare = crypto.randomBytes(96).toString('hex');
const share = JSON.stringify({ pubkey: { pubkey: Object.fromEntries([...crypto.randomBytes(65)].map((b, i) => [i, b])) }, secretShare });
const walletApiKey = `wk_${crypto.randomBytes(24).toString('base64url')}`;
const environmentId = crypto.randomUUID();
const environmentApiKey = `dyn_${crypto.randomBytes(24).toString('base64url')}`;
const secrets = [secretShare, walletApiKey, environmentApiKey];

let tmp;
let guard;
let serve;
let hv;
let adminUrl;
let deliveredEventId;
let fakeApi;
let relay;
let hookvaultOpts;

function post(port, pathname, { body, headers }, ca) {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: pathname, method: 'POST', headers, ca }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function postJson(url, body) {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    .then(async (r) => ({ status: r.status, text: await r.text() }));
}

/** Tees everything written to stdout/stderr while `fn` runs (the writes still go through). */
async function captureOutput(fn) {
  let out = '';
  const originals = [process.stdout.write, process.stderr.write];
  for (const stream of [process.stdout, process.stderr]) {
    const original = stream.write;
    stream.write = function write(chunk, ...rest) {
      out += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
      return original.call(this, chunk, ...rest);
    };
  }
  try {
    const result = await fn();
    return { result, out };
  } finally {
    [process.stdout.write, process.stderr.write] = originals;
  }
}

before(async () => {
  guard = allowOnlyLoopback();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'signer-node-'));
  const bin = hookvaultBin();
  hv = await initHookvault(bin, path.join(tmp, 'hv'));
  prepareConfig(hv.config);
  serve = await startHookvault(bin, hv.config, { want: ['public', 'admin'] });
  adminUrl = `https://127.0.0.1:${serve.ports.admin}`; // the admin certificate names 127.0.0.1 and localhost
  hookvaultOpts = {
    url: adminUrl,
    ca: fs.readFileSync(hv.adminCa),
    cert: fs.readFileSync(hv.signerCert),
    key: fs.readFileSync(hv.signerKey),
    source: 'dynamic',
  };

  // Dynamic delivers the delegation to the public listener.
  const event = delegationCreatedEvent({
    publicKeyPem: fs.readFileSync(hv.dynamicPublicKey, 'utf8'),
    walletId, userId, share, walletApiKey, shareSetId,
  });
  deliveredEventId = event.eventId;
  const secret = fs.readFileSync(hv.webhookSecretFile, 'utf8').replace(/\r?\n$/, '');
  const res = await post(serve.ports.public, '/webhooks/dynamic', signedDelivery(event, secret), fs.readFileSync(hv.publicCa));
  assert.equal(res.status, 200, `webhook delivery: ${res.text}`);
  assert.equal(JSON.parse(res.text).status, 'accepted');

  fakeApi = await startFakeDynamicApi({ environmentId });
  relay = await startFakeRelay();
});

after(async () => {
  guard?.restore();
  await fakeApi?.close();
  await relay?.close();
  if (serve) {
    const { code, signal } = await serve.stop();
    assert.ok(code === 0 || signal === 'SIGTERM', `hookvault exit: code ${code}, signal ${signal}`);
  }
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('fetchMaterials returns the share and the wallet API key exactly as Dynamic sent them', async () => {
  const m = await fetchMaterials({ ...hookvaultOpts, walletId });
  assert.equal(m.delegatedShare, share);
  assert.equal(m.walletApiKey, walletApiKey);
  assert.equal(m.walletId, walletId);
  assert.equal(m.userId, userId);
  assert.equal(m.chain, 'EVM');
  assert.equal(m.shareSetId, shareSetId);
  assert.equal(m.eventId, deliveredEventId);
});

test('POST /sign hands the exact share and wallet API key to the SDK; the test stops at Dynamic', async () => {
  const spies = spyOnMpcSigning();
  const signer = createSigner({
    hookvault: hookvaultOpts,
    dynamic: { environmentId, apiKey: environmentApiKey, baseApiUrl: fakeApi.url, baseMPCRelayApiUrl: relay.host },
  });
  const logs = [];
  const server = createSignerServer(signer, { log: (line) => logs.push(JSON.stringify(line)) });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const message = 'hello from hookvault';
  let res;
  let out;
  try {
    ({ result: res, out } = await captureOutput(() =>
      postJson(`http://127.0.0.1:${server.address().port}/sign`, { walletId, message })));
  } finally {
    spies.restore();
    await new Promise((resolve) => server.close(resolve));
  }
  assert.equal(fakeApi.requests.length, 2, 'requests to the Dynamic API');

  // 1. The SDK looked the wallet up with the environment's server API key.
  const [lookup, signRequest] = fakeApi.requests.slice(-2);
  assert.equal(lookup.method, 'GET');
  assert.equal(lookup.url, `/api/v0/environments/${environmentId}/waas/${walletId}`);
  assert.equal(lookup.headers.authorization, `Bearer ${environmentApiKey}`);

  // 2. The signing request carries hookvault's wallet API key, byte for byte, in the header the
  //    SDK uses for it, and the message.
  assert.equal(signRequest.method, 'POST');
  assert.equal(signRequest.url, `/api/v0/environments/${environmentId}/waas/${walletId}/delegatedAccess/signMessage`);
  assert.equal(signRequest.headers['x-dyn-wallet-api-key'], walletApiKey);
  assert.equal(signRequest.headers.authorization, `Bearer ${environmentApiKey}`);
  assert.deepEqual(JSON.parse(signRequest.body), { message, isFormatted: false });

  // 3. The SDK's MPC signer got the share exactly as Dynamic sent it (same JSON text), in the
  //    room Dynamic opened; the native call got its secretShare and the loopback relay.
  assert.equal(spies.signerCalls.length, 1);
  assert.equal(JSON.stringify(spies.signerCalls[0].keyShare), share);
  assert.equal(spies.signerCalls[0].roomId, fakeApi.roomId);
  assert.equal(spies.nativeCalls.length, 1);
  const native = spies.nativeCalls[0];
  assert.equal(native.secretShare, secretShare);
  assert.equal(native.roomId, fakeApi.roomId);
  assert.equal(native.hostUrl, relay.host);
  assert.equal(native.msgHex, MessageHash.keccak256(message).toHex());

  // Where it stops: the SDK's native MPC code parses the share before dialing the relay; this
  // share is synthetic (a real one comes out of Dynamic's reshare ceremony), so the native code
  // rejects it and no relay connection is made. The signer reports that as an SDK failure.
  assert.equal(res.status, 502, res.text);
  const answer = JSON.parse(res.text);
  assert.equal(answer.error, 'sdk_failed');
  assert.match(answer.message, /Invalid secret share/);
  assert.equal(relay.connections.length, 0);
  assert.deepEqual(guard.blocked, []);

  // No secret in the answer, the service's log lines, or anything printed meanwhile (the SDK
  // logs its native error; that line is captured here too).
  assert.match(out, /Error in delegatedSign/);
  for (const s of secrets) {
    assert.ok(!res.text.includes(s), 'answer leaks a secret');
    assert.ok(!logs.join('\n').includes(s), 'log leaks a secret');
    assert.ok(!out.includes(s), 'output leaks a secret');
  }
  assert.match(logs.at(-1), /"status":502/);
});

test('an unknown wallet is a clear 404 error and Dynamic is never called', async () => {
  const signer = createSigner({
    hookvault: hookvaultOpts,
    dynamic: { environmentId, apiKey: environmentApiKey, baseApiUrl: fakeApi.url, baseMPCRelayApiUrl: relay.host },
  });
  const calls = fakeApi.requests.length;
  const unknown = crypto.randomUUID();
  await assert.rejects(signer.sign({ walletId: unknown, message: 'x' }), (err) => {
    assert.ok(err instanceof MaterialsError);
    assert.equal(err.code, 'not_found');
    assert.equal(err.status, 404);
    assert.match(err.message, new RegExp(`no delegated materials for wallet ${unknown}`));
    return true;
  });
  assert.equal(fakeApi.requests.length, calls);
});

test('a client certificate from another CA fails the TLS handshake', async () => {
  const dir = path.join(tmp, 'other-ca');
  fs.mkdirSync(dir);
  const otherCa = await makeCa(dir, 'other-ca');
  const impostor = await makeClientCert(dir, 'impostor', 'signer', otherCa);
  await assert.rejects(
    fetchMaterials({ ...hookvaultOpts, cert: fs.readFileSync(impostor.cert), key: fs.readFileSync(impostor.key), walletId }),
    (err) => {
      assert.ok(err instanceof MaterialsError);
      assert.equal(err.code, 'tls', `${err.code}: ${err.message}`);
      assert.equal(err.status, undefined);
      return true;
    },
  );
});

test("the admin listener's certificate must chain to the configured CA", async () => {
  const dir = path.join(tmp, 'wrong-trust');
  fs.mkdirSync(dir);
  const otherCa = await makeCa(dir, 'unrelated-ca');
  for (const ca of [fs.readFileSync(otherCa.cert), fs.readFileSync(hv.publicCa)]) {
    await assert.rejects(fetchMaterials({ ...hookvaultOpts, ca, walletId }), (err) => {
      assert.ok(err instanceof MaterialsError);
      assert.equal(err.code, 'tls', `${err.code}: ${err.message}`);
      return true;
    });
  }
});

test('a certificate from the admin CA whose name has no role is refused', async () => {
  const dir = path.join(tmp, 'no-role');
  fs.mkdirSync(dir);
  const adminCa = { cert: hv.adminCa, key: hv.adminCaKey };
  const stranger = await makeClientCert(dir, 'stranger', 'not-a-signer', adminCa);
  await assert.rejects(
    fetchMaterials({ ...hookvaultOpts, cert: fs.readFileSync(stranger.cert), key: fs.readFileSync(stranger.key), walletId }),
    (err) => {
      assert.ok(err instanceof MaterialsError);
      // hookvault answers an unknown CN with 403 forbidden (401 is for no certificate at all).
      assert.equal(err.code, 'forbidden', `${err.code}: ${err.message}`);
      assert.equal(err.status, 403);
      assert.match(err.message, /\(403\)/);
      return true;
    },
  );
});

test('for EVM a 0x… message is signed as the bytes it spells: keccak256 of them, no EIP-191 prefix', async () => {
  const spies = spyOnMpcSigning();
  const signer = createSigner({
    hookvault: hookvaultOpts,
    dynamic: { environmentId, apiKey: environmentApiKey, baseApiUrl: fakeApi.url, baseMPCRelayApiUrl: relay.host },
  });
  const calls = fakeApi.requests.length;
  const message = `0x${Buffer.from('hello').toString('hex')}`; // 0x68656c6c6f
  try {
    await assert.rejects(signer.sign({ walletId, message }), (err) => {
      assert.equal(err.code, 'sdk_failed', err.message); // the synthetic share stops it, as above
      return true;
    });
  } finally {
    spies.restore();
  }
  const signRequest = fakeApi.requests.slice(calls).find((r) => r.method === 'POST');
  assert.deepEqual(JSON.parse(signRequest.body), { message, isFormatted: false });
  assert.equal(spies.nativeCalls.length, 1);
  const hashed = spies.nativeCalls[0].msgHex.replace(/^0x/, '');
  // keccak256("hello"), the published value: the five bytes, not the 12 characters "0x68656c6c6f"
  // (whose hash is MessageHash.keccak256(message)), and not "\x19Ethereum Signed Message:\n5hello".
  assert.equal(hashed, '1c8aff950685c2ed4bc3174f3472287b56d9517b9c948127319a09a7a36deac8');
  assert.notEqual(hashed, MessageHash.keccak256(message).toHex().replace(/^0x/, ''));
  assert.equal(relay.connections.length, 0);
});

test('the CLI signs through the same path, configured from the environment', async () => {
  const main = fileURLToPath(new URL('../src/main.js', import.meta.url));
  const preload = fileURLToPath(new URL('./helpers/loopback-preload.js', import.meta.url));
  const keyFile = path.join(tmp, 'dynamic_api_key');
  fs.writeFileSync(keyFile, `${environmentApiKey}\n`, { mode: 0o600 });
  const env = {
    PATH: process.env.PATH,
    HOOKVAULT_ADMIN_URL: adminUrl,
    HOOKVAULT_CA: hv.adminCa,
    HOOKVAULT_CLIENT_CERT: hv.signerCert,
    HOOKVAULT_CLIENT_KEY: hv.signerKey,
    DYNAMIC_ENVIRONMENT_ID: environmentId,
    DYNAMIC_API_KEY_FILE: keyFile,
    DYNAMIC_API_URL: fakeApi.url,
    DYNAMIC_MPC_RELAY_URL: relay.host,
  };
  const run = (...args) => new Promise((resolve) => {
    execFile(process.execPath, ['--import', preload, main, ...args], { env, timeout: 60000 },
      (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stdout, stderr }));
  });

  const unknown = await run('sign', crypto.randomUUID(), 'x');
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /^hookvault-signer: no delegated materials for wallet /m);

  const calls = fakeApi.requests.length;
  const known = await run('sign', walletId, 'hello from the CLI');
  assert.equal(known.code, 1, known.stderr);
  assert.match(known.stderr, /hookvault-signer: Dynamic SDK signing failed: Invalid secret share/);
  const signRequest = fakeApi.requests.slice(calls).find((r) => r.method === 'POST');
  assert.equal(signRequest.headers['x-dyn-wallet-api-key'], walletApiKey);
  assert.equal(signRequest.headers.authorization, `Bearer ${environmentApiKey}`);
  assert.equal(relay.connections.length, 0);
  for (const s of secrets) {
    assert.ok(!known.stdout.includes(s) && !known.stderr.includes(s), 'CLI output leaks a secret');
  }
});
