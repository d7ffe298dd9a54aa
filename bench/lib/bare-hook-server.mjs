// The yardstick of bench/hook-throughput.mjs: a BARE Fastify webhook route, run as its own process (forked, with an
// IPC channel), doing only what any signed webhook endpoint must do:
//   raw-body HMAC check (Standard-Webhooks style: HMAC-SHA256 over `${nonce}.${ts}.${rawBody}`, timing-safe compare,
//   ±60 s timestamp window), the nonce spent with SET NX PX on the same Redis, one INSERT of the call into
//   PostgreSQL (pool of 10, as the service's), then 202.
// No JSON parsing in process (PostgreSQL parses the jsonb), no logging, no framework beyond Fastify.
//
// Parent → child: { kind: 'start', databaseUrl, redisUrl, redisPrefix, keys: [{ keyId, secret }] }
// Child → parent: { kind: 'listening', port, pid }
import { createHmac, timingSafeEqual } from 'node:crypto';
import Fastify from 'fastify';
import { Redis } from 'ioredis';
import pg from 'pg';

const SKEW_MS = 60_000;

process.once('message', async (message) => {
  if (message.kind !== 'start') return;
  const secrets = new Map(message.keys.map((k) => [k.keyId, Buffer.from(k.secret, 'base64url')]));
  const pool = new pg.Pool({ connectionString: message.databaseUrl, max: 10 });
  const redis = new Redis(message.redisUrl, {
    keyPrefix: message.redisPrefix,
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
  });
  await redis.connect();
  const app = Fastify({ logger: false, bodyLimit: 65_536 });
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  app.post('/v1/overlay/events', async (request, reply) => {
    const keyId = request.headers['x-key-id'];
    const ts = request.headers['x-ts'];
    const nonce = request.headers['x-nonce'];
    const signature = request.headers['x-signature'];
    const body = request.body;
    const secret = typeof keyId === 'string' ? secrets.get(keyId) : undefined;
    if (!secret || typeof ts !== 'string' || typeof nonce !== 'string' || typeof signature !== 'string' || !Buffer.isBuffer(body)) {
      return reply.code(401).send({ error: 'unauthorized' });
    }
    if (Math.abs(Date.now() - Number(ts)) > SKEW_MS) return reply.code(401).send({ error: 'unauthorized' });
    const mac = createHmac('sha256', secret).update(`${nonce}.${ts}.`).update(body).digest();
    const given = Buffer.from(signature, 'base64');
    if (given.length !== mac.length || !timingSafeEqual(given, mac)) return reply.code(401).send({ error: 'unauthorized' });
    if ((await redis.set(`nonce:${keyId}:${nonce}`, '1', 'PX', 2 * SKEW_MS, 'NX')) !== 'OK')
      return reply.code(401).send({ error: 'unauthorized' });
    await pool.query('INSERT INTO bare_hook_calls (key_id, nonce, body, received_at) VALUES ($1, $2, $3, now())', [
      keyId,
      nonce,
      body.toString('utf8'),
    ]);
    return reply.code(202).send({ ok: true });
  });

  await app.listen({ port: 0, host: '127.0.0.1' });
  process.send({ kind: 'listening', port: app.server.address().port, pid: process.pid });
  process.once('disconnect', async () => {
    await app.close();
    redis.disconnect();
    await pool.end();
    process.exit(0);
  });
});
