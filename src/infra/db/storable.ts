/**
 * What PostgreSQL can store, as pure checks for the edges that take input: `text` and `jsonb` cannot hold the
 * NUL character (U+0000), and `integer` columns are 32-bit. Input that breaks these is refused with a 4xx where it
 * arrives instead of failing in the database as a 500.
 */

export const PG_INT4_MIN = -2_147_483_648;
export const PG_INT4_MAX = 2_147_483_647;

/** True for a number an `integer` column holds. */
export function isInt4(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= PG_INT4_MIN && value <= PG_INT4_MAX;
}

/**
 * The path of the first string or object key holding U+0000 (which `text` and `jsonb` reject), or null when the
 * value is storable. Keys are reported as found; array positions as numbers.
 */
export function findNul(value: unknown): (string | number)[] | null {
  if (typeof value === 'string') return value.includes('\u0000') ? [] : null;
  if (typeof value !== 'object' || value === null) return null;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const inner = findNul(value[i]);
      if (inner) return [i, ...inner];
    }
    return null;
  }
  for (const key of Object.keys(value)) {
    if (key.includes('\u0000')) return [key];
    const inner = findNul((value as Record<string, unknown>)[key]);
    if (inner) return [key, ...inner];
  }
  return null;
}

/** A path as a dotted field name for error bodies, with NUL shown escaped (it must not end up in a log raw). */
export function describePath(root: string, path: readonly (string | number)[]): string {
  return [root, ...path.map((p) => String(p).replaceAll('\u0000', '\\u0000'))].join('.');
}
