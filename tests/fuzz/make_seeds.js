#!/usr/bin/env node
// Writes the fuzz targets' seed corpora (tests/fuzz/corpus/<target>/) and the
// JSON agreement corpus (tests/fuzz/json-node/): run it after changing it and
// commit what it writes. Deterministic: the same files every run.
//
// Seeds of delegations carry AES-256-GCM fields made with the test constant
// kAesKey (0x42 x 32, the same constant as in fuzz_request.cpp and
// fuzz_hybrid.cpp) and "{{ek}}" where the RSA-wrapped key goes: the fuzz
// targets put there the wrap of kAesKey to the RSA key they make at start.
// The JSON agreement corpus: for each input corpus/json/<n>, Node's own
// JSON.stringify(JSON.parse(input)) in json-node/<n> ("" when Node refuses it).
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const here = __dirname;
const kAesKey = Buffer.alloc(32, 0x42);

function write(dir, name, data) {
  fs.mkdirSync(dir, {recursive: true});
  fs.writeFileSync(path.join(dir, name), data);
}
function corpus(target, name, data) { write(path.join(here, 'corpus', target), name, data); }

// A deterministic byte stream (xorshift32) for IVs and random numbers.
let state = 0x9e3779b9;
function next() {
  state ^= state << 13; state >>>= 0;
  state ^= state >>> 17;
  state ^= state << 5; state >>>= 0;
  return state;
}
function bytes(n) { const b = Buffer.alloc(n); for (let i = 0; i < n; i++) b[i] = next() & 0xff; return b; }
const b64url = (b) => b.toString('base64url');

function envelope(plain, opts = {}) {
  const iv = bytes(16);
  const c = crypto.createCipheriv('aes-256-gcm', kAesKey, iv);
  const ct = Buffer.concat([c.update(Buffer.from(plain)), c.final()]);
  const e = {alg: opts.alg || 'HYBRID-RSA-AES-256', iv: b64url(iv), ct: b64url(ct),
             tag: b64url(c.getAuthTag()), ek: '{{ek}}'};
  if (opts.padded) { e.iv = iv.toString('base64'); e.ct = ct.toString('base64'); }
  if (opts.kid) e.kid = opts.kid;
  return e;
}

// --- hybrid -----------------------------------------------------------------
const share = '{"pubkey":{"pubkey":{"0":4,"1":17}},"secretShare":"00ff"}';
corpus('hybrid', 'valid.json', JSON.stringify(envelope(share)));
corpus('hybrid', 'valid-kid.json', JSON.stringify(envelope('dyn_api_key_1', {kid: 'fuzz-kid'})));
corpus('hybrid', 'other-kid.json', JSON.stringify(envelope('x', {kid: 'dynamic_rsa_other'})));
corpus('hybrid', 'padded-base64.json', JSON.stringify(envelope('dyn_api_key_2', {padded: true})));
corpus('hybrid', 'unknown-alg.json', JSON.stringify(envelope('x', {alg: 'RSA-AES-128'})));
corpus('hybrid', 'empty-ct.json', JSON.stringify(envelope('')));
corpus('hybrid', 'missing-tag.json', JSON.stringify((({tag, ...r}) => r)(envelope('x'))));
corpus('hybrid', 'not-an-object.json', '["HYBRID-RSA-AES-256"]');
corpus('hybrid', 'short-ek.json', JSON.stringify({...envelope('x'), ek: b64url(bytes(32))}));

// --- signature --------------------------------------------------------------
corpus('signature', 'dynamic-header', 'sha256=' + bytes(32).toString('hex'));
corpus('signature', 'dynamic-header-upper', '  SHA256=' + bytes(32).toString('hex').toUpperCase() + ' ');
corpus('signature', 'nodit-header', bytes(32).toString('hex'));
corpus('signature', 'body-spaced', '{ "eventName" : "ping", "data" : { "n" : 1.50, "s" : "a\\u002fb" } }');
corpus('signature', 'body-compact', '{"eventName":"ping","data":{"n":1.5}}');
corpus('signature', 'body-dup', '{"a":1,"a":2}');
corpus('signature', 'body-not-json', 'hello');
// Bodies whose numbers JavaScript rounds (only the raw form may carry their
// MAC), and one whose compact form says exactly the same.
corpus('signature', 'body-two-to-60-plus-1', '{"sequenceNumber":1152921504606846977}');
corpus('signature', 'body-long-decimal', '{ "amount": 0.1000000000000000055511151231257827 }');
corpus('signature', 'body-pretty-same-meaning', '{ "a": 1.50, "b": [1e2, -0, 9007199254740992] }');

