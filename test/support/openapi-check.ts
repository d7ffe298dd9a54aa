import { Ajv2020 } from 'ajv/dist/2020.js';
import { expect } from 'vitest';

// Checks real answers against an OpenAPI 3.1 document's response schemas (JSON Schema 2020-12, validated by ajv,
// independently of the zod schemas the document was generated from), and records which documented answers were seen.

interface Operation {
  responses: Record<string, { content?: Record<string, unknown> }>;
}
type Document = { paths: Record<string, Record<string, Operation>> };

export interface CheckedAnswer {
  status: number;
  contentType: string | null;
  json: unknown;
}

export class OpenApiCheck {
  private readonly ajv = new Ajv2020({ strict: false, validateSchema: false, validateFormats: false, allErrors: true });
  private readonly seen = new Set<string>();
  private readonly templates: { path: string; pattern: RegExp }[];

  constructor(private readonly document: Document) {
    this.ajv.addSchema(document as object, 'openapi.json');
    this.templates = Object.keys(document.paths).map((path) => ({
      path,
      pattern: new RegExp(`^${path.replace(/\{[^}]+\}/g, '[^/]+').replaceAll('.', '\\.')}$`),
    }));
  }

  /** The documented path template of a concrete path (literal templates win over parameterised ones). */
  template(path: string): string | undefined {
    const bare = path.split('?')[0] ?? '';
    const matches = this.templates.filter((t) => t.pattern.test(bare)).map((t) => t.path);
    return matches.find((t) => !t.includes('{')) ?? matches[0];
  }

  /** Asserts the answer is documented for this method and path, and that its body matches the documented schema. */
  check(method: string, path: string, answer: CheckedAnswer): void {
    const template = this.template(path);
    expect(template, `${method} ${path} is not in the document`).toBeDefined();
    const operation = this.document.paths[template as string]?.[method.toLowerCase()];
    expect(operation, `${method} ${template} is not in the document`).toBeDefined();
    const documented = (operation as Operation).responses[String(answer.status)] ? String(answer.status) : 'default';
    const response = (operation as Operation).responses[documented];
    expect(response, `${method} ${template} → ${answer.status} is not documented`).toBeDefined();
    const mediaType = (answer.contentType ?? '').split(';')[0]?.trim() ?? '';
    const content = response?.content ?? {};
    expect(Object.keys(content), `${method} ${template} → ${answer.status} answered ${mediaType}`).toContain(mediaType);
    const pointer = ['paths', template, method.toLowerCase(), 'responses', documented, 'content', mediaType, 'schema']
      .map((part) => (part as string).replaceAll('~', '~0').replaceAll('/', '~1'))
      .join('/');
    const validate = this.ajv.getSchema(`openapi.json#/${pointer}`);
    expect(validate, `no schema at ${pointer}`).toBeDefined();
    const valid = validate?.(answer.json);
    expect(
      valid,
      `${method} ${path} → ${answer.status}: ${this.ajv.errorsText(validate?.errors)}\n${JSON.stringify(answer.json).slice(0, 2000)}`,
    ).toBe(true);
    this.seen.add(`${method.toUpperCase()} ${template} ${documented}`);
  }

  /** Asserts a body is a problem document as the document's shared `Problem` schema describes it. */
  checkProblem(json: unknown): void {
    const validate = this.ajv.getSchema('openapi.json#/components/schemas/Problem');
    expect(validate, 'the document has no Problem schema').toBeDefined();
    expect(validate?.(json), `${this.ajv.errorsText(validate?.errors)}\n${JSON.stringify(json)}`).toBe(true);
  }

  /** Documented success answers (2xx) no checked answer has shown yet. */
  unseenSuccesses(): string[] {
    const all: string[] = [];
    for (const [path, methods] of Object.entries(this.document.paths))
      for (const [method, operation] of Object.entries(methods))
        for (const status of Object.keys(operation.responses))
          if (/^2\d\d$/.test(status)) all.push(`${method.toUpperCase()} ${path} ${status}`);
    return all.filter((key) => !this.seen.has(key));
  }
}
