// The Twitch Helix and SRS fakes of the stream-sweep bench, in their own process so that the bench's CPU figures
// are the service's alone. Driven over IPC: {cmd:'start', n, clockMs} → {twitch, srs urls}; {cmd:'advance', ms};
// {cmd:'stats'} → request counts since the last stats. Every player streams healthily (60 fps, 6000 kbps,
// title with the match id); match i has Twitch logins p<i>a / p<i>b and SRS streams live/s<i>a / live/s<i>b.
import { join } from 'node:path';
import { DIST } from './common.mjs';

const { ManualClock } = await import(join(DIST, 'src/infra/clock.js'));
const { FakeTwitchHelix } = await import(join(DIST, 'src/demo/simulated/twitch-helix.js'));
const { FakeSrs } = await import(join(DIST, 'src/demo/simulated/srs.js'));

let clock;
let twitch;
let srs;
/** Request counts since the last call (the logs are emptied: they would grow without bound over a long bench). */
function stats() {
  const out = {
    twitchStreams: twitch.streamsRequests().length,
    twitchTokens: twitch.requests.filter((r) => r.route === 'token').length,
    srsPages: srs.requests.length,
    errors: twitch.requests.filter((r) => r.status !== 200).length + srs.requests.filter((r) => r.status !== 200).length,
  };
  twitch.requests.length = 0;
  srs.requests.length = 0;
  return out;
}

/**
 * FakeSrs.publish looks the stream up by a linear scan, which is quadratic for 100k publishers; the bench
 * creates the same stream objects directly (ids in publish order, as publish would number them).
 */
function publishMany(fake, names) {
  let id = 0;
  for (const name of names) {
    id++;
    const stream = {
      id: `vid-${String(id).padStart(7, '0')}`,
      vhost: '__defaultVhost__',
      app: 'live',
      name,
      active: true,
      video: true,
      audio: true,
      fps: 60,
      audioFps: 44_100 / 1024,
      kbps: 6000,
      frames: 0,
      audioFrames: 0,
      stuck: false,
      protocol: 'rtmp',
      updatedAt: clock.now(),
      recvBytes: 0,
      cid: id.toString(16).padStart(8, '0'),
    };
    fake.streams.set(stream.id, stream);
  }
  fake.nextId = id;
}

process.on('message', async (message) => {
  try {
    if (message.cmd === 'start') {
      clock = new ManualClock(message.clockMs);
      // Twitch gives one client id 800 points a minute; the bench lifts that to measure our own cost (see the report).
      twitch = await FakeTwitchHelix.start({ clock, bucketSize: 1_000_000_000 });
      srs = await FakeSrs.start({ clock });
      const names = [];
      for (let i = 0; i < message.n; i++) {
        for (const side of ['a', 'b']) {
          twitch.setChannel(`p${i}${side}`, { live: true, title: `Grand final [m-${i}]` });
          names.push(`s${i}${side}`);
        }
      }
      publishMany(srs, names);
      process.send({
        ok: true,
        twitch: { apiUrl: twitch.apiUrl, authUrl: twitch.authUrl, clientId: twitch.clientId, clientSecret: twitch.clientSecret },
        srs: srs.url,
      });
    } else if (message.cmd === 'advance') {
      clock.advance(message.ms);
      process.send({ ok: true });
    } else if (message.cmd === 'stats') {
      process.send({ ok: true, ...stats() });
    } else if (message.cmd === 'close') {
      await twitch?.close();
      await srs?.close();
      process.send({ ok: true });
      process.exit(0);
    }
  } catch (error) {
    process.send({ ok: false, error: String(error?.stack ?? error) });
  }
});
process.send({ ready: true });