// --- json (also the Node agreement corpus) ----------------------------------
const json = {
  'empty-object': '{}', 'empty-array': '[]', 'null': 'null', 'true': 'true', 'zero': '0',
  'minus-zero': '-0', '1e21': '1e21', '1e-7': '1e-7', '1.5e-7': '1.5e-7',
  'big-integer-float': '123456789012345680000', '2p53-plus-1': '9007199254740993',
  'minus-2p53-plus-1': '-9007199254740993', '2p64': '18446744073709551616', 'point-one': '0.1',
  'point-three': '0.30000000000000004', 'min-subnormal': '5e-324', 'max-double': '1.7976931348623157e308',
  'upper-e': '1E+2', 'hundred': '100', 'one-point-zero': '1.0', 'big-negative': '-1.25e+300',
  'small': '2.5e-5', 'micro': '0.000001',
  'control-escapes': '"\\u0000\\u001f\\u007f\\u2028\\u2029"',
  'short-escapes': '"\\/\\b\\f\\n\\r\\t\\"\\\\"', 'non-ascii': '"é☃𝄞"',
  'surrogate-pair': '"\\ud834\\udd1e"', 'lone-surrogate': '"\\ud800"',
  'duplicate-key': '{"a":1,"a":2}', 'nested': '{"b":1,"a":[1,2,{"c":null}]}',
  'spaced': ' { "spaced" : [ 1 , 2 ] } ', 'trailing-comma': '[1,]', 'trailing-bytes': '{"a":1}x',
  'deep': '[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]',
  'dynamic-like': '{"eventId":"e1","data":{"amount":1.10,"big":12345678901234567890123}}',
  'rounded-by-javascript': '[1152921504606846977, 0.1000000000000000055511151231257827, 1e-400, 1.50]',
};
for (const [name, text] of Object.entries(json)) corpus('json', `${name}.json`, text);
corpus('json', 'invalid-utf8.json', Buffer.from([0x22, 0xff, 0x22]));
// Numbers in every range ECMAScript formats differently, from random doubles.
const numbers = [];
for (let i = 0; i < 2000; i++) {
  const buf = bytes(8);
  const x = buf.readDoubleLE(0);
  if (!Number.isFinite(x)) continue;
  const exp = (next() % 60) - 30;
  numbers.push((next() % 2 ? x : (next() / 4294967296) * Math.pow(10, exp)).toString());
}
corpus('json', 'numbers.json', '[' + numbers.join(',') + ']');

const inputs = fs.readdirSync(path.join(here, 'corpus', 'json')).sort();
for (const name of inputs) {
  const text = fs.readFileSync(path.join(here, 'corpus', 'json', name), 'utf8');
  let out = '';
  try { out = JSON.stringify(JSON.parse(text)); } catch (e) { out = ''; }
  write(path.join(here, 'json-node'), name, out);
}

// --- store_envelope ---------------------------------------------------------
corpus('store_envelope', 'roundtrip', Buffer.concat([Buffer.from([0]), Buffer.from(share)]));
corpus('store_envelope', 'roundtrip-empty', Buffer.from([0]));
corpus('store_envelope', 'forged', Buffer.concat([Buffer.from([1, 40]), bytes(80)]));
corpus('store_envelope', 'tamper-none', Buffer.from([2, 0, 0, 0]));
corpus('store_envelope', 'tamper-dek', Buffer.from([2, 0, 1]));
corpus('store_envelope', 'tamper-cut', Buffer.from([2, 1]));
corpus('store_envelope', 'moved', Buffer.from([3, ...Buffer.from('evt-0002')]));
corpus('store_envelope', 'own', Buffer.from([3, ...Buffer.from('evt-0001')]));

// --- config -----------------------------------------------------------------
const root = path.join(here, '..', '..');
corpus('config', 'example.toml', fs.readFileSync(path.join(root, 'config', 'hookvault.example.toml')));
corpus('config', 'docker.toml', fs.readFileSync(path.join(root, 'docker', 'hookvault.toml')));
corpus('config', 'bad-duration.toml', '[server]\nheader_timeout = "10 parsecs"\n');
corpus('config', 'bad-type.toml', '[server]\nmax_body_bytes = "big"\n');
corpus('config', 'not-toml.toml', '[server\nlisten = ');

