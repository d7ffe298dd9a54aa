/**
 * Real services for integration and e2e tests. A test that needs one and cannot reach it FAILS with a message
 * saying how to start it (`npm run services:up`); nothing is skipped.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import net from 'node:net';
import pg from 'pg';
import { ensureTopics, pingKafka } from '../../src/infra/bus/kafka-bus.js';
import { ALL_TOPICS } from '../../src/events/topics.js';

export const ROOT = join(import.meta.dirname, '..', '..');
const ADMIN_DB_URL = process.env.TEST_DATABASE_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export function randomName(prefix: string): string {
  return `${prefix}${randomBytes(5).toString('hex')}`;
}

function canConnect(host: string, port: number, timeoutMs = 1500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** A fresh, empty database on the machine's PostgreSQL; `drop()` removes it. */
export async function freshPostgresDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const admin = new pg.Client({ connectionString: ADMIN_DB_URL, connectionTimeoutMillis: 3000 });
  try {
    await admin.connect();
  } catch (error) {
    throw new Error(`PostgreSQL not reachable at ${ADMIN_DB_URL} (${(error as Error).message}): run \`npm run services:up\``);
  }
  const name = randomName('fw_');
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = ADMIN_DB_URL.replace(/\/[^/]*$/, `/${name}`);
  return {
    url,
    async drop() {
      const c = new pg.Client({ connectionString: ADMIN_DB_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

export async function requireRedis(): Promise<string> {
  const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const u = new URL(url);
  if (!(await canConnect(u.hostname, Number(u.port || 6379)))) {
    throw new Error(`Redis not reachable at ${url}: run \`npm run services:up\``);
  }
  return url;
}

export function kafkaBrokers(): string[] {
  if (process.env.KAFKA_BROKERS) return process.env.KAFKA_BROKERS.split(',');
  const file = join(ROOT, '.cache', 'kafka', 'brokers');
  return [existsSync(file) ? readFileSync(file, 'utf8').trim() : '127.0.0.1:19092'];
}

/** Brokers of the test Kafka, with every topic created under a fresh prefix for this test file. */
export async function requireKafka(prefix: string): Promise<string[]> {
  const brokers = kafkaBrokers();
  if (!(await pingKafka(brokers, 5000))) {
    throw new Error(`Kafka not reachable at ${brokers.join(',')}: run \`npm run services:up\` (starts a local KRaft broker)`);
  }
  await ensureTopics(brokers, ALL_TOPICS, { prefix, partitions: 3 });
  return brokers;
}

export const TEST_SECRETS = {
  OVERLAY_MASTER_SECRET: 'test-overlay-master-secret-0123456789abcdef',
  ADMIN_HOOK_SECRET: 'test-admin-hook-secret-0123456789abcdef-xyz',
  INTERNAL_API_TOKEN: 'test-internal-api-token-0123456789abcdefgh',
} as const;
