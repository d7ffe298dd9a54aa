import { describe, expect, it } from 'vitest';
import { describeFailure } from './api-client.js';

describe('describeFailure', () => {
  it('reads a problem document: code, reason, detail (else title) and field-level issues', () => {
    expect(
      describeFailure(409, {
        type: 'tag:flocknode-workers,2026:problem:conflict',
        title: 'Conflicts with the current state',
        status: 409,
        detail: 'dead letter d-1 was already replayed',
        error: 'conflict',
        reason: 'ALREADY_REPLAYED',
      }),
    ).toBe('HTTP 409 conflict ALREADY_REPLAYED: dead letter d-1 was already replayed');
    expect(describeFailure(401, { title: 'Not authenticated', status: 401, error: 'unauthorized' })).toBe(
      'HTTP 401 unauthorized: Not authenticated',
    );
    expect(
      describeFailure(400, {
        title: 'The request is not valid',
        error: 'invalid_request',
        issues: [{ field: 'query.limit', message: 'too big' }],
      }),
    ).toBe('HTTP 400 invalid_request: The request is not valid: query.limit: too big');
  });

  it('shows what a non-problem answer (a proxy page) starts with', () => {
    expect(describeFailure(502, '<html>bad gateway</html>')).toBe('HTTP 502 <html>bad gateway</html>');
  });
});
