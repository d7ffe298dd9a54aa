/** Opaque keyset-pagination cursors: the sort key of the last row returned, base64url-encoded JSON. */
export function encodeCursor(key: readonly string[]): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

/** The sort key inside a cursor, or null when the text is not one of ours (answered 400 by the caller). */
export function decodeCursor(text: string, length: number): string[] | null {
  try {
    const key: unknown = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
    return Array.isArray(key) && key.length === length && key.every((k) => typeof k === 'string') ? (key as string[]) : null;
  } catch {
    return null;
  }
}
