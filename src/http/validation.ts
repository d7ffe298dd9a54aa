import { HttpException } from '@nestjs/common';
import type { z } from 'zod';
import { describePath, findNul } from '../infra/db/storable.js';

/**
 * Parses with a zod schema or answers 400 with one line per field. A NUL character anywhere (value or key) is
 * refused first: PostgreSQL text and jsonb cannot hold it, and these values are stored.
 */
export function parseOr400<T>(schema: z.ZodType<T>, value: unknown, where = 'body'): T {
  const nul = findNul(value);
  if (nul) {
    throw new HttpException(
      { error: 'invalid_request', issues: [{ field: describePath(where, nul), message: 'must not contain the NUL character (\\u0000)' }] },
      400,
    );
  }
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  throw new HttpException(
    {
      error: 'invalid_request',
      issues: parsed.error.issues.map((i) => ({ field: [where, ...i.path.map(String)].join('.'), message: i.message })),
    },
    400,
  );
}
