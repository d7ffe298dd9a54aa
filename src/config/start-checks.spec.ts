import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.js';
import { checkStart } from './start-checks.js';

const EXTERNAL = { DATABASE_URL: 'postgres://db/flock', REDIS_URL: 'redis://redis:6379', KAFKA_BROKERS: 'kafka:9092' };
const check = (env: Record<string, string>) => checkStart(loadConfig(env), env);

describe('checkStart', () => {
  it('accepts a fully external or a fully embedded configuration', () => {
    expect(check(EXTERNAL)).toEqual({ problems: [], warnings: [] });
    expect(check({})).toEqual({ problems: [], warnings: [] });
  });

  it('refuses a half-embedded configuration and names what is missing', () => {
    const { problems } = check({ DATABASE_URL: EXTERNAL.DATABASE_URL, KAFKA_BROKERS: EXTERNAL.KAFKA_BROKERS });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('REDIS_URL unset');
    expect(problems[0]).toContain('ALLOW_EMBEDDED=redis');
  });

  it('starts half-embedded when the embedded parts are asked for by name (or all)', () => {
    const env = { DATABASE_URL: EXTERNAL.DATABASE_URL, REDIS_URL: EXTERNAL.REDIS_URL };
    expect(check({ ...env, ALLOW_EMBEDDED: 'kafka' }).problems).toEqual([]);
    expect(check({ ...env, ALLOW_EMBEDDED: 'all' }).problems).toEqual([]);
    expect(check({ ...env, ALLOW_EMBEDDED: 'redis' }).problems[0]).toContain('KAFKA_BROKERS unset');
    expect(check({ ...EXTERNAL, ALLOW_EMBEDDED: 'kafak' }).problems).toEqual([
      'ALLOW_EMBEDDED: unknown part "kafak" (use database, redis, kafka or all)',
    ]);
  });

  it('warns about variables that look like ours, suggesting the setting meant, and ignores service links', () => {
    const { problems, warnings } = check({
      ...EXTERNAL,
      REDIS_ULR: 'redis://x',
      PTERO_APP_APIKEY: 'k',
      FLOCK_MODE: 'x',
      REDIS_SERVICE_HOST: '10.0.0.1',
      KAFKA_PORT_9092_TCP: 'tcp://10.0.0.2:9092',
      HOME: '/root',
    });
    expect(problems).toEqual([]);
    expect(warnings).toEqual([
      'FLOCK_MODE is not a setting of this service; it is ignored',
      'PTERO_APP_APIKEY is not a setting of this service (did you mean PTERO_APP_API_KEY?); it is ignored',
      'REDIS_ULR is not a setting of this service (did you mean REDIS_URL?); it is ignored',
    ]);
    expect(warnings.join('\n')).not.toContain('redis://x');
  });
});
