// Runs a real hookvault for the tests: `hookvault init` into a temp dir, a config copy with both
// listeners on port 0 and JSON logs, `hookvault serve`, and the ports read from its
// {"msg":"listening","listener":...} log lines (stdout or stderr).
import { spawn, execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

const execFileP = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));

/** HOOKVAULT_BIN, else ../../build/hookvault relative to examples/signer-node. */
export function hookvaultBin() {
  const bin = process.env.HOOKVAULT_BIN || path.resolve(here, '../../../../build/hookvault');
  const abs = path.resolve(bin);
  if (!fs.existsSync(abs)) {
    throw new Error(`hookvault binary not found at ${abs}: build it or set HOOKVAULT_BIN`);
  }
  return abs;
}

/** `hookvault init --dir DIR`; returns the paths the signer and the tests need. */
export async function initHookvault(bin, dir) {
  await execFileP(bin, ['init', '--dir', dir]);
  const p = (rel) => path.join(dir, rel);
  // What the daemon never needs (the CA's key, the signer's files) is in DIR-offline.
  const offline = (rel) => path.join(`${dir}-offline`, rel);
  return {
    dir,
    config: p('hookvault.toml'),
    publicCa: p('tls/cert.pem'), // the public listener's self-signed certificate
    adminCa: p('tls/admin-ca.pem'),
    signerCert: offline('signer-cert.pem'),
    signerKey: offline('signer-key.pem'),
    adminCaKey: offline('admin-ca.key'),
    dynamicPublicKey: p('keys/dynamic_rsa.pub.pem'),
    webhookSecretFile: p('secrets/dynamic_webhook_secret'),
  };
}

/**
 * Rewrites TOML text: `key = ...` inside `[table]` gets `value`. Line-based, enough for the
 * config `hookvault init` writes; throws if a key is not found so a format change is loud.
 */
export function setTomlKeys(text, edits) {
  const pending = new Set(edits.map((e) => `${e.table}.${e.key}`));
  let table = '';
  const out = text.split('\n').map((line) => {
    const header = line.match(/^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$/);
    if (header) {
      table = header[1];
      return line;
    }
    for (const e of edits) {
      const re = new RegExp(`^(\\s*${e.key}\\s*=\\s*)[^#]*?(\\s*#.*)?$`);
      if (table === e.table && re.test(line)) {
        pending.delete(`${e.table}.${e.key}`);
        return line.replace(re, (_m, lhs, comment) => `${lhs}${JSON.stringify(e.value)}${comment ?? ''}`);
      }
    }
    return line;
  });
  if (pending.size) throw new Error(`config keys not found: ${[...pending].join(', ')}`);
  return out.join('\n');
}

/** Both listeners on an ephemeral loopback port, JSON logs (the port lines are read from them). */
export function prepareConfig(configPath) {
  const text = fs.readFileSync(configPath, 'utf8');
  fs.writeFileSync(
    configPath,
    setTomlKeys(text, [
      { table: 'server', key: 'listen', value: '127.0.0.1:0' },
      { table: 'admin', key: 'listen', value: '127.0.0.1:0' },
      { table: 'log', key: 'format', value: 'json' },
    ]),
  );
}

/**
 * Starts `hookvault serve --config FILE` and resolves once it has logged the listeners in
 * `want` (default public and admin). Resolves to {ports, stop(), output()}.
 */
export function startHookvault(bin, config, { want = ['public', 'admin'], timeoutMs = 20000 } = {}) {
  const child = spawn(bin, ['serve', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const ports = {};
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));

  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`hookvault did not report listeners ${want.join(', ')} within ${timeoutMs} ms ` +
        `(got ${JSON.stringify(ports)}); output:\n${output}`));
    }, timeoutMs);
    const onLine = (line) => {
      let rec;
      try {
        rec = JSON.parse(line);
      } catch {
        return;
      }
      if (rec?.msg !== 'listening' || !Number.isInteger(rec.port)) return;
      // Older builds log the single public listener without a "listener" field.
      ports[rec.listener ?? 'public'] = rec.port;
      if (want.every((w) => ports[w])) {
        clearTimeout(timer);
        resolve();
      }
    };
    for (const stream of [child.stdout, child.stderr]) {
      let buf = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk) => {
        output += chunk;
        buf += chunk;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          onLine(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
        }
      });
    }
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`hookvault serve exited early (code ${code}, signal ${signal}); output:\n${output}`));
    });
  });

  async function stop() {
    if (child.exitCode !== null || child.signalCode !== null) return exited;
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 15000);
    const result = await exited;
    clearTimeout(killer);
    return result;
  }

  return ready.then(
    () => ({ ports, stop, output: () => output, pid: child.pid }),
    async (err) => {
      await stop();
      throw err;
    },
  );
}
