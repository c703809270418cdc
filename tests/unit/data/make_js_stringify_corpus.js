#!/usr/bin/env node
// Generates js_stringify_corpus.json: the reference outputs of
// JSON.stringify(JSON.parse(input)) that hookvault's js_stringify() must
// reproduce byte for byte (tests/unit/verify_test.cpp, JsStringifyCorpus).
//
// Run once with Node and commit the result; rerun only to extend the corpus:
//   node tests/unit/data/make_js_stringify_corpus.js > tests/unit/data/js_stringify_corpus.json
//
// Each entry is {"input": <JSON text>, "expected": <JSON.stringify output>}, or
// {"input": <text>, "expected": null} when JSON.parse rejects the text (the C++
// side must reject it too). Random cases come from a fixed-seed PRNG, so the
// output is the same on every run.
//
// Deliberately absent (hookvault rejects them, JavaScript does not; they are
// pinned as known differences in verify_test.cpp instead): lone surrogate
// escapes such as "\ud800", numbers that overflow to Infinity such as 1e400,
// nesting deeper than 512, and a leading byte order mark (JSON.parse rejects
// a BOM too, so that one is in the invalid list).
'use strict';

const entries = [];
const seen = new Set();

function valid(input) {
  if (seen.has(input)) return;
  seen.add(input);
  const expected = JSON.stringify(JSON.parse(input));  // throws if the case is wrong
  entries.push({input, expected});
}

function invalid(input) {
  if (seen.has(input)) return;
  seen.add(input);
  let rejected = false;
  try {
    JSON.parse(input);
  } catch (e) {
    rejected = true;
  }
  if (!rejected) throw new Error('JSON.parse accepted an "invalid" case: ' + input);
  entries.push({input, expected: null});
}

// mulberry32: small deterministic PRNG.
let seed = 0x5eed1234;
function rand() {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const randInt = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));  // inclusive
const pick = (xs) => xs[randInt(0, xs.length - 1)];
function digits(n, leadingNonZero) {
  let s = '';
  for (let i = 0; i < n; ++i) s += String(i === 0 && leadingNonZero ? randInt(1, 9) : randInt(0, 9));
  return s;
}

// ---------------------------------------------------------------- numbers
const numbers = [
  '0', '-0', '0.0', '-0.0', '0e0', '0E+5', '-0e-5', '1', '-1', '1.0', '1.5', '-1.5', '0.1', '0.2',
  '0.3', '0.30000000000000004', '100', '1e2', '1E2', '1e+2', '12.34e1', '123.456', '1e21', '1e20',
  '999999999999999999999', '1000000000000000000000', '123456789012345678901',
  '123456789012345678901234567890', '9007199254740991', '9007199254740992', '9007199254740993',
  '9007199254740994', '9007199254740995', '-9007199254740993', '9223372036854775807',
  '9223372036854775808', '-9223372036854775808', '-9223372036854775809', '18446744073709551615',
  '18446744073709551616', '1152921504606846976', '1e-6', '1e-7', '1.5e-7', '0.000001',
  '0.0000001', '0.00000123', '1.23e-5', '5e-324', '4.9e-324', '2.4703282292062328e-324',
  '2.2250738585072014e-308', '2.2250738585072011e-308', '1.7976931348623157e308',
  '1.7976931348623158e308', '1e308', '1e-400', '-1e-400', '0.1e1', '10e-1', '1e0', '1e-0',
  '3.141592653589793', '2.718281828459045', '6.02214076e23', '1.602176634e-19', '4.35', '0.57',
  '1.005', '123e-20', '1.2e21', '1.2e20', '0.5e-6', '5e-7', '12345678.9', '0.1234567890123456789',
  '0.1000000000000000055511151231257827021181583404541015625', '44289819', '6627015772',
  '100000000000000000000000', '1' + '0'.repeat(308), '0.' + '0'.repeat(320) + '1',
  '2.' + '5'.repeat(400), '8.41e21', '1e22', '1e23', '5e-7', '-5e-7', '1e-5', '1.1e-6',
];
for (const n of numbers) valid(n);
valid('[' + numbers.join(',') + ']');

