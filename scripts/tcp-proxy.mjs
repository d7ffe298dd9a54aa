// A TCP proxy in front of a real server (PostgreSQL, Redis) that a test or the chaos run can cut, hang and
// restore. One implementation for both: test/support/tcp-proxy.ts gives it its types, scripts/chaos.mjs imports it.
import net from 'node:net';

/**
 * Listens on 127.0.0.1 (a kernel-chosen port) and forwards every connection to targetHost:targetPort.
 *
 * - `cut(refuseMs?)` drops every connection and refuses new ones (the server looks down): until `restore()`, or
 *   for `refuseMs` only when given. Returns how many connections it dropped.
 * - `hang()` keeps connections open but forwards nothing, either way (the server looks hung).
 * - `restore()` accepts and forwards again (dropped connections stay dropped; hung ones resume).
 *
 * @param {string} targetHost
 * @param {number} targetPort
 */
export async function tcpProxy(targetHost, targetPort) {
  /** @type {Set<[net.Socket, net.Socket]>} */
  const pairs = new Set();
  /** @type {'open' | 'cut' | 'hung'} */
  let mode = 'open';
  let refuseUntil = 0;
  const refusing = () => mode === 'cut' && (refuseUntil === 0 || Date.now() < refuseUntil);
  const server = net.createServer((client) => {
    if (refusing()) return client.destroy();
    if (mode === 'cut') mode = 'open'; // a timed cut is over
    const upstream = net.connect(targetPort, targetHost);
    /** @type {[net.Socket, net.Socket]} */
    const pair = [client, upstream];
    pairs.add(pair);
    client.pipe(upstream).pipe(client);
    if (mode === 'hung') {
      client.pause();
      upstream.pause();
    }
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const dropAll = () => {
    const n = pairs.size;
    for (const [a, b] of [...pairs]) {
      a.destroy();
      b.destroy();
    }
    pairs.clear();
    return n;
  };
  return {
    port: /** @type {net.AddressInfo} */ (server.address()).port,
    /** @param {number} [refuseMs] */
    cut(refuseMs) {
      mode = 'cut';
      refuseUntil = refuseMs === undefined ? 0 : Date.now() + refuseMs;
      return dropAll();
    },
    hang() {
      mode = 'hung';
      for (const [a, b] of pairs) {
        a.pause();
        b.pause();
      }
    },
    restore() {
      mode = 'open';
      refuseUntil = 0;
      for (const [a, b] of pairs) {
        a.resume();
        b.resume();
      }
    },
    /** @returns {Promise<void>} */
    close() {
      dropAll();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
