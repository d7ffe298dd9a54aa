// The stream-sweep bench's yardstick: the least a sweep of the same matches must do, written plainly, in its own
// process (so its CPU is its own and the service process's memory is the service's alone). Per tick:
//   1. one query for the active VERIFIED_STREAM matches with their players' channels, one for its side rows;
//   2. one Helix token (first tick), Get Streams 100 logins a request (4 in flight, as the service), SRS pages of
//      1000 streams until the listing ends — the same requests the service makes;
//   3. per side: live and the title from Twitch, FPS from Δframes / Δlive_ms since its previous tick, bitrate →
//      healthy / violating / unknown;
//   4. every side's state (version + 1, a small JSON state, last sample time and outcome) upserted with the
//      version check, 500 matches a statement, into its own table `bare_sides` (same shape as stream_sides) so the
//      service's state is untouched.
// No grace episodes, leases, evidence or checklist: what it leaves out is what the service's extra cost buys.
// IPC: {cmd:'start', databaseUrl, twitch, srs} → {ok}; {cmd:'sweep', at} → {ok, cpuMs, wallMs, sides, outcomes}.
import { performance } from 'node:perf_hooks';
import pg from 'pg';

let pool;
let cfg;
let token = null;
/** SRS stream id → { frames, liveMs } of the previous tick. */
let frames = new Map();

const MIN_FPS = 30;
const MIN_KBPS = 2500;

async function twitchToken() {
  const body = new URLSearchParams({
    client_id: cfg.twitch.clientId,
    client_secret: cfg.twitch.clientSecret,
    grant_type: 'client_credentials',
  });
  const res = await fetch(cfg.twitch.authUrl, { method: 'POST', body });
  if (!res.ok) throw new Error(`token ${res.status}`);
  return (await res.json()).access_token;
}

async function twitchStreams(logins) {
  token ??= await twitchToken();
  const live = new Map();
  const batches = [];
  for (let i = 0; i < logins.length; i += 100) batches.push(logins.slice(i, i + 100));
  let next = 0;
  const worker = async () => {
    while (next < batches.length) {
      const batch = batches[next++];
      const url = new URL(`${cfg.twitch.apiUrl.replace(/\/+$/, '')}/streams`);
      url.searchParams.set('first', '100');
      for (const l of batch) url.searchParams.append('user_login', l);
      const res = await fetch(url, { headers: { 'Client-Id': cfg.twitch.clientId, Authorization: `Bearer ${token}` } });
      if (!res.ok) continue; // unknown this tick
      for (const s of (await res.json()).data) live.set(s.user_login.toLowerCase(), s);
    }
  };
  await Promise.all(Array.from({ length: Math.min(4, batches.length) }, worker));
  return live;
}

async function srsStreams() {
  const byName = new Map();
  for (let start = 0; ; ) {
    const res = await fetch(`${cfg.srs.replace(/\/+$/, '')}/api/v1/streams?start=${start}&count=1000`);
    if (!res.ok) return null;
    const page = await res.json();
    for (const s of page.streams) byName.set(`${s.app}/${s.name}`, s);
    start += page.streams.length;
    if (page.streams.length === 0 || (page.total !== undefined && start >= page.total)) break;
  }
  return byName;
}

function titleHasId(title, id) {
  return title.includes(`[${id}]`) || title.includes(`#${id}`);
}

