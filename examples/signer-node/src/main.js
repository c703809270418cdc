#!/usr/bin/env node
// hookvault-signer: the example signer's command line.
//   node src/main.js serve                    run the HTTP service (POST /sign)
//   node src/main.js sign WALLET_ID MESSAGE   sign once, print the signature as JSON
// Configuration comes from the environment (see README.md); the certificate and key files are
// read once at start.
import fs from 'node:fs';
import { createSigner, signatureToJson } from './signer.js';
import { createSignerServer } from './server.js';

const USAGE = `usage: hookvault-signer serve | sign WALLET_ID MESSAGE

environment:
  HOOKVAULT_ADMIN_URL     admin listener, default https://127.0.0.1:9443
  HOOKVAULT_CA            PEM file of hookvault's admin CA (tls/admin-ca.pem)
  HOOKVAULT_CLIENT_CERT   PEM file of this signer's certificate (signer-cert.pem in the -offline folder hookvault init writes)
  HOOKVAULT_CLIENT_KEY    PEM file of this signer's private key (signer-key.pem, beside it)
  HOOKVAULT_SOURCE        hookvault source name, default dynamic
  DYNAMIC_ENVIRONMENT_ID  your Dynamic environment id
  DYNAMIC_API_KEY_FILE    file holding your Dynamic server API key (or DYNAMIC_API_KEY)
  DYNAMIC_API_URL         optional: Dynamic API base URL (the SDK's baseApiUrl)
  DYNAMIC_MPC_RELAY_URL   optional: Dynamic MPC relay (the SDK's baseMPCRelayApiUrl)
  SIGNER_LISTEN           serve: host:port, default 127.0.0.1:8080`;

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}

function configFromEnv(env = process.env) {
  const apiKey = env.DYNAMIC_API_KEY_FILE
    ? fs.readFileSync(env.DYNAMIC_API_KEY_FILE, 'utf8').trim()
    : need('DYNAMIC_API_KEY');
  return {
    hookvault: {
      url: env.HOOKVAULT_ADMIN_URL || 'https://127.0.0.1:9443',
      ca: fs.readFileSync(need('HOOKVAULT_CA')),
      cert: fs.readFileSync(need('HOOKVAULT_CLIENT_CERT')),
      key: fs.readFileSync(need('HOOKVAULT_CLIENT_KEY')),
      source: env.HOOKVAULT_SOURCE || 'dynamic',
    },
    dynamic: {
      environmentId: need('DYNAMIC_ENVIRONMENT_ID'),
      apiKey,
      baseApiUrl: env.DYNAMIC_API_URL || undefined,
      baseMPCRelayApiUrl: env.DYNAMIC_MPC_RELAY_URL || undefined,
    },
  };
}

function parseListen(s) {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(s);
  if (!m) throw new Error(`SIGNER_LISTEN must be host:port, got ${s}`);
  return { host: m[1], port: Number(m[2]) };
}

async function main(argv) {
  const [cmd, ...args] = argv;
  if (cmd === 'serve' && args.length === 0) {
    const signer = createSigner(configFromEnv());
    const { host, port } = parseListen(process.env.SIGNER_LISTEN || '127.0.0.1:8080');
    const server = createSignerServer(signer);
    server.listen(port, host, () => {
      const a = server.address();
      console.log(JSON.stringify({ msg: 'listening', address: a.address, port: a.port }));
    });
    const stop = () => server.close(() => process.exit(0));
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    return;
  }
  if (cmd === 'sign' && args.length === 2) {
    const signer = createSigner(configFromEnv());
    const signature = await signer.sign({ walletId: args[0], message: args[1] });
    console.log(JSON.stringify({ walletId: args[0], ...signatureToJson(signature) }));
    // The SDK leaves its 30 s event-stream timeout timer running after each call: exit now.
    process.exit(0);
  }
  console.error(USAGE);
  process.exitCode = 2;
}

main(process.argv.slice(2)).catch((err) => {
  // One line, the message only: never the error object (SDK errors may carry request headers).
  console.error(`hookvault-signer: ${err?.message ?? String(err)}`);
  process.exit(1);
});
