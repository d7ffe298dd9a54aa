import pino, { type Logger } from 'pino';

export type { Logger };
export const LOGGER = Symbol('Logger');

/** Field names whose values never reach a log line, wherever they appear. */
const REDACT = [
  'secret',
  '*.secret',
  'masterSecret',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'headers["x-flock-signature"]',
  'apiKey',
  '*.apiKey',
  'token',
  '*.token',
  'expectedSignature',
  '*.expectedSignature',
  'clientSecret',
  '*.clientSecret',
];

export function createLogger(level: string, base: Record<string, unknown> = {}, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'flocknode-workers', ...base },
      redact: { paths: REDACT, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}
