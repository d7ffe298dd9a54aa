#!/usr/bin/env node
// Local services for integration/e2e tests and CI: PostgreSQL, Redis and a real single-node Apache Kafka broker
// (4.1.2, KRaft combined mode) fetched from Maven Central — no Docker (shared spec kafka.md, recipe B).
//
//   node scripts/services.mjs up       make sure PostgreSQL + Redis answer, start (or reuse) Kafka, create topics
//   node scripts/services.mjs down     stop the Kafka broker this script started (recorded PID only), wipe its data
//   node scripts/services.mjs status   print what answers
//
// Environment: KAFKA_TEST_PORT (default 19092), KAFKA_TEST_CONTROLLER_PORT (default port+1),
// KAFKA_START_TIMEOUT_MS (default 120000), KAFKA_HEAP (default 1g), KAFKA_TEST_STATE_DIR (default .cache/kafka:
// data, logs, pid and properties of this broker; the jars always live in .cache/kafka/libs).
// Files (all under the git-ignored .cache/kafka/): libs/ (jars), data/, logs/broker.out, server.properties,
// broker.pid, brokers (the bootstrap address, e.g. "127.0.0.1:19092").
//
// Plain Node ESM, node built-ins plus @platformatic/kafka only. Exports ensureTopics/pingKafka/readBrokers so
// tests can create their own (prefixed) topics.

import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, openSync, closeSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import net from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
// KAFKA_TEST_STATE_DIR puts a second broker's data, logs and pid elsewhere (the chaos run's own broker); jars stay shared.
const CACHE = process.env.KAFKA_TEST_STATE_DIR ? resolve(process.env.KAFKA_TEST_STATE_DIR) : join(ROOT, '.cache', 'kafka');
const LIBS = join(ROOT, '.cache', 'kafka', 'libs');
const DATA = join(CACHE, 'data');
const LOGS = join(CACHE, 'logs');
const BROKER_OUT = join(LOGS, 'broker.out');
const PID_FILE = join(CACHE, 'broker.pid');
const BROKERS_FILE = join(CACHE, 'brokers');
const SERVER_PROPS = join(CACHE, 'server.properties');
const LIBS_MARKER = join(LIBS, '.complete');
const TOOLS = join(ROOT, 'tools', 'kafka');
const POM = join(TOOLS, 'pom.xml');
const LOG4J = join(TOOLS, 'log4j2.properties');
const TEMPLATE = join(TOOLS, 'server.properties.tmpl');

export const KAFKA_PORT = Number(process.env.KAFKA_TEST_PORT ?? 19092);
export const CONTROLLER_PORT = Number(process.env.KAFKA_TEST_CONTROLLER_PORT ?? KAFKA_PORT + 1);
export const KAFKA_ADDRESS = `127.0.0.1:${KAFKA_PORT}`;
const START_TIMEOUT_MS = Number(process.env.KAFKA_START_TIMEOUT_MS ?? 120_000);

/**
 * Same list as src/events/topics.ts (`ALL_TOPICS`), hard-coded because this script runs before any build.
 * Keep the two in sync.
 */
export const ALL_TOPICS = [
  'server.reserved',
  'server.ready',
  'server.failed',
  'server.released',
  'stream.health.warn',
  'stream.health.check',
  'match.forfeit',
  'match.dispute',
  'match.cancelled',
  'overlay.violation',
  'hmac.verification.failed',
  'replay.attack.detected',
  'workers.dead-letter',
];

/** Jars that must be present for the broker and the storage tool to run with logging. */
const REQUIRED_JARS = [
  /^kafka_2\.13-4\.1\.2\.jar$/,
  /^kafka-clients-4\.1\.2\.jar$/,
  /^kafka-server-4\.1\.2\.jar$/,
  /^kafka-raft-4\.1\.2\.jar$/,
  /^kafka-metadata-4\.1\.2\.jar$/,
  /^scala-library-2\.13\.\d+\.jar$/,
  /^log4j-core-2\.24\.3\.jar$/,
  /^log4j-slf4j-impl-2\.24\.3\.jar$/,
  /^slf4j-api-1\.7\.\d+\.jar$/,
];

