import type { Db } from '../../infra/db/db.js';

/** The Twitch logins named by the players of active matches (VERIFIED_STREAM and IN_PROGRESS), lowercased. */
export async function activeTwitchLogins(db: Db): Promise<string[]> {
  const rows = await db
    .selectFrom('match_players as p')
    .innerJoin('matches as m', 'm.id', 'p.match_id')
    .select('p.stream_channels')
    .where('m.mode', '=', 'VERIFIED_STREAM')
    .where('m.status', '=', 'IN_PROGRESS')
    .execute();
  const logins = new Set<string>();
  for (const row of rows) {
    for (const channel of row.stream_channels as unknown as string[]) {
      if (typeof channel === 'string' && channel.toLowerCase().startsWith('twitch:'))
        logins.add(channel.slice('twitch:'.length).toLowerCase());
    }
  }
  return [...logins];
}