// --- request ----------------------------------------------------------------
// First byte: the read size (1 + byte % 64). "{{sig}}": the first body's MAC.
function post(target, body, headers = {}) {
  let head = `POST ${target} HTTP/1.1\r\nHost: hookvault\r\nContent-Type: application/json\r\n`;
  for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
  return head + `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n` + body;
}
const dyn = (body, extra = {}) => post('/webhooks/dynamic', body,
    {'x-dynamic-signature-256': 'sha256={{sig}}', ...extra});
const nodit = (body, extra = {}) => post('/webhooks/nodit', body, {'x-signature': '{{sig}}', ...extra});
const ts = '2025-10-01T15:13:26.348Z';
function dynamicEvent(name, id, data) {
  return JSON.stringify({messageId: `m-${id}`, eventId: `e-${id}`, eventName: name, timestamp: ts,
                         webhookId: 'w', userId: 'u-1', environmentId: 'env', data});
}
const noditBody = JSON.stringify({subscriptionId: '1', sequenceNumber: '7', description: 'd',
  protocol: 'ETHEREUM', network: 'MAINNET', subscriptionType: 'WEBHOOK', eventType: 'ADDRESS_ACTIVITY',
  event: {messages: [{hash: '0xabc', value: '1'}]}, createdAt: '2025-02-18T05:52:53.559342615Z'});
const r = (chunk, text) => Buffer.concat([Buffer.from([chunk]), Buffer.from(text)]);
corpus('request', 'nodit', r(63, nodit(noditBody)));
corpus('request', 'nodit-small-reads', r(0, nodit(noditBody)));
corpus('request', 'dynamic-ping', r(63, dyn(dynamicEvent('ping', 1, {message: 'hi', events: []}))));
corpus('request', 'dynamic-delegation', r(63, dyn(dynamicEvent('wallet.delegation.created', 2, {
  chain: 'EVM', walletId: 'wal-1', userId: 'u-1', publicKey: '0x1', shareSetId: 's-1',
  encryptedDelegatedShare: envelope(share), encryptedWalletApiKey: envelope('dyn_api_key_1')}))));
corpus('request', 'dynamic-delegation-bad-tag', r(63, dyn(dynamicEvent('wallet.delegation.created', 3, {
  chain: 'EVM', walletId: 'wal-2', userId: 'u-1', publicKey: '0x1',
  encryptedDelegatedShare: {...envelope(share), tag: b64url(bytes(16))},
  encryptedWalletApiKey: envelope('k')}))));
corpus('request', 'dynamic-revoked', r(63, dyn(dynamicEvent('wallet.delegation.revoked', 4, {walletId: 'wal-1', chain: 'EVM'}))));
corpus('request', 'pipelined', r(63, nodit(noditBody) + 'GET /readyz HTTP/1.1\r\nHost: h\r\n\r\n' +
  'GET /healthz HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n'));
corpus('request', 'expect-continue', r(63, nodit(noditBody, {Expect: '100-continue'})));
corpus('request', 'forwarded', r(63, nodit(noditBody, {'X-Forwarded-For': '203.0.113.9, 10.0.0.7'})));
corpus('request', 'chunked', r(63, 'POST /webhooks/nodit HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n' +
  'x-signature: {{sig}}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"a":\r\n2\r\n1}\r\n0\r\n\r\n'));
corpus('request', 'bad-signature', r(63, post('/webhooks/nodit', noditBody, {'x-signature': 'ab'.repeat(32)})));
corpus('request', 'not-found', r(63, 'GET /nope HTTP/1.1\r\nHost: h\r\n\r\n'));
corpus('request', 'bad-request-line', r(63, 'BREW /pot HTCPCP/1.0\r\n\r\n'));
corpus('request', 'huge-header', r(63, 'GET / HTTP/1.1\r\nX-Big: ' + 'a'.repeat(5000) + '\r\n\r\n'));
corpus('request', 'body-too-large', r(63, 'POST /webhooks/nodit HTTP/1.1\r\nHost: h\r\nContent-Length: 70000\r\n\r\n{'));
