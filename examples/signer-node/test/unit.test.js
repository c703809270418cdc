// The small pure pieces, without hookvault.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EcdsaSignature } from '@dynamic-labs-wallet/node';
import { keyShareFromDelegatedShare, signatureToJson, SignerError } from '../src/signer.js';
import { setTomlKeys } from './helpers/hookvault.js';

test('keyShareFromDelegatedShare parses the share and keeps every field', () => {
  const text = '{"pubkey":{"pubkey":{"0":4,"1":17}},"secretShare":"00ff","futureField":[1]}';
  const share = keyShareFromDelegatedShare(text);
  assert.equal(JSON.stringify(share), text);
});

test('keyShareFromDelegatedShare rejects what is not a share, without echoing it', () => {
  for (const bad of ['not json {secret}', '"a string"', '{"pubkey":{}}', 'null']) {
    assert.throws(() => keyShareFromDelegatedShare(bad), (err) => {
      assert.ok(err instanceof SignerError);
      assert.equal(err.code, 'bad_share');
      assert.ok(!err.message.includes(bad));
      return true;
    });
  }
});

test('signatureToJson writes ECDSA signatures and raw bytes as hex', () => {
  const r = new Uint8Array(32).fill(1);
  const s = new Uint8Array(32).fill(2);
  const der = Buffer.concat([Buffer.from([0x30, 0x44, 0x02, 0x20]), r, Buffer.from([0x02, 0x20]), s]);
  const sig = new EcdsaSignature(r, s, 27, new Uint8Array(der));
  assert.deepEqual(signatureToJson(sig), {
    r: `0x${'01'.repeat(32)}`, s: `0x${'02'.repeat(32)}`, v: 27, der: `0x${der.toString('hex')}`,
  });
  assert.deepEqual(signatureToJson(new Uint8Array([0xab, 0xcd])), { signature: '0xabcd' });
  assert.throws(() => signatureToJson({}), SignerError);
});

test('setTomlKeys edits keys in the named tables only, keeping comments', () => {
  const toml = '[server]\nlisten = "0.0.0.0:8443"  # public\n[admin]\nlisten = "127.0.0.1:9443"\n[[admin.clients]]\nsubject_cn = "signer"\n';
  const out = setTomlKeys(toml, [{ table: 'admin', key: 'listen', value: '127.0.0.1:0' }]);
  assert.equal(out, toml.replace('"127.0.0.1:9443"', '"127.0.0.1:0"'));
  assert.throws(() => setTomlKeys(toml, [{ table: 'log', key: 'format', value: 'json' }]), /log\.format/);
});
