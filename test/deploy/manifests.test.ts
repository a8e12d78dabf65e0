/**
 * The scale-out examples (deploy/compose.yaml, deploy/k8s/) against what Floe reads: every FLOE_* name is
 * a setting of src/config.ts (SERVER_SETTINGS, itself checked against config.ts), the values they set load
 * through loadConfig as PostgreSQL + S3 listening on every interface, and the orchestration settings fit
 * the server's (probes on /readyz and /healthz, grace periods above FLOE_SHUTDOWN_GRACE_SECONDS, the
 * image's user, secret references that exist). No YAML parser is installed: the files keep to a plain
 * subset (one `key: value` per line, flow maps only for secretKeyRef and probes) that these checks read.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { SERVER_SETTINGS } from '../../src/config-file.js';
import { REPO_ROOT } from '../helpers/server.js';

const read = (file: string) => readFile(path.join(REPO_ROOT, 'deploy', file), 'utf8');
/** Variables the AWS SDK reads for the S3 client (not Floe's own settings). */
const AWS_SDK = ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_REGION'];
const unquote = (v: string) => v.trim().replace(/^"(.*)"$/, '$1');
const settings = new Set<string>(SERVER_SETTINGS);

function expectKnown(names: string[]): void {
  expect(names.filter((n) => !settings.has(n) && !AWS_SDK.includes(n))).toEqual([]);
}

/** The lines of one top-level service of compose.yaml (two-space indented block). */
function composeService(text: string, name: string): string {
  const m = new RegExp(`^  ${name}:\\n((?:(?:    .*)?\\n)*)`, 'm').exec(text);
  if (!m) throw new Error(`no service ${name}`);
  return m[1]!;
}

function containerfile(): Promise<string> {
  return readFile(path.join(REPO_ROOT, 'deploy/container/Containerfile'), 'utf8');
}

describe('deploy/compose.yaml', () => {
  it('sets only settings Floe reads, and they load as replicas on PostgreSQL + S3', async () => {
    const floe = composeService(await read('compose.yaml'), 'floe');
    const envBlock = /^ {4}environment:\n((?: {6}.*\n)*)/m.exec(floe)![1]!;
    const env = Object.fromEntries(
      [...envBlock.matchAll(/^ {6}([A-Z][A-Z0-9_]*): (.*)$/gm)]
        // ${VAR:?message} is filled in from .env at `compose up`: stand in a plausible value.
        .map(([, k, v]) => [
          k!,
          unquote(v!).replace(/\$\{[A-Z_]+(:\?[^}]*)?\}/g, k === 'FLOE_PUBLIC_URL' ? 'https://cache.example.org' : 'x'),
        ]),
    );
    expectKnown(Object.keys(env));
    const config = loadConfig({}, env);
    expect(config.databaseUrl).toMatch(/^postgres:\/\/floe:x@postgres:5432\/floe$/);
    expect(config.s3).toMatchObject({ bucket: 'floe-nars', endpoint: 'http://minio:9000', forcePathStyle: true });
    expect(config.listen).toEqual({ host: '0.0.0.0', port: 8080 });
    expect(config.publicUrl).toBe('https://cache.example.org');
    expect(env.AWS_ACCESS_KEY_ID).toBeDefined();

    expect(Number(/^ {6}replicas: (\d+)$/m.exec(floe)![1])).toBeGreaterThan(1);
    const stop = Number(/^ {4}stop_grace_period: (\d+)s$/m.exec(floe)![1]);
    expect(stop).toBeGreaterThan(config.shutdownGraceSeconds);
    // Each replica keeps its own spool: no named volume on the data directory.
    expect(floe).not.toMatch(/^ {6}- [\w-]+:\/var\/lib\/floe/m);
    expect(floe).toMatch(/^ {6}dockerfile: \.\.\/Containerfile$/m);
  });
});

