/**
 * A protocol-faithful MediaMTX control-API fake on a real port: `GET /v3/paths/list?page=&itemsPerPage=` as
 * MediaMTX answers it (`bluenviron/mediamtx` `api/openapi.yaml`, `PathList` / `Path`):
 *
 * - `{pageCount, itemCount, items: [...]}`; paths sorted by name; `page` is 0-based, `itemsPerPage` defaults to 100;
 *   a page that is not a non-negative integer → 400 `{error}`.
 * - each path in the newer shape: `name, confName, source {type, id} | null, available, availableTime, online,
 *   onlineTime, tracks2 [{codec, codecProps}], inboundBytes, inboundFramesInError, outboundBytes, readers`, plus the
 *   deprecated `ready`, `readyTime`, `tracks`, `bytesReceived`, `bytesSent` aliases; `schema: 'legacy'` answers the
 *   older shape only (`ready`, `readyTime`, `tracks`, `bytesReceived`, `bytesSent`).
 * - bytes grow at the scripted bitrate along the injected clock while a publisher is online; a new publish starts a
 *   new session (new `onlineTime`, counter from 0); unpublish keeps the path (configured) but offline.
 * - faults: HTTP status, hang, connection reset.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { closeLoopback, listenOnLoopback } from './loopback-server.js';
import type { Clock } from '../../infra/clock.js';

export type MediaMtxFault = { kind: 'status'; status: number; body?: unknown } | { kind: 'hang' } | { kind: 'reset' };
export type MediaMtxSchema = 'current' | 'legacy';

interface FakePath {
  name: string;
  online: boolean;
  kbps: number;
  bytes: number;
  onlineAt: number | null;
  updatedAt: number;
}

export class FakeMediaMtx {
  readonly requests: { at: number; path: string; page: string | null; itemsPerPage: string | null; status: number }[] = [];
  schema: MediaMtxSchema = 'current';

  private readonly paths = new Map<string, FakePath>();
  private readonly faults: MediaMtxFault[] = [];
  private server: Server | null = null;
  private base = '';

  private constructor(private readonly clock: Clock) {}

  static async start(options: { clock: Clock; schema?: MediaMtxSchema }): Promise<FakeMediaMtx> {
    const fake = new FakeMediaMtx(options.clock);
    fake.schema = options.schema ?? 'current';
    ({ server: fake.server, base: fake.base } = await listenOnLoopback((req, res) => fake.handle(req, res)));
    return fake;
  }

  /** Like `http://mediamtx:9997` (MEDIAMTX_API_URL). */
  get url(): string {
    return this.base;
  }

  /** A publisher connects to `name` (a new session: counter from 0) at `kbps`. */
  publish(name: string, kbps: number): void {
    const p = this.paths.get(name) ?? { name, online: false, kbps: 0, bytes: 0, onlineAt: null, updatedAt: this.clock.now() };
    this.settle(p);
    if (!p.online) Object.assign(p, { online: true, bytes: 0, onlineAt: this.clock.now() });
    p.kbps = kbps;
    this.paths.set(name, p);
  }

  setBitrate(name: string, kbps: number): void {
    const p = this.must(name);
    this.settle(p);
    p.kbps = kbps;
  }

  /** The publisher left; the path stays configured, offline. */
  unpublish(name: string): void {
    const p = this.must(name);
    this.settle(p);
    Object.assign(p, { online: false, onlineAt: null });
  }

  remove(name: string): void {
    this.paths.delete(name);
  }

  failNext(fault: MediaMtxFault, times = 1): void {
    for (let i = 0; i < times; i++) this.faults.push(fault);
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = null;
    await closeLoopback(server);
  }

  private must(name: string): FakePath {
    const p = this.paths.get(name);
    if (!p) throw new Error(`no path ${name}`);
    return p;
  }

  private settle(p: FakePath): void {
    const now = this.clock.now();
    if (p.online) p.bytes += (p.kbps * 1000 * Math.max(0, now - p.updatedAt)) / 1000 / 8;
    p.updatedAt = now;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.base);
    const entry = {
      at: this.clock.now(),
      path: url.pathname,
      page: url.searchParams.get('page'),
      itemsPerPage: url.searchParams.get('itemsPerPage'),
      status: 0,
    };
    this.requests.push(entry);
    const fault = this.faults.shift();
    if (fault?.kind === 'hang') return;
    if (fault?.kind === 'reset') {
      entry.status = -1;
      req.socket.destroy();
      return;
    }
    if (fault?.kind === 'status') {
      entry.status = this.json(res, fault.status, fault.body ?? { error: 'injected' });
      return;
    }
    if (url.pathname !== '/v3/paths/list') {
      entry.status = this.json(res, 404, { error: 'not found' });
      return;
    }
    if (req.method !== 'GET') {
      entry.status = this.json(res, 405, { error: 'method not allowed' });
      return;
    }
    const page = Number(url.searchParams.get('page') ?? '0');
    const perPage = Number(url.searchParams.get('itemsPerPage') ?? '100');
    if (!Number.isInteger(page) || page < 0 || !Number.isInteger(perPage) || perPage < 1) {
      entry.status = this.json(res, 400, { error: 'invalid pagination' });
      return;
    }
    const all = [...this.paths.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const p of all) this.settle(p);
    entry.status = this.json(res, 200, {
      pageCount: Math.ceil(all.length / perPage),
      itemCount: all.length,
      items: all.slice(page * perPage, (page + 1) * perPage).map((p) => this.dump(p)),
    });
  }

  private dump(p: FakePath) {
    const since = p.onlineAt === null ? null : new Date(p.onlineAt).toISOString();
    const bytes = Math.floor(p.bytes);
    const legacy = {
      name: p.name,
      confName: p.name,
      source: p.online ? { type: 'rtmpConn', id: `conn-${p.name}` } : null,
      ready: p.online,
      readyTime: since,
      tracks: p.online ? ['H264', 'MPEG-4 Audio'] : [],
      bytesReceived: bytes,
      bytesSent: 0,
      readers: [],
    };
    if (this.schema === 'legacy') return legacy;
    return {
      ...legacy,
      available: p.online,
      availableTime: since,
      online: p.online,
      onlineTime: since,
      tracks2: p.online
        ? [
            { codec: 'H264', codecProps: { width: 1920, height: 1080, profile: 'High', level: '4.1' } },
            { codec: 'MPEG-4 Audio', codecProps: { sampleRate: 48000, channelCount: 2 } },
          ]
        : [],
      inboundBytes: bytes,
      inboundFramesInError: 0,
      outboundBytes: 0,
    };
  }

  private json(res: ServerResponse, status: number, body: unknown): number {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
    return status;
  }
}
