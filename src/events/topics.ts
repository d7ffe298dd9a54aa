/** Topic names are exactly the seed's (SPEC §4), plus the dead-letter topic and `match.cancelled`. */
export const Topics = {
  serverReserved: 'server.reserved',
  serverReady: 'server.ready',
  serverFailed: 'server.failed',
  serverReleased: 'server.released',
  streamHealthWarn: 'stream.health.warn',
  streamHealthCheck: 'stream.health.check',
  matchForfeit: 'match.forfeit',
  matchDispute: 'match.dispute',
  matchCancelled: 'match.cancelled',
  overlayViolation: 'overlay.violation',
  hmacVerificationFailed: 'hmac.verification.failed',
  replayAttackDetected: 'replay.attack.detected',
  deadLetter: 'workers.dead-letter',
} as const;

export type TopicName = (typeof Topics)[keyof typeof Topics];

/** Topics this service consumes. */
export const INPUT_TOPICS = [Topics.serverReserved, Topics.serverReleased, Topics.streamHealthCheck] as const;
export type InputTopic = (typeof INPUT_TOPICS)[number];

export const ALL_TOPICS: readonly string[] = Object.values(Topics);

export function isInputTopic(topic: string): topic is InputTopic {
  return (INPUT_TOPICS as readonly string[]).includes(topic);
}
