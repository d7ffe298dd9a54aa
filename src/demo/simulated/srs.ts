/**
 * A protocol-faithful SRS HTTP API fake on a real port: `GET /api/v1/streams?start=&count=` and
 * `GET /api/v1/versions` as SRS answers them (`srs_app_http_api.cpp` SrsGoApiStreams / SrsGoApiVersion,
 * `srs_app_statistic.cpp` SrsStatisticStream::dumps), in the shape of the version it is started as:
 *
 * - `{code: 0, server, service, pid, total, streams: [...]}`; streams are ordered by id (a std::map) and paged
 *   with `start` (≥ 0) and `count` (≥ 1; a missing count reads as 1, as `atoi("")` does in SRS).
 * - each stream: `id, name, vhost, app, tcUrl, url, live_ms` (server time now), `clients, frames`,
 *   `send_bytes, recv_bytes, kbps {recv_30s, send_30s}, publish {active, cid}, video|null, audio|null`.
 *   SRS 5.x, 6.x and 7.0 before 7.0.122: `frames` = cumulative video frames. SRS 7.0.122 and later (#4559):
 *   `frames` = video + audio frames, plus `video_frames` and `audio_frames` (docs/stream-health.md, "SRS versions").
 * - `{code: 0, server, service, pid, data: {major, minor, revision, version}}` for the versions endpoint.
 * - frames grow at the scripted FPS along the injected clock while publishing, after one for the video sequence
 *   header (SRS's receive thread counts every video message); before 7.0.117 only RTMP publishers are counted
 *   (an SRT or WebRTC publisher's `frames` stays 0); unpublish keeps the stream
 *   object (active false, video null) until `remove`; `restart` gives it a new id and a zero counter.
 * - `freeze()`: from then on every answer is the snapshot taken at that moment, byte for byte (what a cache in
 *   front of the API or a stuck SRS worker serves) until `thaw()`.
 * - faults: HTTP status, SRS error code in a 200 answer, hang, connection reset.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { closeLoopback, listenOnLoopback } from './loopback-server.js';
import type { Clock } from '../../infra/clock.js';

export type SrsFault =
  | { kind: 'status'; status: number; body?: string }
  /** HTTP 200 with `{code}` ≠ 0, as srs_api_response_code answers errors. */
  | { kind: 'code'; code: number }
  | { kind: 'hang' }
  | { kind: 'reset' };

export interface PublishOptions {
  fps: number;
  kbps: number;
  vhost?: string;
  /** false: audio only (video null, video frames do not grow). */
  video?: boolean;
  /** false: video only (audio null, audio frames do not grow). */
  audio?: boolean;
  /** Audio frames per second (default 44100 / 1024: AAC at 44.1 kHz). */
  audioFps?: number;
  /** How the encoder publishes (default rtmp). SRS counts SRT frames from 7.0.117 and WebRTC frames from 7.0.118 only. */
  protocol?: 'rtmp' | 'srt' | 'webrtc';
}

/** The SRS release the fake answers as; its `frames` field follows that release (see the header). */
export type SrsVersion = `${number}.${number}.${number}`;

/** AAC at 44.1 kHz: 1024 samples per frame. */
const AAC_44K_FPS = 44_100 / 1024;

interface FakeStream {
  id: string;
  vhost: string;
  app: string;
  name: string;
  active: boolean;
  video: boolean;
  audio: boolean;
  fps: number;
  audioFps: number;
  kbps: number;
  frames: number;
  audioFrames: number;
  /** Statistics no longer updated (a stuck SRS worker), while the clock and listing go on. */
  stuck: boolean;
  protocol: 'rtmp' | 'srt' | 'webrtc';
  updatedAt: number;
  recvBytes: number;
  cid: string;
}

export interface SrsRequestLog {
  at: number;
  path: string;
  start: string | null;
  count: string | null;
  status: number;
}

export class FakeSrs {
  readonly requests: SrsRequestLog[] = [];
  /** Called before each listing request is answered (tests change the stream set between pages with it). */
  beforeListing: ((start: number) => void) | undefined;
  /** Caps `count` per page (real SRS does not; lets tests force paging). */
  maxCount: number | null = null;
  /** Leaves `video_frames`/`audio_frames` out of 7.0.122+ listings (what a proxy keeping only known fields does). */
  stripFrameDetail = false;
  /** Added to `live_ms` (SRS's host clock stepped, e.g. by NTP). */
  clockSkewMs = 0;
  /** Answers the versions endpoint with this HTTP status instead (e.g. a proxy exposing only /api/v1/streams). */
  versionsStatus: number | null = null;

  private readonly clock: Clock;
  private readonly version: readonly [number, number, number];
  private readonly streams = new Map<string, FakeStream>();
  /** Set by freeze(): the listing as it was then, served unchanged. */
  private frozen: { at: number; streams: FakeStream[] } | null = null;
  private readonly faults: SrsFault[] = [];
  private server: Server | null = null;
  private base = '';
  private nextId = 0;