describe('deploy/k8s', () => {
  it('reads PostgreSQL and S3 settings from the Secret, all of them settings Floe reads', async () => {
    const deployment = await read('k8s/deployment.yaml');
    const secret = await read('k8s/secret.example.yaml');
    const secretName = /^metadata:\n {2}name: (\S+)$/m.exec(secret)![1];
    const stringData = Object.fromEntries(
      [...secret.matchAll(/^ {2}([A-Z][A-Z0-9_]*): (.*)$/gm)].map(([, k, v]) => [k!, unquote(v!)]),
    );
    const values = Object.fromEntries(
      [...deployment.matchAll(/^ +- name: ([A-Z][A-Z0-9_]*)\n +value: (.*)$/gm)].map(([, k, v]) => [k!, unquote(v!)]),
    );
    const refs = [
      ...deployment.matchAll(
        /^ +- name: ([A-Z][A-Z0-9_]*)\n +valueFrom:\n +secretKeyRef: \{ name: (\S+), key: ([A-Z0-9_]+)(, optional: true)? \}$/gm,
      ),
    ].map(([, env, name, key, optional]) => ({ env: env!, name: name!, key: key!, optional: !!optional }));
    const allNames = [...deployment.matchAll(/^ +- name: ([A-Z][A-Z0-9_]*)$/gm)].map((m) => m[1]!);
    expect(allNames.sort()).toEqual([...Object.keys(values), ...refs.map((r) => r.env)].sort()); // every variable was read above
    expectKnown(allNames);
    expectKnown(Object.keys(stringData));
    for (const ref of refs) {
      expect(ref.name).toBe(secretName);
      expect(ref.key).toBe(ref.env);
      expect(Object.keys(stringData)).toContain(ref.key);
    }
    // The secrets are secret: none of them is a plain value in the Deployment.
    for (const name of ['FLOE_DATABASE_URL', 'FLOE_S3_BUCKET', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']) {
      expect(refs.map((r) => r.env)).toContain(name);
    }
    const env = { ...values, ...Object.fromEntries(refs.map((r) => [r.env, stringData[r.key]!]).filter(([, v]) => v)) };
    const config = loadConfig({}, env);
    expect(config.databaseUrl).toMatch(/^postgres:\/\//);
    expect(config.s3).toMatchObject({ bucket: 'floe-nars', region: 'eu-west-1' });
    expect(config.listen).toEqual({ host: '0.0.0.0', port: 8080 });
    expect(config.trustedProxies).toEqual(['10.0.0.0/8']);
  });

  it('probes /readyz and /healthz, outlasts the drain, and runs as the image user behind a Service', async () => {
    const deployment = await read('k8s/deployment.yaml');
    const service = await read('k8s/service.yaml');
    expect(Number(/^ {2}replicas: (\d+)$/m.exec(deployment)![1])).toBeGreaterThan(1);
    expect(deployment).toMatch(/^ +readinessProbe:\n +httpGet: \{ path: \/readyz, port: http \}$/m);
    expect(deployment).toMatch(/^ +livenessProbe:\n +httpGet: \{ path: \/healthz, port: http \}$/m);

    const grace = Number(/^ +- name: FLOE_SHUTDOWN_GRACE_SECONDS\n +value: "(\d+)"$/m.exec(deployment)![1]);
    const preStop = Number(/command: \["\/bin\/sleep", "(\d+)"\]/.exec(deployment)?.[1] ?? 0);
    const termination = Number(/^ +terminationGracePeriodSeconds: (\d+)$/m.exec(deployment)![1]);
    expect(termination).toBeGreaterThan(grace + preStop);

    // The container port is the one FLOE_LISTEN binds, and the Service reaches it by name.
    expect(deployment).toMatch(/^ +- name: http\n +containerPort: 8080$/m);
    expect(service).toMatch(/^ +targetPort: http$/m);
    const label = /^ {2}selector:\n {4}matchLabels:\n {6}(\S+: \S+)$/m.exec(deployment)![1]!;
    expect(/^ {2}selector:\n {4}(\S+: \S+)$/m.exec(service)![1]).toBe(label);
    expect(deployment).toMatch(new RegExp(`^  template:\\n    metadata:\\n      labels:\\n        ${label}$`, 'm'));

    const uid = /useradd --system --uid (\d+)/.exec(await containerfile())![1];
    expect(deployment).toMatch(new RegExp(`^ +runAsUser: ${uid}$`, 'm'));
    expect(deployment).toMatch(/^ +- name: data\n +mountPath: \/var\/lib\/floe$/m);
  });
});

describe('deploy/container/Containerfile', () => {
  it('defaults match the settings Floe reads and the probes the manifests use', async () => {
    const text = await containerfile();
    const envs = [...text.matchAll(/^(?:ENV| {3}) +(FLOE_[A-Z0-9_]+)=(\S+)/gm)].map(([, k, v]) => [k!, v!] as const);
    expectKnown(envs.map(([k]) => k));
    const config = loadConfig({}, Object.fromEntries(envs));
    expect(config.listen).toEqual({ host: '0.0.0.0', port: 8080 });
    expect(config.dataDir).toBe('/var/lib/floe');
    expect(text).toMatch(/^VOLUME \/var\/lib\/floe$/m);
    expect(text).toMatch(/^USER floe$/m);
    expect(text).toMatch(/^HEALTHCHECK [\s\S]*\/healthz/m);
  });
});