// Random bit patterns written at full precision, at random precision, and as JS prints them.
for (let batch = 0; batch < 40; ++batch) {
  const items = [];
  const view = new DataView(new ArrayBuffer(8));
  while (items.length < 25) {
    view.setUint32(0, Math.floor(rand() * 4294967296));
    view.setUint32(4, Math.floor(rand() * 4294967296));
    const x = view.getFloat64(0);
    if (!Number.isFinite(x)) continue;
    const form = randInt(0, 3);
    if (form === 0) items.push(x.toPrecision(17));
    else if (form === 1) items.push(x.toExponential(randInt(0, 25)));
    else if (form === 2) items.push(x.toPrecision(randInt(1, 21)));
    else items.push(String(x));
  }
  valid('[' + items.join(',') + ']');
}

// Random decimal texts with random digit counts and exponents, and random big integers.
for (let batch = 0; batch < 40; ++batch) {
  const items = [];
  while (items.length < 25) {
    const sign = rand() < 0.3 ? '-' : '';
    const intPart = rand() < 0.3 ? '0' : digits(randInt(1, 22), true);
    const frac = rand() < 0.6 ? '.' + digits(randInt(1, 22), false) : '';
    const exp = rand() < 0.6 ? pick(['e', 'E']) + pick(['', '+', '-']) + randInt(0, 330) : '';
    const text = sign + intPart + frac + exp;
    if (!Number.isFinite(Number(text))) continue;  // overflow: a known difference
    items.push(text);
  }
  valid('[' + items.join(',') + ']');
}
for (let batch = 0; batch < 12; ++batch) {
  const items = [];
  for (let i = 0; i < 25; ++i) items.push((rand() < 0.3 ? '-' : '') + digits(randInt(1, 40), true));
  valid('[' + items.join(',') + ']');
}
// Integers around powers of two, where float rounding bites.
{
  const items = [];
  for (let p = 50; p <= 70; ++p) {
    const base = 2n ** BigInt(p);
    for (const d of [-3n, -2n, -1n, 0n, 1n, 2n, 3n]) items.push(String(base + d), String(-(base + d)));
  }
  valid('[' + items.join(',') + ']');
}

// ---------------------------------------------------------------- strings
const hex4 = (c, upper) => {
  const h = c.toString(16).padStart(4, '0');
  return upper ? h.toUpperCase() : h;
};
// Every ASCII character, escaped in the input, alone and together.
{
  let all = '';
  for (let c = 0; c < 0x80; ++c) {
    valid('"\\u' + hex4(c, false) + '"');
    all += '\\u' + hex4(c, c % 2 === 1);
  }
  valid('"' + all + '"');
}
// Printable ASCII raw (a JSON string cannot hold raw control characters).
{
  let raw = '';
  for (let c = 0x20; c < 0x7f; ++c) if (c !== 0x22 && c !== 0x5c) raw += String.fromCharCode(c);
  raw += String.fromCharCode(0x7f);
  valid('"' + raw + '"');
}
for (const s of [
  '""', '"\\""', '"\\\\"', '"\\/"', '"/"', '"\\b\\f\\n\\r\\t"', '"a\\u0000b"', '"\\u001f\\u001F"',
  '"\\u007f"', '"\\u0080"', '"\\u00e9"', '"\\u00E9"', '"\u00e9"', '"\\u0041"', '"\\u2028\\u2029"',
  '"\u2028\u2029"', '"\\ufeff"', '"\ufeff"', '"\\uffff"', '"\\ud83d\\ude00"', '"\\uD83D\\uDE00"',
  '"\ud83d\ude00"', '"\\udbff\\udfff"', '"\u{10ffff}"', '"\u4e2d\u6587"', '"\u0000"'.replace('\u0000', '\\u0000'),
  '"<script>\\u003c/script>"', '"\\u0022"', '"\\u005c"', '"\\u005C\\u005c"', '"tab\\there"',
  '"mixed \\u00e9\u00e9\\ud83d\\ude00\ud83d\ude00 end"', '"\u0301e\u0301"', '"\\u0000\\u0001\\u0002"',
]) {
  valid(s);
}
// Random strings of random code points (never a lone surrogate), written raw or escaped.
const ranges = [[0x00, 0x7f], [0x80, 0x7ff], [0x800, 0xd7ff], [0xe000, 0xffff], [0x10000, 0x10ffff],
                [0x2028, 0x2029], [0x00, 0x1f]];
