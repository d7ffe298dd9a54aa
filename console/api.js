// The internal API as the console calls it. The token lives in sessionStorage (this tab only) and travels as the
// Authorization header the internal API already checks; it is never put in a URL.
import { errorText } from './format.js';

const TOKEN_KEY = 'flocknode.internalApiToken';

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** An answer the console shows as an error; `unauthorized` when the token was refused. */
export class ApiError extends Error {
  constructor(status, body) {
    super(errorText(status, body));
    this.status = status;
    this.unauthorized = status === 401;
  }
}

/** Server time minus browser time (ms), from the Date header of the last answer: countdowns use the server's clock. */
export let clockSkewMs = 0;

/** Calls `path` (already encoded) with the token; resolves to the JSON body or throws ApiError. */
export async function call(method, path, { as = token.get() } = {}) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: { authorization: `Bearer ${as ?? ''}`, accept: 'application/json' },
      cache: 'no-store',
      credentials: 'omit',
      referrerPolicy: 'no-referrer',
    });
  } catch (error) {
    throw new ApiError(0, { detail: `the service did not answer (${error.message})` });
  }
  const served = Date.parse(response.headers.get('date') ?? '');
  if (!Number.isNaN(served)) {
    const skew = served - Date.now();
    // The header has whole seconds: only a real difference is corrected.
    clockSkewMs = Math.abs(skew) > 1500 ? skew : 0;
  }
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = { detail: text.slice(0, 200) };
  }
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

/** `?a=1&b=2` from an object, skipping empty values. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== undefined && value !== null && value !== '') search.set(key, value);
  const text = search.toString();
  return text ? `?${text}` : '';
}

export const api = {
  listMatches: (params) => call('GET', `/v1/internal/matches${query(params)}`),
  getMatch: (id) => call('GET', `/v1/internal/matches/${encodeURIComponent(id)}`),
  listDeadLetters: (params) => call('GET', `/v1/internal/dead-letters${query(params)}`),
  replayDeadLetter: (id) => call('POST', `/v1/internal/dead-letters/${encodeURIComponent(id)}/replay`),
  discardDeadLetter: (id) => call('POST', `/v1/internal/dead-letters/${encodeURIComponent(id)}/discard`),
  /** A cheap authenticated call: does the service accept `candidate`? */
  check: (candidate) => call('GET', '/v1/internal/matches?limit=1', { as: candidate }),
};