// ---------------------------------------------------------------------------------------------------------------
// small helpers

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (msg) => console.log(`[services] ${msg}`);
const secs = (ms) => `${(ms / 1000).toFixed(1)}s`;

class ServiceError extends Error {}

function which(cmd) {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(join(dir, cmd))) return join(dir, cmd);
  }
  return null;
}

function pidAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

/** True if `pid` is a JVM running kafka.Kafka (guards against a recycled PID). */
function isKafkaProcess(pid) {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return cmdline.includes('kafka.Kafka');
  } catch {
    return false;
  }
}

function readPid() {
  try {
    const pid = Number(readFileSync(PID_FILE, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/** Opens a TCP connection, optionally writes `probe`, resolves with the first bytes received (or '' if none). */
function tcpProbe(host, port, probe, timeoutMs = 2000) {
  return new Promise((resolvePromise, reject) => {
    const socket = net.connect({ host, port });
    let data = Buffer.alloc(0);
    const done = (err, value) => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolvePromise(value);
    };
    const timer = setTimeout(() => done(new Error(`timeout after ${timeoutMs} ms`)), timeoutMs);
    socket.once('error', (err) => done(err));
    socket.once('connect', () => {
      if (probe === undefined) done(null, Buffer.alloc(0));
      else socket.write(probe);
    });
    socket.on('data', (chunk) => {
      data = Buffer.concat([data, chunk]);
      done(null, data);
    });
    socket.once('end', () => done(null, data));
  });
}

// ---------------------------------------------------------------------------------------------------------------
// PostgreSQL and Redis

/** PostgreSQL SSLRequest: a live server answers a single byte 'S' or 'N'. */
async function postgresAnswers() {
  try {
    const req = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
    const res = await tcpProbe('127.0.0.1', 5432, req);
    return res.length >= 1 && (res[0] === 0x53 || res[0] === 0x4e);
  } catch {
    return false;
  }
}

async function redisAnswers() {
  try {
    const res = (await tcpProbe('127.0.0.1', 6379, 'PING\r\n')).toString('utf8');
    // -NOAUTH still proves a live Redis; the tests' REDIS_URL is responsible for credentials.
    return res.startsWith('+PONG') || res.startsWith('-NOAUTH');
  } catch {
    return false;
  }
}

async function waitFor(check, timeoutMs, intervalMs = 500) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await sleep(intervalMs);
  }
  return check();
}

function run(cmd, args, opts = {}) {
  const res = spawnSync(cmd, args, { stdio: 'inherit', ...opts });
  if (res.error) return { ok: false, detail: res.error.message };
  return { ok: res.status === 0, detail: `exit code ${res.status}` };
}

async function ensurePostgres() {
  if (await postgresAnswers()) {
    log('PostgreSQL answers on 127.0.0.1:5432');
    return;
  }
  const ctl = which('pg_ctlcluster');
  const versions = existsSync('/etc/postgresql') ? readdirSync('/etc/postgresql') : [];
  if (ctl && versions.length > 0) {
    for (const version of versions) {
      log(`PostgreSQL not answering; running: pg_ctlcluster --skip-systemctl-redirect ${version} main start`);
      const r = run(ctl, ['--skip-systemctl-redirect', version, 'main', 'start']);
      if (!r.ok) log(`pg_ctlcluster ${version} main start failed (${r.detail})`);
    }
    if (await waitFor(postgresAnswers, 30_000)) {
      log('PostgreSQL answers on 127.0.0.1:5432');
      return;
    }
  }
  throw new ServiceError(
    'PostgreSQL is not reachable on 127.0.0.1:5432' +
      (ctl ? ' (pg_ctlcluster start did not bring it up)' : ' and pg_ctlcluster is not installed'),
  );
}

async function ensureRedis() {
  if (await redisAnswers()) {
    log('Redis answers PING on 127.0.0.1:6379');
    return;
  }
  const server = which('redis-server');
  if (server) {
    log('Redis not answering; starting redis-server --daemonize yes on 127.0.0.1:6379');
    for (const dir of ['/var/lib/redis', '/var/log/redis']) mkdirSync(dir, { recursive: true });
    const r = run(server, [
      '--daemonize',
      'yes',
      '--bind',
      '127.0.0.1',
      '-::1',
      '--port',
      '6379',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      '/var/lib/redis',
      '--logfile',
      '/var/log/redis/ci.log',
    ]);
    if (!r.ok) log(`redis-server failed (${r.detail})`);
    if (await waitFor(redisAnswers, 15_000)) {
      log('Redis answers PING on 127.0.0.1:6379');
      return;
    }
  }
  throw new ServiceError(
    'Redis is not reachable on 127.0.0.1:6379' + (server ? ' (redis-server did not bring it up)' : ' and redis-server is not installed'),
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Kafka client helpers (exported for tests)

async function kafkaLib() {
  return import('@platformatic/kafka');
}

async function withTimeout(promise, ms, what) {
  let timer;
  try {
    return await Promise.race([
      promise,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: timeout after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves with the broker ids if a metadata call succeeds within `timeoutMs`, else rejects. */
export async function pingKafka(brokers, timeoutMs = 3000) {
  const { Admin } = await kafkaLib();
  const admin = new Admin({
    clientId: 'services-ping',
    bootstrapBrokers: brokers,
    retries: 0,
    timeout: timeoutMs,
    connectTimeout: timeoutMs,
    requestTimeout: timeoutMs,
  });
  try {
    const md = await withTimeout(admin.metadata({ topics: [] }), timeoutMs, 'kafka metadata');
    return [...md.brokers.keys()];
  } finally {
    await admin.close().catch(() => {});
  }
}

/** Creates `prefix + topic` for every topic (3 partitions, replication 1 by default); existing topics are fine. */
export async function ensureTopics(brokers, topics = ALL_TOPICS, { partitions = 3, replicas = 1, prefix = '' } = {}) {
  const { Admin } = await kafkaLib();
  const admin = new Admin({ clientId: 'services-topics', bootstrapBrokers: brokers, retries: 5, retryDelay: 500 });
  try {
    const wanted = topics.map((t) => prefix + t);
    const existing = new Set(await admin.listTopics());
    const missing = wanted.filter((t) => !existing.has(t));
    const created = [];
    for (const topic of missing) {
      try {
        await admin.createTopics({ topics: [topic], partitions, replicas });
        created.push(topic);
      } catch (err) {
        if (!isAlreadyExists(err)) throw err;
      }
    }
    return { created, existing: wanted.filter((t) => !created.includes(t)) };
  } finally {
    await admin.close().catch(() => {});
  }
}

function isAlreadyExists(err) {
  if (!err) return false;
  if (typeof err.findBy === 'function' && err.findBy('apiId', 'TOPIC_ALREADY_EXISTS')) return true;
  return /already exists/i.test(String(err.message)) || (err.errors ?? []).some(isAlreadyExists);
}

/** The broker address written by `up` (env KAFKA_BROKERS wins), as a list. */
export function readBrokers() {
  const env = process.env.KAFKA_BROKERS?.trim();
  if (env)
    return env
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  try {
    return readFileSync(BROKERS_FILE, 'utf8').trim().split(',').filter(Boolean);
  } catch {
    return [KAFKA_ADDRESS];
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Kafka broker lifecycle

function pomHash() {
  return createHash('sha256').update(readFileSync(POM)).digest('hex');
}

function libsComplete() {
  if (!existsSync(LIBS_MARKER)) return false;
  if (readFileSync(LIBS_MARKER, 'utf8').trim() !== pomHash()) return false;
  const jars = readdirSync(LIBS);
  return REQUIRED_JARS.every((re) => jars.some((j) => re.test(j))) && !jars.some((j) => /^slf4j-api-2\./.test(j));
}

function fetchJars() {
  if (libsComplete()) {
    log(`jars: cached in ${LIBS} (${readdirSync(LIBS).filter((j) => j.endsWith('.jar')).length} jars)`);
    return 0;
  }
  if (!which('mvn')) throw new ServiceError('Kafka: Maven (mvn) is not installed; it is needed to fetch the broker jars');
  const t0 = Date.now();
  rmSync(LIBS, { recursive: true, force: true });
  mkdirSync(LIBS, { recursive: true });
  log('jars: fetching Kafka 4.1.2 runtime classpath from Maven Central (mvn copy-dependencies) ...');
  // outputDirectory must be absolute: Maven resolves a relative one against the POM's directory.
  const res = spawnSync(
    'mvn',
    [
      '-B',
      '-q',
      '-f',
      POM,
      'org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies',
      '-DincludeScope=runtime',
      `-DoutputDirectory=${LIBS}`,
    ],
    { cwd: ROOT, encoding: 'utf8' },
  );
  if (res.error || res.status !== 0) {
    // Maven's output is only shown on failure (with -q it is just colour codes otherwise).
    throw new ServiceError(
      `Kafka: fetching jars with Maven failed (${res.error?.message ?? `exit ${res.status}`}); is Maven Central reachable?\n${res.stdout}${res.stderr}`,
    );
  }
  const jars = readdirSync(LIBS);
  const missing = REQUIRED_JARS.filter((re) => !jars.some((j) => re.test(j)));
  if (missing.length > 0) throw new ServiceError(`Kafka: jars missing after Maven fetch: ${missing.map(String).join(', ')}`);
  writeFileSync(LIBS_MARKER, `${pomHash()}\n`);
  const ms = Date.now() - t0;
  log(`jars: fetched ${jars.filter((j) => j.endsWith('.jar')).length} jars in ${secs(ms)}`);
  return ms;
}

function renderServerProperties() {
  const text = readFileSync(TEMPLATE, 'utf8')
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal placeholder of the properties template
    .replaceAll('${KAFKA_PORT}', String(KAFKA_PORT))
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal placeholder of the properties template
    .replaceAll('${CONTROLLER_PORT}', String(CONTROLLER_PORT))
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal placeholder of the properties template
    .replaceAll('${DATA_DIR}', DATA);
  writeFileSync(SERVER_PROPS, text);
}

const javaLog4j = () => `-Dlog4j2.configurationFile=${LOG4J}`;
const classpath = () => `${LIBS}/*`;

function formatStorage() {
  const t0 = Date.now();
  rmSync(DATA, { recursive: true, force: true });
  mkdirSync(DATA, { recursive: true });
  // A cluster id is the base64url form of a 16-byte UUID (what `StorageTool random-uuid` prints).
  const clusterId = randomBytes(16).toString('base64url');
  const res = spawnSync(
    'java',
    [
      '-Xmx256m',
      '-cp',
      classpath(),
      javaLog4j(),
      `-Dkafka.logs.dir=${LOGS}`,
      'kafka.tools.StorageTool',
      'format',
      '--standalone',
      '--cluster-id',
      clusterId,
      '--config',
      SERVER_PROPS,
      '--ignore-formatted',
    ],
    { cwd: ROOT, encoding: 'utf8' },
  );
  if (res.error || res.status !== 0) {
    throw new ServiceError(`Kafka: storage format failed (${res.error?.message ?? `exit ${res.status}`}):\n${res.stdout}${res.stderr}`);
  }
  const ms = Date.now() - t0;
  log(`format: storage formatted in ${secs(ms)} (cluster id ${clusterId})`);
  return ms;
}

function startBrokerProcess() {
  mkdirSync(LOGS, { recursive: true });
  const out = openSync(BROKER_OUT, 'w');
  const heap = process.env.KAFKA_HEAP ?? '1g';
  const child = spawn(
    'java',
    [
      '-Xms256m',
      `-Xmx${heap}`,
      '-server',
      '-XX:+UseG1GC',
      '-XX:MaxGCPauseMillis=20',
      '-XX:InitiatingHeapOccupancyPercent=35',
      '-XX:+ExplicitGCInvokesConcurrent',
      '-XX:MaxInlineLevel=15',
      '-Djava.awt.headless=true',
      `-Dkafka.logs.dir=${LOGS}`,
      javaLog4j(),
      '-cp',
      classpath(),
      'kafka.Kafka',
      SERVER_PROPS,
    ],
    { cwd: ROOT, detached: true, stdio: ['ignore', out, out] },
  );
  closeSync(out);
  child.unref();
  writeFileSync(PID_FILE, `${child.pid}\n`);
  return child.pid;
}

function logTail(lines = 40) {
  try {
    return readFileSync(BROKER_OUT, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no broker log)';
  }
}

async function waitForBroker(pid) {
  const t0 = Date.now();
  let lastReport = t0;
  let logSeen = false;
  let lastError = '';
  while (Date.now() - t0 < START_TIMEOUT_MS) {
    if (!pidAlive(pid)) {
      throw new ServiceError(`Kafka: broker process ${pid} exited during startup. Last log lines (${BROKER_OUT}):\n${logTail()}`);
    }
    if (!logSeen) {
      try {
        logSeen = readFileSync(BROKER_OUT, 'utf8').includes('Kafka Server started');
      } catch {
        /* not yet written */
      }
    }
    if (logSeen) {
      try {
        const ids = await pingKafka([KAFKA_ADDRESS], 3000);
        if (ids.length > 0) return Date.now() - t0;
        lastError = 'metadata lists no broker';
      } catch (err) {
        lastError = err.message;
      }
    }
    if (Date.now() - lastReport >= 5000) {
      lastReport = Date.now();
      log(
        `start: waiting for the broker ... ${secs(Date.now() - t0)} (${logSeen ? `log ready, metadata: ${lastError}` : 'no "Kafka Server started" yet'})`,
      );
    }
    await sleep(500);
  }
  throw new ServiceError(
    `Kafka: broker not ready after ${secs(START_TIMEOUT_MS)} (pid ${pid}; ${logSeen ? `metadata: ${lastError}` : 'no "Kafka Server started" in the log'}). Last log lines:\n${logTail()}`,
  );
}

async function kafkaAnswers() {
  try {
    return (await pingKafka([KAFKA_ADDRESS], 2000)).length > 0;
  } catch {
    return false;
  }
}

async function ensureKafka() {
  mkdirSync(CACHE, { recursive: true });
  const timings = {};
  if (await kafkaAnswers()) {
    const pid = readPid();
    log(
      `Kafka: a broker already answers on ${KAFKA_ADDRESS}; reusing it${pid && pidAlive(pid) ? ` (pid ${pid})` : ' (not started by this script)'}`,
    );
  } else {
    const oldPid = readPid();
    if (oldPid && pidAlive(oldPid) && isKafkaProcess(oldPid)) {
      // Started earlier but not answering yet (or hung): wait for it rather than starting a second broker.
      log(`Kafka: broker pid ${oldPid} is running but not answering yet; waiting for it`);
      timings.start = await waitForBroker(oldPid);
    } else {
      if (oldPid) rmSync(PID_FILE, { force: true });
      if (!which('java')) throw new ServiceError('Kafka: java is not installed (Java 17+ is required)');
      timings.fetch = fetchJars();
      renderServerProperties();
      timings.format = formatStorage();
      const pid = startBrokerProcess();
      log(`start: broker started, pid ${pid}, log ${BROKER_OUT}`);
      timings.start = await waitForBroker(pid);
      log(`start: broker ready on ${KAFKA_ADDRESS} in ${secs(timings.start)}`);
    }
  }
  const t0 = Date.now();
  const { created } = await ensureTopics([KAFKA_ADDRESS], ALL_TOPICS, { partitions: 3 });
  timings.topics = Date.now() - t0;
  log(`topics: ${created.length} created, ${ALL_TOPICS.length - created.length} already present (${secs(timings.topics)})`);
  writeFileSync(BROKERS_FILE, `${KAFKA_ADDRESS}\n`);
  log(
    `timings: ${Object.entries(timings)
      .map(([k, v]) => `${k}=${secs(v)}`)
      .join(' ')}`,
  );
  return timings;
}

/**
 * Stops the broker this script recorded (SIGTERM, SIGKILL after 30 s) and starts it again on the same data: a
 * broker restart as an operator does it. Never touches a broker it did not start. Returns the downtime in ms.
 */
export async function restartKafka() {
  const pid = readPid();
  if (!pid || !pidAlive(pid) || !isKafkaProcess(pid))
    throw new ServiceError(`Kafka: no broker recorded in ${PID_FILE}; not restarting anything`);
  const t0 = Date.now();
  process.kill(pid, 'SIGTERM');
  while (pidAlive(pid) && Date.now() - t0 < 30_000) await sleep(200);
  if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
  while (pidAlive(pid)) await sleep(100);
  await waitForBroker(startBrokerProcess());
  return Date.now() - t0;
}

/** `down` for the broker of this KAFKA_TEST_STATE_DIR: stops it (recorded pid only) and wipes its data. */
export async function downKafka() {
  await down();
}

/** `up` for Kafka only (reuse or start), without the PostgreSQL/Redis checks; returns the bootstrap address. */
export async function upKafka() {
  await ensureKafka();
  return KAFKA_ADDRESS;
}

// ---------------------------------------------------------------------------------------------------------------
// commands

async function up() {
  const t0 = Date.now();
  await ensurePostgres();
  await ensureRedis();
  await ensureKafka();
  log(`up: done in ${secs(Date.now() - t0)}`);
  console.log(`KAFKA_BROKERS=${KAFKA_ADDRESS}`);
}

async function down() {
  const pid = readPid();
  if (!pid) {
    log('down: no broker.pid; nothing to stop (a broker not started by this script is never touched)');
  } else if (!pidAlive(pid)) {
    log(`down: recorded broker pid ${pid} is not running`);
  } else if (!isKafkaProcess(pid)) {
    log(`down: pid ${pid} is no longer a kafka.Kafka process (PID reused?); not touching it`);
  } else {
    const t0 = Date.now();
    log(`down: SIGTERM broker pid ${pid}`);
    process.kill(pid, 'SIGTERM');
    while (pidAlive(pid) && Date.now() - t0 < 30_000) await sleep(250);
    if (pidAlive(pid)) {
      log(`down: still running after 30 s; SIGKILL pid ${pid}`);
      process.kill(pid, 'SIGKILL');
      while (pidAlive(pid) && Date.now() - t0 < 35_000) await sleep(100);
    }
    log(`down: broker stopped in ${secs(Date.now() - t0)}`);
  }
  rmSync(PID_FILE, { force: true });
  rmSync(BROKERS_FILE, { force: true });
  rmSync(DATA, { recursive: true, force: true });
  log(`down: removed ${DATA}`);
}

async function status() {
  const pid = readPid();
  const pg = await postgresAnswers();
  const redis = await redisAnswers();
  let kafka = 'not answering';
  try {
    kafka = `answering (brokers ${(await pingKafka([KAFKA_ADDRESS], 2000)).join(',')})`;
  } catch {
    /* keep default */
  }
  console.log(`postgres 127.0.0.1:5432  ${pg ? 'answering' : 'NOT answering'}`);
  console.log(`redis    127.0.0.1:6379  ${redis ? 'answering' : 'NOT answering'}`);
  console.log(`kafka    ${KAFKA_ADDRESS}  ${kafka}; pid ${pid ?? '-'}${pid ? (pidAlive(pid) ? ' (running)' : ' (dead)') : ''}`);
  console.log(`jars     ${existsSync(LIBS) && libsComplete() ? 'cached' : 'not fetched'} (${LIBS})`);
  return pg && redis && kafka.startsWith('answering');
}

async function main(argv) {
  const cmd = argv[0];
  try {
    if (cmd === 'up') await up();
    else if (cmd === 'down') await down();
    else if (cmd === 'status') process.exitCode = (await status()) ? 0 : 1;
    else {
      console.error('usage: node scripts/services.mjs up|down|status');
      process.exitCode = 2;
    }
  } catch (err) {
    console.error(`[services] ERROR: ${err instanceof ServiceError ? err.message : (err.stack ?? err)}`);
    process.exitCode = 1;
  }
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href;
if (isMain) {
  const major = Number(process.versions.node.split('.')[0]);
  const pinned = join(ROOT, 'node_modules', '.bin', 'node');
  if (major < 22 && existsSync(pinned) && !process.env.SERVICES_REEXEC) {
    // @platformatic/kafka 2.x needs Node >= 22.22; the project pins Node 24 through the `node` devDependency.
    const res = spawnSync(pinned, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
      stdio: 'inherit',
      env: { ...process.env, SERVICES_REEXEC: '1' },
    });
    process.exit(res.status ?? 1);
  }
  await main(process.argv.slice(2));
}