for (let n = 0; n < 120; ++n) {
  let text = '"';
  const len = randInt(0, 30);
  for (let i = 0; i < len; ++i) {
    const [lo, hi] = pick(ranges);
    const cp = randInt(lo, hi);
    const ch = String.fromCodePoint(cp);
    const mode = randInt(0, 2);
    if (cp < 0x20 || cp === 0x22 || cp === 0x5c || mode === 0) {
      // \u escape(s), random hex case, surrogate pairs for astral code points.
      for (let k = 0; k < ch.length; ++k) text += '\\u' + hex4(ch.charCodeAt(k), rand() < 0.5);
    } else if (mode === 1) {
      text += JSON.stringify(ch).slice(1, -1);
    } else {
      text += ch;
    }
  }
  valid(text + '"');
}

// ---------------------------------------------------------------- literals, containers, order
for (const s of [
  'true', 'false', 'null', '[]', '{}', '[[]]', '[{}]', '{"a":{}}', '{"a":[]}', '[[],[[]],{}]',
  ' \t\r\n[ 1 , 2 ]\n ', '{ "a" : 1 , "b" : [ true , false , null ] }', '[null,true,false]',
  '{"":0}', '{"":{"":[""]}}', '{"a":1,"b":2}', '{"b":1,"a":2}', '{"z":1,"y":{"x":2,"w":3},"a":4}',
  '{"b":1,"a":2,"10":3,"1":4,"01":5,"4294967294":6,"4294967295":7,"-1":8,"1.5":9,"0":10}',
  '{"__proto__":1,"constructor":2,"toString":3,"hasOwnProperty":4}', '{"__proto__":{"a":1}}',
  '{"2":"two","1":"one","x":"ex","0":"zero"}', '{"pubkey":{"pubkey":{"0":4,"1":17,"2":200,"10":5,"9":6}}}',
  '{"\\u0041":1,"B":2}', '{"\u00e9":1,"e":2,"\ud83d\ude00":3}', '{"a\\nb":1,"a/b":2}',
  '{"9007199254740993":1,"99999999999":2,"4294967293":3}', '[1,"1",[1],{"1":1}]',
]) {
  valid(s);
}
for (const depth of [1, 2, 10, 100, 500]) {
  valid('['.repeat(depth) + ']'.repeat(depth));
  valid('{"a":'.repeat(depth) + '1' + '}'.repeat(depth));
  let mixed = '';
  for (let i = 0; i < depth; ++i) mixed += i % 2 ? '{"k":' : '[';
  mixed += '0';
  for (let i = depth - 1; i >= 0; --i) mixed += i % 2 ? '}' : ']';
  valid(mixed);
}
{
  const wide = {};
  for (let i = 0; i < 200; ++i) wide['key' + ((i * 7919) % 200)] = i;
  valid(JSON.stringify(wide, null, 2));
  valid(JSON.stringify(Array.from({length: 300}, (_, i) => i * 1.1)));
}
// Random nested values, pretty-printed with random indentation.
function randomValue(depth) {
  const r = rand();
  if (depth > 5 || r < 0.35) {
    return pick([null, true, false, randInt(-1e6, 1e6), rand() * 1e6, 'x' + randInt(0, 99), '\u00e9\n',
                 2 ** 60 + randInt(0, 1000), rand() * 1e-8, 'k\u2028']);
  }
  if (r < 0.65) return Array.from({length: randInt(0, 5)}, () => randomValue(depth + 1));
  const o = {};
  for (let i = randInt(0, 5); i > 0; --i) o[pick(['a', 'b', 'id', 'z', 'data', String(randInt(0, 20))])] =
      randomValue(depth + 1);
  return o;
}
for (let n = 0; n < 40; ++n) valid(JSON.stringify(randomValue(0), null, pick([0, 1, 2, 4, '\t'])));

