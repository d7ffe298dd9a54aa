import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigMap, Secret, Service } from 'kubernetes-models/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { loadConfig } from '../../src/config/config.js';
import { checkStart } from '../../src/config/start-checks.js';
import { ROOT } from '../support/infra.js';

// The deploy recipe, checked offline: every manifest against the Kubernetes schemas (kubernetes-models), and the
// probes, ports and drain times against the configuration the pods get and the Dockerfile.

const K8S = join(ROOT, 'deploy', 'k8s');
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'v1/ConfigMap': ConfigMap as never,
  'v1/Secret': Secret as never,
  'v1/Service': Service as never,
  'apps/v1/Deployment': Deployment as never,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget as never,
};

// biome-ignore lint/suspicious/noExplicitAny: parsed YAML, walked by known paths and checked by the assertions
type Manifest = Record<string, any>;
const manifests: Manifest[] = readdirSync(K8S)
  .filter((f) => f.endsWith('.yaml'))
  .sort()
  .flatMap((file) => parseAllDocuments(readFileSync(join(K8S, file), 'utf8')).map((d) => ({ ...(d.toJS() as Manifest), __file: file })));
const byKind = (kind: string) => {
  const found = manifests.filter((m) => m.kind === kind);
  expect(found, kind).toHaveLength(1);
  return found[0]!;
};

describe('deploy recipe (Dockerfile, deploy/k8s)', () => {
  it('every manifest is a valid Kubernetes object of a known kind', () => {
    expect(manifests.length).toBeGreaterThanOrEqual(5);
    for (const { __file, ...manifest } of manifests) {
      const Model = MODELS[`${manifest.apiVersion}/${manifest.kind}`];
      expect(Model, `${__file}: ${manifest.apiVersion} ${manifest.kind} has no model here`).toBeDefined();
      expect(() => new Model!(manifest as never).validate(), __file).not.toThrow();
    }
    // The validator does catch a broken object.
    const broken = structuredClone(byKind('Deployment'));
    delete broken.__file;
    broken.spec.template.spec.containers[0].ports[0].containerPort = 'http';
    expect(() => new Deployment(broken).validate()).toThrow();
  });

  it("the pods' configuration starts (no half-embedded setup, no unknown settings)", () => {
    const env = { ...byKind('ConfigMap').data, ...byKind('Secret').stringData };
    const config = loadConfig(env, { service: true });
    expect(checkStart(config, env)).toEqual({ problems: [], warnings: [] });
    expect(config.embedded).toEqual({ database: false, redis: false, kafka: false });
  });

  it('ports, probes, scrape annotations, drain and termination grace agree with the configuration and the Dockerfile', () => {
    const config = loadConfig({ ...byKind('ConfigMap').data, ...byKind('Secret').stringData }, { service: true });
    const deployment = byKind('Deployment');
    const pod = deployment.spec.template;
    const container = pod.spec.containers[0];
    const http = container.ports.find((p: Manifest) => p.name === 'http');
    expect(http.containerPort).toBe(config.PORT);
    expect(readFileSync(join(ROOT, 'Dockerfile'), 'utf8')).toMatch(new RegExp(`^EXPOSE ${config.PORT}$`, 'm'));
    expect(container.args).toEqual(['start']);

    expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
    expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(container.startupProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
    // The readiness probe sees the drain's 503 before the drain ends.
    const noticeMs = container.readinessProbe.periodSeconds * container.readinessProbe.failureThreshold * 1000;
    expect(noticeMs).toBeLessThan(config.DRAIN_MS);
    // Kubernetes waits for the drain and the stop, with a margin, before SIGKILL.
    expect(pod.spec.terminationGracePeriodSeconds * 1000).toBeGreaterThanOrEqual(config.DRAIN_MS + config.SHUTDOWN_TIMEOUT_MS + 5_000);

    expect(pod.metadata.annotations).toMatchObject({
      'prometheus.io/scrape': 'true',
      'prometheus.io/port': String(config.PORT),
      'prometheus.io/path': '/metrics',
    });

    const labels = pod.metadata.labels;
    expect(deployment.spec.selector.matchLabels).toEqual(labels);
    expect(byKind('Service').spec.selector).toEqual(labels);
    expect(byKind('Service').spec.ports[0].targetPort).toBe('http');
    expect(byKind('PodDisruptionBudget').spec.selector.matchLabels).toEqual(labels);
    expect(byKind('PodDisruptionBudget').spec.maxUnavailable).toBeLessThan(deployment.spec.replicas);
    const refs = container.envFrom.map((e: Manifest) => e.configMapRef?.name ?? e.secretRef?.name);
    expect(refs).toEqual([byKind('ConfigMap').metadata.name, byKind('Secret').metadata.name]);
  });

  it('the image\'s memory settings fit the pod\'s memory limit (docs/stream-health.md, "Capacity")', () => {
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    const nodeOptions = /^ENV NODE_OPTIONS="([^"]*)"/m.exec(dockerfile)?.[1] ?? '';
    const oldSpaceMb = Number(/--max-old-space-size=(\d+)/.exec(nodeOptions)?.[1]);
    const semiSpaceMb = Number(/--max-semi-space-size=(\d+)/.exec(nodeOptions)?.[1]);
    expect(oldSpaceMb).toBeGreaterThan(0);
    expect(semiSpaceMb).toBeGreaterThan(0);
    expect(dockerfile).toMatch(/MALLOC_ARENA_MAX=\d+/);
    const limit = String(byKind('Deployment').spec.template.spec.containers[0].resources.limits.memory);
    const limitMb = Number(/^(\d+)Mi$/.exec(limit)?.[1]);
    expect(limitMb, `memory limit ${limit} in Mi`).toBeGreaterThan(0);
    // The heap (old space + three semi-spaces) leaves the container room for code, buffers and malloc.
    expect(oldSpaceMb + 3 * semiSpaceMb).toBeLessThanOrEqual(limitMb / 2);
  });
});
