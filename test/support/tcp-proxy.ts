import net from 'node:net';

/** A TCP proxy in front of a real server (Redis, PostgreSQL) that a test can cut, hang and restore. */
export interface TcpProxy {
  /** host:port of the proxy. */
  readonly port: number;
  /** Drops every connection and refuses new ones (the server looks down). */
  cut(): void;
  /** Keeps connections open but forwards nothing, either way (the server looks hung). */
  hang(): void;
  /** Accepts and forwards again (connections dropped by `cut` stay dropped; hung ones resume). */
  restore(): void;
  close(): Promise<void>;
}

export async function tcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const pairs = new Set<[net.Socket, net.Socket]>();
  let mode: 'open' | 'cut' | 'hung' = 'open';
  const server = net.createServer((client) => {
    if (mode === 'cut') return client.destroy();
    const upstream = net.connect(targetPort, targetHost);
    const pair: [net.Socket, net.Socket] = [client, upstream];
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
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    cut() {
      mode = 'cut';
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      pairs.clear();
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
      for (const [a, b] of pairs) {
        a.resume();
        b.resume();
      }
    },
    close() {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      return new Promise((r) => server.close(() => r()));
    },
  };
}
