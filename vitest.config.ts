import swc from 'unplugin-swc';
import { defineConfig } from 'vitest/config';

// SWC compiles the TypeScript so NestJS decorator metadata survives in tests.
const plugins = [
  swc.vite({
    module: { type: 'es6' },
    jsc: {
      target: 'es2023',
      parser: { syntax: 'typescript', decorators: true },
      transform: { legacyDecorator: true, decoratorMetadata: true },
    },
  }),
];

// Oxc is Vite's default transformer; SWC replaces it here (decorator metadata).
const base = { plugins, oxc: false as const };

export default defineConfig({
  ...base,
  test: {
    projects: [
      { ...base, test: { name: 'unit', include: ['src/**/*.spec.ts'], testTimeout: 20_000, hookTimeout: 60_000 } },
      {
        ...base,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.spec.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
      {
        ...base,
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.spec.ts'],
          testTimeout: 240_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
