// A guard for the tests: any JavaScript-level TCP connection (http, https, tls, fetch/undici all
// go through net.Socket#connect) to a host other than loopback throws instead of connecting, so
// a misconfigured SDK can never reach Dynamic's real servers from a test. Returns a restore().
import net from 'node:net';

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost|\[::1\])$/i;

export function allowOnlyLoopback() {
  const original = net.Socket.prototype.connect;
  const blocked = [];
  net.Socket.prototype.connect = function connect(...args) {
    let host;
    const first = Array.isArray(args[0]) ? args[0][0] : args[0]; // net.connect passes [options, cb]
    if (first && typeof first === 'object') host = first.path ? undefined : (first.host || first.hostname || 'localhost');
    else if (typeof first === 'number' || /^\d+$/.test(String(first))) host = typeof args[1] === 'string' ? args[1] : 'localhost';
    if (host !== undefined && !LOOPBACK.test(host)) {
      blocked.push(host);
      throw new Error(`test guard: refused a connection to ${host} (only loopback is allowed)`);
    }
    return original.apply(this, args);
  };
  return {
    blocked,
    restore() {
      net.Socket.prototype.connect = original;
    },
  };
}