async function sweep(at) {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const { rows } = await pool.query(
    `SELECT m.id, p.side, p.stream_channels FROM matches m JOIN match_players p ON p.match_id = m.id
     WHERE m.mode = 'VERIFIED_STREAM' AND m.status = 'IN_PROGRESS'`,
  );
  const versions = new Map();
  for (const r of (await pool.query('SELECT match_id, side, version FROM bare_sides')).rows)
    versions.set(`${r.match_id}/${r.side}`, r.version);
  const logins = [];
  for (const r of rows) for (const c of r.stream_channels) if (c.startsWith('twitch:')) logins.push(c.slice(7));
  const [twitch, srs] = await Promise.all([twitchStreams(logins), srsStreams()]);
  const nextFrames = new Map();
  const outcomes = { healthy: 0, violating: 0, unknown: 0 };
  const writes = [];
  for (const r of rows) {
    let live = null;
    let titleOk = null;
    let fps = null;
    let kbps = null;
    for (const c of r.stream_channels) {
      if (c.startsWith('twitch:')) {
        const s = twitch.get(c.slice(7).toLowerCase());
        live = s?.type === 'live';
        titleOk = live ? titleHasId(s.title, r.id) : null;
      } else if (c.startsWith('srs:') && srs) {
        const s = srs.get(c.slice(4));
        if (!s?.publish?.active) {
          fps = 0;
          kbps = 0;
          continue;
        }
        const prev = frames.get(s.id);
        nextFrames.set(s.id, { frames: s.frames, liveMs: s.live_ms });
        fps = prev && s.live_ms > prev.liveMs ? ((s.frames - prev.frames) * 1000) / (s.live_ms - prev.liveMs) : null;
        kbps = s.kbps?.recv_30s ?? null;
      }
    }
    const violating = live === false || titleOk === false || (fps !== null && fps < MIN_FPS) || (kbps !== null && kbps < MIN_KBPS);
    const outcome = violating ? 'violating' : live === null || titleOk === null || fps === null || kbps === null ? 'unknown' : 'healthy';
    outcomes[outcome]++;
    const version = versions.get(`${r.id}/${r.side}`) ?? 0;
    writes.push({
      match_id: r.id,
      side: r.side,
      version: version + 1,
      grace: { lastSampleAt: at, lastSampleOutcome: outcome },
      last_sample_at: new Date(at).toISOString(),
      last_outcome: outcome,
    });
  }
  frames = nextFrames;
  for (let i = 0; i < writes.length; i += 1000) {
    await pool.query(
      `INSERT INTO bare_sides (match_id, side, version, grace, last_sample_at, last_outcome, updated_at)
       SELECT x.match_id, x.side, x.version, x.grace, x.last_sample_at, x.last_outcome, now()
       FROM jsonb_to_recordset($1::jsonb) AS x(match_id text, side text, version integer, grace jsonb, last_sample_at timestamptz, last_outcome text)
       ON CONFLICT (match_id, side) DO UPDATE SET version = EXCLUDED.version, grace = EXCLUDED.grace,
         last_sample_at = EXCLUDED.last_sample_at, last_outcome = EXCLUDED.last_outcome, updated_at = EXCLUDED.updated_at
       WHERE bare_sides.version = EXCLUDED.version - 1`,
      [JSON.stringify(writes.slice(i, i + 1000))],
    );
  }
  const cpu = process.cpuUsage(cpu0);
  return { cpuMs: Math.round((cpu.user + cpu.system) / 1000), wallMs: Math.round(performance.now() - t0), sides: writes.length, outcomes };
}

process.on('message', async (message) => {
  try {
    if (message.cmd === 'start') {
      cfg = message;
      pool = new pg.Pool({ connectionString: message.databaseUrl, max: 4 });
      await pool.query(
        `CREATE TABLE IF NOT EXISTS bare_sides (match_id text NOT NULL, side text NOT NULL, version integer NOT NULL,
           grace jsonb NOT NULL, last_sample_at timestamptz, last_outcome text, updated_at timestamptz NOT NULL, PRIMARY KEY (match_id, side))`,
      );
      process.send({ ok: true });
    } else if (message.cmd === 'sweep') {
      process.send({ ok: true, ...(await sweep(message.at)) });
    } else if (message.cmd === 'close') {
      await pool?.end();
      process.send({ ok: true });
      process.exit(0);
    }
  } catch (error) {
    process.send({ ok: false, error: String(error?.stack ?? error) });
  }
});
process.send({ ready: true });
