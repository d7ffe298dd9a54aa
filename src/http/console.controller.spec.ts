import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONSOLE_CSP, ConsoleController, findConsoleDir } from './console.controller.js';

@Module({ controllers: [ConsoleController] })
class ConsoleOnly {}

let app: NestFastifyApplication;

beforeAll(async () => {
  app = await NestFactory.create<NestFastifyApplication>(ConsoleOnly, new FastifyAdapter(), { logger: false });
  await app.init();
  await app.getHttpAdapter().getInstance().ready();
});
afterAll(async () => {
  await app?.close();
});

const get = (url: string) => app.getHttpAdapter().getInstance().inject({ method: 'GET', url });

describe('ConsoleController (/console)', () => {
  it("finds the project's console/ folder from src/http", () => {
    expect(findConsoleDir()).toMatch(/\/console$/);
  });

  it('serves the page and its modules with their types and the console policy', async () => {
    const page = await get('/console');
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).toBe(CONSOLE_CSP);
    expect(page.headers['x-frame-options']).toBe('DENY');
    expect(page.body).toContain('<script type="module" src="/console/app.js"></script>');
    const script = await get('/console/app.js');
    expect(script.statusCode).toBe(200);
    expect(script.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(script.headers['content-security-policy']).toBe(CONSOLE_CSP);
    expect((await get('/console/console.css')).headers['content-type']).toBe('text/css; charset=utf-8');
  });

  it('serves only its own files: anything else is 404, and no path reaches the disk', async () => {
    for (const url of ['/console/nope.js', '/console/..%2Fpackage.json', '/console/%2e%2e%2fsrc%2fmain.ts', '/console/index.html.bak']) {
      expect((await get(url)).statusCode, url).toBe(404);
    }
  });
});
