// Fetches a wallet's delegated materials from hookvault's admin listener over mutual TLS:
//   GET {url}/v1/materials/{walletId}?source={source}
// The server certificate must chain to `ca` (hookvault's admin CA; public CAs are not trusted)
// and match the URL's host name; the client presents `cert` + `key` (CN picks its roles on
// hookvault's side; fetching materials needs "materials:read").
//
// The returned object holds the secrets (delegatedShare, walletApiKey) in memory only. Nothing
// here logs, and no error message includes a response body that could carry them.
import https from 'node:https';

const FIELDS = ['walletId', 'userId', 'chain', 'shareSetId', 'eventId', 'createdAt', 'delegatedShare', 'walletApiKey'];
const MAX_BODY_BYTES = 1 << 20;

/** An error from fetchMaterials. `code` is one of the strings below; `status` the HTTP status if any. */
export class MaterialsError extends Error {
  constructor(code, message, { status, retryAfterSeconds, cause } = {}) {
    super(message, cause ? { cause } : undefined);
    this.name = 'MaterialsError';
    this.code = code; // not_found | unauthorized | forbidden | rate_limited | http_error | bad_response | tls | network | timeout
    if (status !== undefined) this.status = status;
    if (retryAfterSeconds !== undefined) this.retryAfterSeconds = retryAfterSeconds;
  }
}

// Node's codes for a failed certificate check or a handshake the peer refused.
const TLS_ERROR = /^(ERR_SSL_|ERR_TLS_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|ERR_OSSL_|HOSTNAME_MISMATCH|UNABLE_TO_VERIFY)/;

function errorFromStatus(status, headers, walletId, source) {
  switch (status) {
    case 404:
      return new MaterialsError('not_found', `no delegated materials for wallet ${walletId} (source ${source}): none received, or revoked`, { status });
    case 401:
      return new MaterialsError('unauthorized', 'hookvault rejected the client certificate (401): check the signer certificate and key', { status });
    case 403:
      return new MaterialsError('forbidden', 'hookvault refused access (403): the client certificate lacks the materials:read role', { status });
    case 429: {
      const retry = Number.parseInt(headers['retry-after'] ?? '', 10);
      const retryAfterSeconds = Number.isFinite(retry) ? retry : undefined;
      return new MaterialsError('rate_limited', `hookvault rate-limited the request (429)${retryAfterSeconds !== undefined ? `; retry after ${retryAfterSeconds} s` : ''}`, { status, retryAfterSeconds });
    }
    default:
      return new MaterialsError('http_error', `hookvault answered HTTP ${status}`, { status });
  }
}

function parseMaterials(text) {
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    throw new MaterialsError('bad_response', 'hookvault answered 200 with a body that is not JSON');
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new MaterialsError('bad_response', 'hookvault answered 200 with JSON that is not an object');
  }
  for (const f of ['walletId', 'chain', 'delegatedShare', 'walletApiKey']) {
    if (typeof body[f] !== 'string' || body[f] === '') {
      throw new MaterialsError('bad_response', `hookvault's materials lack the string field "${f}"`);
    }
  }
  const out = {};
  for (const f of FIELDS) if (body[f] !== undefined) out[f] = body[f];
  return out;
}

/**
 * Fetches the materials of `walletId`. Resolves to
 * {walletId, userId, chain, shareSetId, eventId, createdAt, delegatedShare, walletApiKey};
 * rejects with a MaterialsError.
 * @param {object} o
 * @param {string} o.url        admin listener base URL, e.g. https://localhost:9443
 * @param {string|Buffer} o.ca  PEM of hookvault's admin CA
 * @param {string|Buffer} o.cert PEM of the signer's client certificate
 * @param {string|Buffer} o.key PEM of the signer's private key
 * @param {string} o.walletId
 * @param {string} [o.source]   hookvault source name, default "dynamic"
 * @param {number} [o.timeoutMs]
 */
export function fetchMaterials({ url, ca, cert, key, walletId, source = 'dynamic', timeoutMs = 10000 }) {
  if (!walletId) return Promise.reject(new TypeError('walletId is required'));
  const base = new URL(url);
  if (base.protocol !== 'https:') return Promise.reject(new TypeError('the admin URL must be https'));
  const target = new URL(`v1/materials/${encodeURIComponent(walletId)}`, base.href.endsWith('/') ? base : `${base.href}/`);
  target.searchParams.set('source', source);

  return new Promise((resolve, reject) => {
    const req = https.request(target, {
      method: 'GET',
      ca, // replaces the public roots: only hookvault's admin CA is trusted
      cert,
      key,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
      agent: false, // no pooled sockets shared with other TLS identities
      headers: { accept: 'application/json' },
      timeout: timeoutMs,
    }, (res) => {
      const chunks = [];
      let size = 0;
      res.on('data', (c) => {
        size += c.length;
        if (size > MAX_BODY_BYTES) {
          req.destroy(new MaterialsError('bad_response', 'hookvault answered with an oversized body'));
          return;
        }
        chunks.push(c);
      });
      res.on('error', (err) => reject(new MaterialsError('network', `reading hookvault's answer failed: ${err.message}`, { cause: err })));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        chunks.length = 0;
        if (res.statusCode !== 200) {
          reject(errorFromStatus(res.statusCode, res.headers, walletId, source));
          return;
        }
        try {
          resolve(parseMaterials(text));
        } catch (err) {
          reject(err);
        }
      });
    });
    // Seen when the server closes the connection right after a completed TLS handshake, which
    // is how a TLS 1.3 server may refuse a client certificate (it checks it after the client
    // finished): the client sees a reset instead of an alert.
    let handshakeDone = false;
    req.on('socket', (sock) => sock.once('secureConnect', () => { handshakeDone = true; }));
    req.on('timeout', () => req.destroy(new MaterialsError('timeout', `no answer from hookvault within ${timeoutMs} ms`)));
    req.on('error', (err) => {
      if (err instanceof MaterialsError) return reject(err);
      const code = err.code ?? '';
      if (TLS_ERROR.test(code) || /ssl|tls|certificate|handshake|alert/i.test(err.message)) {
        reject(new MaterialsError('tls', `TLS with hookvault's admin listener failed: ${err.message}`, { cause: err }));
      } else if (handshakeDone && (code === 'ECONNRESET' || code === 'EPIPE')) {
        reject(new MaterialsError('tls', 'hookvault closed the connection right after the TLS handshake ' +
          `(${err.message}): it most likely refused the client certificate; check that it is issued by hookvault's admin CA`, { cause: err }));
      } else {
        reject(new MaterialsError('network', `cannot reach hookvault's admin listener at ${base.origin}: ${err.message}`, { cause: err }));
      }
    });
    req.end();
  });
}