  private constructor(clock: Clock, version: SrsVersion) {
    this.clock = clock;
    const [major = 0, minor = 0, revision = 0] = version.split('.').map(Number);
    this.version = [major, minor, revision];
  }

  /** `version` defaults to 6.0.184 (frames = video frames only). */
  static async start(options: { clock: Clock; version?: SrsVersion }): Promise<FakeSrs> {
    const fake = new FakeSrs(options.clock, options.version ?? '6.0.184');
    await fake.listen();
    return fake;
  }

  /** Like `http://srs:1985` (INGEST_STATS_URL). */
  get url(): string {
    return this.base;
  }

  /** Starts (or resumes) publishing `app/name`; returns the stream id. */
  publish(app: string, name: string, options: PublishOptions): string {
    const existing = this.find(app, name, options.vhost);
    const encoder = {
      active: true,
      video: options.video ?? true,
      audio: options.audio ?? true,
      fps: options.fps,
      audioFps: options.audioFps ?? AAC_44K_FPS,
      kbps: options.kbps,
      protocol: options.protocol ?? 'rtmp',
    };
    if (existing) {
      this.settle(existing);
      Object.assign(existing, encoder);
      this.sequenceHeader(existing);
      return existing.id;
    }
    const stream: FakeStream = {
      id: this.newId(),
      vhost: options.vhost ?? '__defaultVhost__',
      app,
      name,
      ...encoder,
      frames: 0,
      audioFrames: 0,
      stuck: false,
      updatedAt: this.clock.now(),
      recvBytes: 0,
      cid: randomBytes(4).toString('hex'),
    };
    this.sequenceHeader(stream);
    this.streams.set(stream.id, stream);
    return stream.id;
  }

  /** Changes the encoder's output from now on. */
  set(app: string, name: string, change: Partial<Pick<PublishOptions, 'fps' | 'kbps'>>): void {
    const s = this.must(app, name);
    this.settle(s);
    if (change.fps !== undefined) s.fps = change.fps;
    if (change.kbps !== undefined) s.kbps = change.kbps;
  }

  /** The publisher left; SRS keeps the stream object while it has players. */
  unpublish(app: string, name: string): void {
    const s = this.must(app, name);
    this.settle(s);
    s.active = false;
  }

  /** The stream object is cleaned up (no publisher, no players): it disappears from the list. */
  remove(app: string, name: string): void {
    this.streams.delete(this.must(app, name).id);
  }

  /** SRS restarted, or the object was recycled: same app/name, new id, frames from 0. */
  restart(app: string, name: string): string {
    const s = this.must(app, name);
    this.streams.delete(s.id);
    const fresh = { ...s, id: this.newId(), frames: 0, audioFrames: 0, recvBytes: 0, updatedAt: this.clock.now() };
    this.streams.set(fresh.id, fresh);
    return fresh.id;
  }

  /** Resets the frame counter of the same stream id (what a client must treat as a reset, not negative FPS). */
  zeroFrames(app: string, name: string): void {
    const s = this.must(app, name);
    this.settle(s);
    s.frames = 0;
  }

  /** This stream's counters stop (its statistics are no longer updated) while `live_ms` goes on. */
  stickCounters(app: string, name: string): void {
    const s = this.must(app, name);
    this.settle(s);
    s.stuck = true;
  }

  /** From now on every answer is this moment's snapshot, byte for byte, until thaw(). */
  freeze(): void {
    const at = this.clock.now();
    for (const s of this.streams.values()) this.settle(s);
    this.frozen = { at, streams: [...this.streams.values()].map((s) => ({ ...s })) };
  }

  thaw(): void {
    this.frozen = null;
  }

  /** A (re)publish starts with the video sequence header: SRS's receive thread counts it as a video frame. */
  private sequenceHeader(s: FakeStream): void {
    if (s.video && this.countsFrames(s)) s.frames += 1;
  }

  /** SRS before 7.0.117 / 7.0.118 counts the frames of RTMP publishers only (docs/stream-health.md, "SRS versions"). */
  private countsFrames(s: FakeStream): boolean {
    const [major, minor, revision] = this.version;
    const since = s.protocol === 'srt' ? 117 : s.protocol === 'webrtc' ? 118 : 0;
    return s.protocol === 'rtmp' || major > 7 || (major === 7 && (minor > 0 || revision >= since));
  }

  /** Whether `frames` counts audio too (SRS 7.0.122 and later, which also report video_frames/audio_frames). */
  get framesIncludeAudio(): boolean {
    const [major, minor, revision] = this.version;
    return major > 7 || (major === 7 && (minor > 0 || revision >= 122));
  }

  failNext(fault: SrsFault, times = 1): void {
    for (let i = 0; i < times; i++) this.faults.push(fault);
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = null;
    await closeLoopback(server);
  }

  // ─── internals ─────────────────────────────────────────────────────────────────────────────────────────────

  private newId(): string {
    this.nextId++;
    return `vid-${String(this.nextId).padStart(7, '0')}`;
  }

