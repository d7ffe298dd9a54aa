import http from 'node:http';
import { canonicalize } from '../../src/security/jcs.js';
import { canonicalString, sign, signCanonical } from '../../src/security/signer.js';
import { parseStrictJson } from '../../src/security/strict-json.js';

export interface RawResponse {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

/** One HTTP request with full control of the header lines (repeats, case) and the body bytes. */
export function rawRequest(
  url: string,
  options: {
    method?: string;
    path: string;
    headers: [string, string][];
    body?: Buffer | string;
    localAddress?: string;
    family?: 4 | 6;
    host?: string;
  },
): Promise<RawResponse> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: options.host ?? u.hostname,
        port: u.port,
        method: options.method ?? 'POST',
        path: options.path,
        ...(options.family ? { family: options.family } : {}),
        ...(options.localAddress ? { localAddress: options.localAddress } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
      },
    );
    // A name given twice is sent as two header lines (setHeader with an array).
    const grouped = new Map<string, string[]>();
    for (const [name, value] of options.headers) grouped.set(name, [...(grouped.get(name) ?? []), value]);
    for (const [name, values] of grouped) req.setHeader(name, values.length === 1 ? values[0]! : values);
    if (options.body !== undefined && !grouped.has('content-length')) req.setHeader('content-length', Buffer.byteLength(options.body));
    req.on('error', reject);
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}

export interface SignedCall {
  headers: Record<string, string>;
  body: string;
}

/**
 * Signs `body` (an object, or exact JSON text) with a key. Inputs the real signer refuses (a malformed nonce or
 * key id, a body for another match) are signed by hand, so the service — not the signer — is what refuses them.
 */
export function signed(keyId: string, secret: string, body: object | string, ts: number, nonce?: string): SignedCall {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  try {
    const result = sign({ keyId, secret, body: text, ts, ...(nonce ? { nonce } : {}) });
    return { headers: { ...result.headers }, body: text };
  } catch {
    const parsed = parseStrictJson(text) as { matchId?: string; type?: string };
    const n = nonce ?? 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
    const canonical = canonicalString({
      keyId,
      ts: String(ts),
      nonce: n,
      matchId: String(parsed.matchId),
      type: String(parsed.type),
      canonicalBody: canonicalize(parsed as never),
    });
    const signature = signCanonical(Buffer.from(secret, 'base64url'), canonical);
    return {
      headers: { 'x-flock-key-id': keyId, 'x-flock-ts': String(ts), 'x-flock-nonce': n, 'x-flock-signature': signature },
      body: text,
    };
  }
}

export function headerPairs(
  headers: Record<string, string>,
  extra: [string, string][] = [],
  contentType = 'application/json',
): [string, string][] {
  return [['content-type', contentType], ...Object.entries(headers), ...extra];
}
