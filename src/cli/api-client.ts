import { UsageError, type CliIo } from './io.js';

/** The CLI's client of a running service's internal API (the embedded database has one owner: the service). */
export class InternalApiClient {
  constructor(
    private readonly baseUrl: string,
    private readonly token: string | undefined,
  ) {}

  static from(values: { url?: string; token?: string }, io: CliIo): InternalApiClient {
    const url = values.url ?? `http://127.0.0.1:${io.env.PORT ?? '8080'}`;
    try {
      new URL(url);
    } catch {
      throw new UsageError(`--url is not a URL: ${url}`);
    }
    return new InternalApiClient(url.replace(/\/+$/, ''), values.token ?? io.env.INTERNAL_API_TOKEN);
  }

  async request(method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
    if (!this.token) throw new UsageError('no token: pass --token or set INTERNAL_API_TOKEN');
    let response: Response;
    try {
      response = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.token}`,
          accept: 'application/json, application/problem+json',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
        signal: AbortSignal.timeout(15_000),
      });
    } catch (error) {
      throw new Error(`cannot reach the service at ${this.baseUrl}: ${(error as Error).message}`);
    }
    const text = await response.text();
    let json: unknown = text;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      // keep the text
    }
    return { status: response.status, json };
  }
}

/**
 * One line describing a failed API answer: an RFC 9457 problem document (docs/errors.md) gives its code, finer
 * reason, `detail ?? title` and field-level issues; anything else (a proxy's page) is shown truncated.
 */
export function describeFailure(status: number, json: unknown): string {
  if (json && typeof json === 'object') {
    const body = json as {
      error?: string;
      reason?: string;
      title?: string;
      detail?: string;
      issues?: { field: string; message: string }[];
    };
    const code = [body.error, body.reason].filter((part) => typeof part === 'string').join(' ');
    const text = body.detail ?? body.title;
    const issues = Array.isArray(body.issues) ? body.issues.map((i) => `${i.field}: ${i.message}`).join('; ') : '';
    return `HTTP ${status} ${code}${text ? `: ${text}` : ''}${issues ? `: ${issues}` : ''}`.replace(/\s+:/, ':').trim();
  }
  return `HTTP ${status} ${String(json).slice(0, 200)}`;
}
