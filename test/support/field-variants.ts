import { expect } from 'vitest';

/**
 * Checks a hand-written reader against the schema it replaced, field by field: for each field of `valid`, every
 * value in `variants[field]` (undefined = the field left out) is put in its place, and the reader must return
 * exactly what `expected` (the old schema's result, null when it refused) does. Returns how many items the
 * oracle accepted and refused, so a test can check that the matrix covers both sides of the line.
 */
export function expectSameAsOracle(
  valid: Readonly<Record<string, unknown>>,
  variants: Readonly<Record<string, readonly unknown[]>>,
  read: (item: unknown) => unknown,
  expected: (item: unknown) => unknown,
): { accepted: number; refused: number } {
  let accepted = 0;
  let refused = 0;
  for (const [field, values] of Object.entries(variants)) {
    for (const value of values) {
      const item: Record<string, unknown> = { ...valid };
      if (value === undefined) delete item[field];
      else item[field] = value;
      const want = expected(item);
      expect({ field, value, got: read(item) }).toEqual({ field, value, got: want });
      if (want === null) refused++;
      else accepted++;
    }
  }
  return { accepted, refused };
}