  private find(app: string, name: string, vhost?: string): FakeStream | undefined {
    return [...this.streams.values()].find((s) => s.app === app && s.name === name && (vhost === undefined || s.vhost === vhost));
  }

  private must(app: string, name: string): FakeStream {
    const s = this.find(app, name);
    if (!s) throw new Error(`no stream ${app}/${name}`);
    return s;
  }

  /** Brings the counters up to the clock. */
  private settle(s: FakeStream): void {
    const now = this.clock.now();
    const dt = Math.max(0, now - s.updatedAt) / 1000;
    if (s.active && !s.stuck) {
      if (s.video && this.countsFrames(s)) s.frames += s.fps * dt;
      if (s.audio && this.countsFrames(s)) s.audioFrames += s.audioFps * dt;
      s.recvBytes += (s.kbps * 1000 * dt) / 8;
    }
    s.updatedAt = now;
  }

  private async listen(): Promise<void> {
    ({ server: this.server, base: this.base } = await listenOnLoopback((req, res) => this.handle(req, res)));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.base);
    const entry: SrsRequestLog = {
      at: this.clock.now(),
      path: url.pathname,
      start: url.searchParams.get('start'),
      count: url.searchParams.get('count'),
      status: 0,
    };
    this.requests.push(entry);
    this.beforeListing?.(Number(entry.start ?? 0));
    const fault = this.faults.shift();
    if (fault?.kind === 'hang') return;
    if (fault?.kind === 'reset') {
      entry.status = -1;
      req.socket.destroy();
      return;
    }
    if (fault?.kind === 'status') {
      entry.status = fault.status;
      res.writeHead(fault.status, { 'content-type': 'text/plain' });
      res.end(fault.body ?? 'Internal Server Error');
      return;
    }
    if (fault?.kind === 'code') {
      entry.status = 200;
      this.json(res, { code: fault.code });
      return;
    }
    if (url.pathname === '/api/v1/versions' || url.pathname === '/api/v1/versions/') {
      if (this.versionsStatus !== null) {
        entry.status = this.versionsStatus;
        res.writeHead(this.versionsStatus).end();
        return;
      }
      const [major, minor, revision] = this.version;
      entry.status = 200;
      this.answer(res, { data: { major, minor, revision, version: `${major}.${minor}.${revision}` } });
      return;
    }
    if (url.pathname !== '/api/v1/streams' && url.pathname !== '/api/v1/streams/') {
      entry.status = 404;
      res.writeHead(404).end();
      return;
    }
    if (req.method !== 'GET') {
      entry.status = 405;
      res.writeHead(405).end();
      return;
    }
    const start = Math.max(0, Number.parseInt(url.searchParams.get('start') ?? '', 10) || 0);
    let count = Math.max(1, Number.parseInt(url.searchParams.get('count') ?? '', 10) || 0);
    if (this.maxCount !== null) count = Math.min(count, this.maxCount);
    const frozen = this.frozen;
    const source = frozen ? frozen.streams : [...this.streams.values()];
    const all = [...source].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    if (!frozen) for (const s of all) this.settle(s);
    const liveMs = (frozen ? frozen.at : this.clock.now()) + this.clockSkewMs;
    entry.status = 200;
    this.answer(res, { total: all.length, streams: all.slice(start, start + count).map((s) => this.dump(s, liveMs)) });
  }

  /** A success answer with SRS's common fields (srs_app_http_api.cpp: code, server, service, pid). */
  private answer(res: ServerResponse, fields: Record<string, unknown>): void {
    this.json(res, { code: 0, server: 'vid-fakesrv', service: 'fake0001', pid: '1', ...fields });
  }

  private dump(s: FakeStream, liveMs: number) {
    const videoOn = s.active && s.video;
    const video = Math.floor(s.frames);
    const audio = Math.floor(s.audioFrames);
    const frames = !this.framesIncludeAudio
      ? { frames: video }
      : this.stripFrameDetail
        ? { frames: video + audio }
        : { frames: video + audio, audio_frames: audio, video_frames: video };
    return {
      id: s.id,
      name: s.name,
      vhost: 'vid-vhost01',
      app: s.app,
      tcUrl: `rtmp://127.0.0.1/${s.app}`,
      url: `/${s.app}/${s.name}`,
      live_ms: liveMs,
      clients: s.active ? 1 : 0,
      ...frames,
      send_bytes: 0,
      recv_bytes: Math.floor(s.recvBytes),
      kbps: { recv_30s: s.active ? s.kbps : 0, send_30s: 0 },
      publish: s.active ? { active: true, cid: s.cid } : { active: false },
      video: videoOn ? { codec: 'H264', profile: 'High', level: '4.1', width: 1920, height: 1080 } : null,
      audio: s.active && s.audio ? { codec: 'AAC', sample_rate: 44100, channel: 2, profile: 'LC' } : null,
    };
  }

  private json(res: ServerResponse, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }
}