// ---------------------------------------------------------------- realistic bodies
const nodit = '{"subscriptionId":"1","sequenceNumber":"1","description":"Signature Test","protocol":"APTOS",' +
    '"network":"TESTNET","subscriptionType":"WEBHOOK","notification":{"webhookUrl":"YOUR_WEBHOOK_ENDPOINT"},' +
    '"eventType":"EVENT","event":{"eventType":"0x13a9f1a109368730f2e355d831ba8fbf5942fb82321863d55de54cb4ebe5d18f' +
    '::just::RandomIndexEvent","eventAccountAddress":"0x0","messages":[{"guid":{"creation_number":"0",' +
    '"account_address":"0x0"},"sequence_number":"0","type":"0x13a9f1a109368730f2e355d831ba8fbf5942fb82321863d55' +
    'de54cb4ebe5d18f::just::RandomIndexEvent","data":{"price":"44289819"},"event_index":2,"version":"6627015772"}]},' +
    '"createdAt":"2025-02-18T05:52:53.559342615Z"}';
valid(nodit);
valid(JSON.stringify(JSON.parse(nodit), null, 2));
valid(JSON.stringify(JSON.parse(nodit), null, '\t'));
valid(JSON.stringify({
  messageId: '0f8fad5b-d9cb-469f-a165-70867728950e', eventId: '7c9e6679-7425-40de-944b-e07fc1f90ae7',
  eventName: 'wallet.delegation.created', timestamp: '2025-10-01T15:13:26.348Z', webhookId: 'w1',
  userId: null, environmentId: 'env', environmentName: 'sandbox', redelivery: true,
  data: {chain: 'EVM', walletId: 'wal_1', publicKey: '0xAbC', amount: 1e-7, big: 2 ** 64,
         encryptedDelegatedShare: {alg: 'HYBRID-RSA-AES-256', iv: 'a-_b', ct: 'c/d+', tag: 't', ek: 'e'}},
}, null, 2));

// ---------------------------------------------------------------- rejected by JSON.parse
for (const s of [
  '', ' ', '{', '}', '[', ']', '[1', '{"a":1', '{"a":', '{"a"', '"abc', '[1,]', '{"a":1,}', '[,1]', '{,}',
  "{'a':1}", "['a']", '{"a" 1}', '{"a"::1}', '{a:1}', '[1 2]', '[1,,2]', 'NaN', '-NaN', 'Infinity',
  '-Infinity', '[NaN]', 'undefined', 'tru', 'nul', 'True', 'NULL', '01', '-01', '00', '+1', '.5', '1.',
  '1.e5', '1e', '1e+', '-', '--1', '0x10', '1_000', '1 2', '{} {}', '[]]', '{"a":1}x', '[1]//c',
  '/*c*/[1]', '[1]/*c*/', '"\\x41"', '"\\u12"', '"\\u12G4"', '"\\U0041"', '"\\a"', '"\\\'"',
  '"a\tb"', '"a\nb"', '"\u0000"', '"\u001f"', '\ufeff{}', '\u00a0[]', '\u2028[]', '[\u000b1]',
  '[\f1]', '"', "'a'", '[1]\u0000',
]) {
  invalid(s);
}

process.stdout.write('[\n' + entries.map((e) => JSON.stringify(e)).join(',\n') + '\n]\n');
