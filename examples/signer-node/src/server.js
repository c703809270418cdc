// A tiny HTTP front for the signer: POST /sign {"walletId","message"} -> 200 {"walletId", ...signature}.
// It has no authentication of its own: bind it to loopback or put it behind your own auth.
// It logs one line per request (method, path, status, error code) and never a request body.
import http from 'node:http';
import { signatureToJson } from './signer.js';

const MAX_BODY_BYTES = 64 * 1024;
// Past this much the connection is cut instead of answered (an oversized body is otherwise
// read to its end and discarded, so that the 413 reaches the client).
const DRAIN_LIMIT_BYTES = 16 * MAX_BODY_BYTES;

function send(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function readJson(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > DRAIN_LIMIT_BYTES) {
        req.destroy();
        reject(Object.assign(new Error('body too large'), { status: 413 }));
        return;
      }
      if (size > MAX_BODY_BYTES) {
        chunks.length = 0; // keep reading to the end, keep nothing
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (size > MAX_BODY_BYTES) {
        reject(Object.assign(new Error(`body too large (over ${MAX_BODY_BYTES} bytes)`), { status: 413 }));
        return;
      }
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        reject(Object.assign(new Error('body is not JSON'), { status: 400 }));
      }
    });
    req.on('error', reject);
  });
}

/** Maps a signer/materials error to an HTTP answer that carries no secret. */
function errorAnswer(err) {
  switch (err?.code) {
    case 'not_found':
      return [404, { error: 'not_found', message: err.message }];
    case 'rate_limited':
      return [503, { error: 'rate_limited', message: err.message },
        err.retryAfterSeconds !== undefined ? { 'retry-after': String(err.retryAfterSeconds) } : {}];
    case 'bad_share':
    case 'bad_materials':
    case 'bad_response':
    case 'unauthorized':
    case 'forbidden':
    case 'tls':
    case 'network':
    case 'timeout':
    case 'http_error':
      return [502, { error: `hookvault_${err.code}`, message: err.message }];
    case 'sdk_failed':
      return [502, { error: 'sdk_failed', message: err.message }];
    default:
      return [500, { error: 'internal' }];
  }
}

/**
 * @param {{sign: Function}} signer  from createSigner
 * @param {{log?: (line: object) => void}} [o]
 */
export function createSignerServer(signer, { log = (line) => console.log(JSON.stringify(line)) } = {}) {
  return http.createServer(async (req, res) => {
    const started = Date.now();
    let status = 500;
    let code;
    try {
      const { pathname } = new URL(req.url, 'http://localhost');
      if (pathname !== '/sign') {
        status = 404;
        send(res, status, { error: 'not_found' });
        return;
      }
      if (req.method !== 'POST') {
        status = 405;
        send(res, status, { error: 'method_not_allowed' }, { allow: 'POST' });
        return;
      }
      let body;
      try {
        body = await readJson(req);
      } catch (err) {
        status = err.status ?? 400;
        send(res, status, { error: status === 413 ? 'body_too_large' : 'bad_request', message: err.message });
        return;
      }
      const { walletId, message } = body ?? {};
      if (typeof walletId !== 'string' || walletId === '' || typeof message !== 'string' || message === '') {
        status = 400;
        send(res, status, { error: 'bad_request', message: 'walletId and message must be non-empty strings' });
        return;
      }
      try {
        const signature = await signer.sign({ walletId, message });
        status = 200;
        send(res, status, { walletId, ...signatureToJson(signature) });
      } catch (err) {
        code = err?.code;
        const [s, answer, headers] = errorAnswer(err);
        status = s;
        send(res, status, answer, headers);
      }
    } finally {
      log({ msg: 'request', method: req.method, path: req.url?.split('?')[0], status, error: code, ms: Date.now() - started });
    }
  });
}
