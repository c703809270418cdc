// Where the test stops: Dynamic's side of a delegated signing, on loopback.
//
// delegatedSignMessage in @dynamic-labs-wallet/node@0.0.198 makes, in order:
//   1. GET  {baseApiUrl}/api/v0/environments/{env}/waas/{walletId}            (axios, node:http)
//      Authorization: Bearer <server API key>
//   2. POST {baseApiUrl}/api/v0/environments/{env}/waas/{walletId}/delegatedAccess/signMessage
//      (axios fetch adapter, server-sent events) with x-dyn-wallet-api-key: <wallet API key>;
//      Dynamic answers `event: room_created` with the MPC room id.
//   3. Ecdsa.sign(roomId, keyShare, hash) -> native ecdsaSign(roomId, relayHost, secretShare, ...)
//      in the SDK's Rust addon, which speaks Dynamic's MPC protocol over TLS to the relay.
// startFakeDynamicApi answers 1 and 2 and records every request; startFakeRelay is a loopback
// TCP listener given to the SDK as its relay so that step 3 can never leave the machine;
// spyOnMpcSigning records what reaches step 3 (the JS signer and the native call), then lets the
// real SDK code run.
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import crypto from 'node:crypto';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export async function startFakeDynamicApi({ environmentId, chainName = 'EVM' }) {
  const requests = [];
  const roomId = crypto.randomBytes(16).toString('hex'); // the native code wants 32 characters
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      requests.push({ method: req.method, url: req.url, headers: req.headers, body });
      const base = `/api/v0/environments/${environmentId}/waas/`;
      const url = new URL(req.url, 'http://x');
      if (!url.pathname.startsWith(base)) {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"unknown route"}');
        return;
      }
      const rest = url.pathname.slice(base.length).split('/');
      if (req.method === 'GET' && rest.length === 1) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({
          wallet: {
            walletId: decodeURIComponent(rest[0]),
            chainName,
            accountAddress: '0xd74ff800a3c6f66ecd217118aaa6fb1c916fa4e2',
            derivationPath: '',
            thresholdSignatureScheme: 'TWO_OF_TWO',
          },
        }));
        return;
      }
      if (req.method === 'POST' && rest.length === 3 && rest[1] === 'delegatedAccess' && rest[2] === 'signMessage') {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        res.end(`event: room_created\ndata: ${JSON.stringify({ roomId })}\n\n`);
        return;
      }
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"unknown route"}');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    roomId,
    requests,
    close: () => new Promise((resolve) => { server.closeAllConnections?.(); server.close(resolve); }),
  };
}

/** A loopback TCP listener that records connections and closes them (no relay protocol). */
export async function startFakeRelay() {
  const connections = [];
  const server = net.createServer((sock) => {
    connections.push({ at: Date.now() });
    sock.destroy();
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    host: `127.0.0.1:${server.address().port}`, // the SDK's baseMPCRelayApiUrl is a host:port
    connections,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/**
 * Wraps the SDK's MPC entry points (the same module instances the SDK uses: CommonJS files
 * shared through require's cache) to record their arguments, calling the real code through.
 */
export function spyOnMpcSigning() {
  const pkgDir = path.dirname(require.resolve('@dynamic-labs-wallet/node'));
  const core = require(path.join(pkgDir, 'internal/core/index.js'));
  const native = require(path.join(pkgDir, 'internal/node/native.js')).NodeNativeSdk;

  const signerCalls = [];
  const nativeCalls = [];
  const originalSign = core.Ecdsa.prototype.sign;
  const originalNative = native.ecdsaSign;

  core.Ecdsa.prototype.sign = function sign(roomId, keyShare, msgHash, derivationPath) {
    signerCalls.push({ roomId, keyShare, msgHex: msgHash?.toHex?.(), derivationPath });
    return originalSign.call(this, roomId, keyShare, msgHash, derivationPath);
  };
  native.ecdsaSign = function ecdsaSign(roomId, hostUrl, secretShare, msgHex, derivationPath) {
    nativeCalls.push({ roomId, hostUrl, secretShare, msgHex, derivationPath });
    return originalNative.call(this, roomId, hostUrl, secretShare, msgHex, derivationPath);
  };
  return {
    signerCalls,
    nativeCalls,
    restore() {
      core.Ecdsa.prototype.sign = originalSign;
      native.ecdsaSign = originalNative;
    },
  };
}
