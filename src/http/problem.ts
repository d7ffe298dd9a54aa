import { STATUS_CODES } from 'node:http';
import { z } from 'zod';

/**
 * The one error shape of every HTTP answer the service gives (RFC 9457 problem details, docs/errors.md).
 *
 * `type` names the problem (`tag:flocknode-workers,2026:problem:<error>`: a stable identifier, not a link), `title`
 * is the same for every occurrence of that type, `status` repeats the HTTP status, `detail` explains this
 * occurrence. Extension members keep the machine-readable codes callers already read: `error` (the type's short
 * code), `reason` (a finer code, e.g. `ALREADY_REPLAYED`), `issues` (field-level reasons of a 400), `requestId`
 * (on 5xx answers, whose cause is in the logs under that id; every answer also carries `x-request-id`).
 */
export const PROBLEM_CONTENT_TYPE = 'application/problem+json';
export const PROBLEM_TYPE_PREFIX = 'tag:flocknode-workers,2026:problem:';

export const problemSchema = z
  .object({
    type: z.string().startsWith(PROBLEM_TYPE_PREFIX),
    title: z.string().min(1),
    status: z.number().int().min(400).max(599),
    detail: z.string().optional(),
    instance: z.string().optional(),
    error: z.string().regex(/^[a-z][a-z0-9_]*$/),
    reason: z.string().optional(),
    field: z.string().optional(),
    issues: z.array(z.object({ field: z.string(), message: z.string() }).strict()).optional(),
    requestId: z.string().optional(),
  })
  // Refusals may carry facts of their own (an unenforceable match's gaps): extensions are open.
  .catchall(z.unknown())
  .meta({ id: 'Problem', description: 'RFC 9457 problem details (application/problem+json); see docs/errors.md' });

export type Problem = z.infer<typeof problemSchema>;

/** Titles of the problem types the service answers with; any other code falls back to its status's reason phrase. */
const TITLES: Readonly<Record<string, string>> = {
  invalid_request: 'The request is not valid',
  bad_request: 'The request cannot be processed',
  unauthorized: 'Not authenticated',
  forbidden: 'Not allowed from this address',
  not_found: 'Not found',
  method_not_allowed: 'Method not allowed on this route',
  conflict: 'Conflicts with the current state',
  not_replayable: 'The dead letter cannot be replayed',
  payload_too_large: 'The request body is too large',
  unsupported_media_type: 'Unsupported media type',
  too_many_requests: 'Too many requests',
  unavailable: 'A dependency is unavailable; retry later',
  internal: 'Internal error',
  invalid_json: 'The body is not I-JSON',
  unenforceable_match: 'The match cannot be enforced as asked',
  unknown_enforcement_mode: 'Unknown enforcement mode',
};

/** `Not Found` → `not_found`: the code of a status when the thrower named none. */
export function slug(text: string): string {
  return (
    text
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '_')
      .replace(/^_|_$/g, '') || 'error'
  );
}

function statusCode(status: number): string {
  return slug(STATUS_CODES[status] ?? 'error');
}

/** Members of a thrown body that the problem document sets itself. */
const OWN_MEMBERS = new Set(['type', 'title', 'status', 'detail', 'error', 'message', 'statusCode']);

/**
 * The problem document for an error body as thrown (a string, our `{ error, reason?, detail?, issues? }`, or a
 * Nest built-in `{ message, error: 'Not Found', statusCode }`) and its status.
 */
export function toProblem(status: number, body: unknown, extensions: Record<string, unknown> = {}): Problem {
  let code = statusCode(status);
  let detail: string | undefined;
  const extra: Record<string, unknown> = {};
  if (typeof body === 'string') {
    detail = body;
  } else if (body && typeof body === 'object') {
    const thrown = body as Record<string, unknown>;
    if (typeof thrown.error === 'string') code = /^[a-z][a-z0-9_]*$/.test(thrown.error) ? thrown.error : slug(thrown.error);
    if (typeof thrown.detail === 'string') detail = thrown.detail;
    else if (typeof thrown.message === 'string') detail = thrown.message;
    // Everything else is an extension member: `reason`, `issues`, and a refusal's own facts (an unenforceable
    // match's gaps). Throwers build these bodies from codes and checked values, never from secrets.
    for (const [name, value] of Object.entries(thrown)) if (!OWN_MEMBERS.has(name)) extra[name] = value;
  }
  if (detail !== undefined && slug(detail) === code) detail = undefined; // "Not Found" adds nothing to not_found
  return {
    type: `${PROBLEM_TYPE_PREFIX}${code}`,
    title: TITLES[code] ?? STATUS_CODES[status] ?? 'Error',
    status,
    ...(detail === undefined ? {} : { detail }),
    error: code,
    ...extra,
    ...extensions,
  };
}

/** The parts of a Fastify reply `sendProblem` uses. */
export interface ProblemReply {
  status(code: number): ProblemReply;
  header(name: string, value: string): ProblemReply;
  send(payload: string): unknown;
}

/** Sends a problem document with its media type (serialised here, so no JSON serializer rewrites the type). */
export function sendProblem(reply: ProblemReply, problem: Problem): unknown {
  return reply.status(problem.status).header('content-type', `${PROBLEM_CONTENT_TYPE}; charset=utf-8`).send(JSON.stringify(problem));
}
