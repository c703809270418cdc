// Opens N keep-alive TLS connections to 127.0.0.1:PORT, sends one GET PATH on
// each, waits for every answer, prints "ready OPEN", then keeps them idle
// until killed. Usage: node hold.js PORT N [PATH]
'use strict';
const tls = require('node:tls');
const [port, nStr, path] = process.argv.slice(2);
const n = +nStr;
let answered = 0;
let failed = 0;
const sockets = [];
function check() {
  if (answered + failed === n) process.stdout.write(`ready ${answered}\n`);
}
function open(i) {
  const s = tls.connect({ host: '127.0.0.1', port: +port, rejectUnauthorized: false }, () => {
    s.write(`GET ${path || '/healthz'} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  });
  let seen = false;
  s.on('data', () => { if (!seen) { seen = true; answered++; check(); } });
  s.on('error', () => { if (!seen) { seen = true; failed++; check(); } });
  sockets.push(s);
  if (i + 1 < n) setImmediate(() => open(i + 1));
}
open(0);
setInterval(() => {}, 1 << 30);
