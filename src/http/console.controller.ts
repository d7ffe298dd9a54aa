import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { Controller, Get, HttpException, Param, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';

/**
 * The operator console's Content-Security-Policy: only the service's own files run or style the page, the page
 * talks only to its own origin, nothing embeds it, and no form is ever submitted natively (the token never reaches
 * a URL). No inline script or style anywhere: the console is plain files in `console/`.
 */
export const CONSOLE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const CONSOLE_HEADERS: Record<string, string> = {
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'cache-control': 'no-cache',
};

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** `console/` of the project: beside src/ when run from source, two levels up from dist/src/http when built. */
export function findConsoleDir(from = import.meta.dirname): string | undefined {
  let dir = from;
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'console');
    if (existsSync(join(candidate, 'index.html'))) return candidate;
    dir = dirname(dir);
  }
  return undefined;
}

interface Asset {
  body: Buffer;
  type: string;
}

/** The console's files, read once: name → body and type. Only these names are ever served (no path from the URL reaches the disk). */
export function loadConsoleAssets(dir = findConsoleDir()): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  if (!dir) return assets;
  for (const name of readdirSync(dir)) {
    const type = TYPES[extname(name)];
    if (type && /^[a-z0-9-]+\.[a-z]+$/.test(name)) assets.set(name, { body: readFileSync(join(dir, name)), type });
  }
  return assets;
}

/**
 * The operator console at /console: static files only. Its data comes from the internal API with the operator's
 * token (the console asks for it and keeps it in the tab's sessionStorage); the files themselves hold nothing secret.
 */
@Controller('console')
export class ConsoleController {
  private readonly assets = loadConsoleAssets();

  @Get()
  index(@Res({ passthrough: true }) reply: FastifyReply) {
    return this.send(reply, 'index.html');
  }

  @Get(':file')
  file(@Param('file') file: string, @Res({ passthrough: true }) reply: FastifyReply) {
    return this.send(reply, file);
  }

  private send(reply: FastifyReply, name: string) {
    const asset = this.assets.get(name);
    if (!asset) throw new HttpException({ error: 'not_found', detail: 'no such console file' }, 404);
    reply.headers({ ...CONSOLE_HEADERS, 'content-type': asset.type });
    return asset.body;
  }
}
