import { HttpException } from '@nestjs/common';
import type { z } from 'zod';

/** Parses with a zod schema or answers 400 with one line per field. */
export function parseOr400<T>(schema: z.ZodType<T>, value: unknown, where = 'body'): T {
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
