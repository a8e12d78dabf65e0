/**
 * The container image (deploy/container/Containerfile) built here with Debian's podman from base images
 * made by deploy/container/local-bases.sh (a debootstrap rootfs: no registry can be pulled from), then run
 * with a named data volume: its health check passes, real Nix 2.8 pushes a closure with `nix copy --to`
 * using a token made with the admin token found in the volume, the closure substitutes into a fresh store
 * with signatures required, and `podman stop` (SIGTERM) ends the container with exit code 0 after draining.
 *
 * The first build takes several minutes (debootstrap, apt-get in the build stage, native modules), so the
 * test runs only with FLOE_TEST_CONTAINER=1 and a working podman. The base images stay between runs.
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, createOrg, createToken, freePort, type TestServer } from '../helpers/server.js';
import {
  buildClosure,
  fixtureDir,
  hostNix,
  requireNix,
  writeClosureExpr,
  writeNetrc,
  copyFromCacheArgs,
} from '../helpers/nix.js';

const exec = promisify(execFile);
const wanted = /^(1|true|yes)$/i.test(process.env.FLOE_TEST_CONTAINER ?? '');
const podmanWorks =
  wanted && spawnSync('podman', ['--version']).status === 0 && spawnSync('runc', ['--version']).status === 0;
if (!wanted)
  console.warn('container.test.ts skipped: set FLOE_TEST_CONTAINER=1 to build and run the image (several minutes)');
else if (!podmanWorks)
  console.warn('container.test.ts skipped: podman and runc are needed (apt-get install -y podman runc)');
const nixVersion = podmanWorks ? await requireNix(hostNix) : undefined;

const IMAGE = 'localhost/floe:test';
/** Podman as this machine allows it: runc (crun refuses these cgroups), no RLIMIT_NOFILE changes (see .ci/run). */
const PODMAN = ['--runtime', 'runc'];
let dir: string;
let env: NodeJS.ProcessEnv;
const suffix = `${process.pid}-${Date.now().toString(36)}`;
const container = `floe-test-${suffix}`;
const volume = `floe-test-data-${suffix}`;
let started = false;

const podman = (args: string[], timeout = 120_000) =>
  exec('podman', [...PODMAN, ...args], { env, timeout, maxBuffer: 64 << 20 });

/** Builds the image from `npm pack` of this checkout (the suite has just built dist/). */
async function buildImage(): Promise<void> {
  await exec(path.join(REPO_ROOT, 'deploy/container/local-bases.sh'), [], {
    cwd: REPO_ROOT,
    env: { ...env, PODMAN: `podman ${PODMAN.join(' ')}` },
    timeout: 600_000,
  });
  const context = path.join(dir, 'context');
  await mkdir(context);
  await exec(process.execPath, [path.join(REPO_ROOT, 'scripts/build-info.mjs')]);
  await exec('npm', ['pack', '--ignore-scripts', '--pack-destination', context], {
    cwd: REPO_ROOT,
    maxBuffer: 64 << 20,
  });
  // Behind an intercepting proxy (this machine's egress), npm in the build stage needs its CA; the runtime
  // stage does not receive it.
  const cas = existsSync('/usr/local/share/ca-certificates') ? await readdir('/usr/local/share/ca-certificates') : [];
  const pem = await Promise.all(
    cas
      .filter((f) => f.endsWith('.crt'))
      .map((f) => readFile(path.join('/usr/local/share/ca-certificates', f), 'utf8')),
  );
  if (pem.length) await writeFile(path.join(context, 'extra-ca.pem'), pem.join('\n'));
  await podman(
    [
      'build',
      '--network',
      'host',
      '--format',
      'docker',
      '--build-arg',
      'BASE_IMAGE=localhost/floe-debian:bookworm',
      '--build-arg',
      'NODE_IMAGE=localhost/floe-node:24',
      '-f',
      path.join(REPO_ROOT, 'deploy/container/Containerfile'),
      '-t',
      IMAGE,
      context,
    ],
    900_000,
  );
}

async function waitHealthy(): Promise<void> {
  const deadline = Date.now() + 90_000;
  for (;;) {
    // The image's own HEALTHCHECK command, run on demand (no systemd here to run its timer).
    const r = spawnSync('podman', [...PODMAN, 'healthcheck', 'run', container], { env, encoding: 'utf8' });
    if (r.status === 0) return;
    if (Date.now() > deadline) throw new Error(`not healthy: ${r.stdout}${r.stderr}\n${await logs()}`);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

const logs = async () =>
  (await podman(['logs', container]).catch((e: Error) => ({ stdout: '', stderr: e.message }))).stderr;

beforeAll(async () => {
  if (!podmanWorks) return;
  dir = await fixtureDir('container');
  const conf = path.join(dir, 'containers.conf');
  await writeFile(conf, '[containers]\ndefault_ulimits = []\n');
  env = { ...process.env, CONTAINERS_CONF: conf };
  await buildImage();
}, 1_200_000);

afterAll(async () => {
  if (!podmanWorks) return;
  if (started) await podman(['rm', '-f', '-t', '0', container]).catch(() => undefined);
  await podman(['volume', 'rm', '-f', volume]).catch(() => undefined);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe.skipIf(!podmanWorks)('the container image', () => {
  it('runs as an unprivileged user with the data volume, listening on every interface by default', async () => {
    const [inspected] = JSON.parse((await podman(['image', 'inspect', IMAGE])).stdout) as Array<{
      Config: { User: string; Env: string[]; Volumes: Record<string, object> };
      Healthcheck?: { Test: string[] };
    }>;
    const { User: user, Env: imageEnv, Volumes: volumes } = inspected!.Config;
    const health = inspected!.Healthcheck;
    expect(user).toBe('floe');
    expect(imageEnv).toEqual(expect.arrayContaining(['FLOE_DATA_DIR=/var/lib/floe', 'FLOE_LISTEN=0.0.0.0:8080']));
    expect(Object.keys(volumes)).toEqual(['/var/lib/floe']);
    expect(health?.Test.join(' ')).toContain('/healthz');
    // Only the installed package: no sources, tests or dev dependencies, and Node 24.
    const look = await podman([
      'run',
      '--rm',
      '--network',
      'host',
      '--entrypoint',
      '/bin/sh',
      IMAGE,
      '-c',
      'id -u; ls /opt/floe/lib/node_modules/floe; ls /opt/floe/lib/node_modules/floe/node_modules; node --version',
    ]);
    const lines = look.stdout.trim().split('\n');
    expect(lines[0]).not.toBe('0');
    expect(lines).toContain('dist');
    expect(lines).toContain('better-sqlite3');
    for (const absent of ['src', 'test', 'bench', 'typescript', 'vitest', 'tsconfig.json'])
      expect(lines).not.toContain(absent);
    expect(lines.at(-1)).toMatch(/^v24\./);
  }, 120_000);

  it.skipIf(!nixVersion)(
    'serves a real Nix 2.8 push and substitution, and drains on SIGTERM with exit code 0',
    async () => {
      const port = await freePort();
      const url = `http://127.0.0.1:${port}`;
      await podman(['volume', 'create', volume]);
      await podman([
        'run',
        '-d',
        '--name',
        container,
        '--network',
        'host',
        '--health-interval',
        'disable',
        '-e',
        `FLOE_LISTEN=127.0.0.1:${port}`,
        '-v',
        `${volume}:/var/lib/floe`,
        IMAGE,
      ]);
      started = true;
      await waitHealthy();

      // The admin token is in the volume, as the log says.
      const mount = (await podman(['volume', 'inspect', volume, '--format', '{{.Mountpoint}}'])).stdout.trim();
      const adminToken = (await readFile(path.join(mount, 'admin-token'), 'utf8')).trim();
      const server = { url, adminToken } as TestServer;
      await createOrg(server, 'acme');
      const rw = (await createToken(server, 'acme', ['read', 'write'])).token;
      const netrc = await writeNetrc(dir, 'netrc', rw);

      const top = await buildClosure(
        hostNix,
        await writeClosureExpr(dir),
        `container-${suffix}`,
        path.join(dir, 'build'),
      );
      const up = await hostNix.run(['nix', 'copy', '--option', 'netrc-file', netrc, '--to', `${url}/cache`, top], {
        cacheHome: path.join(dir, 'push'),
      });
      expect(up.code, up.stderr).toBe(0);

      const key = (await (await fetch(`${url}/.well-known/nix-cache-key?org=acme`)).text()).trim();
      const store = path.join(dir, 'store');
      const down = await hostNix.run(copyFromCacheArgs({ key, netrc, from: `${url}/cache`, to: store }, top), {
        cacheHome: path.join(dir, 'substitute'),
      });
      expect(down.code, down.stderr).toBe(0);
      expect(existsSync(path.join(store, top, 'data'))).toBe(true);
      const ref = (await readFile(path.join(store, top, 'ref'), 'utf8')).trim();
      expect(existsSync(path.join(store, ref))).toBe(true); // the dependency came along

      // podman stop sends the image's STOPSIGNAL (SIGTERM); -t above the drain grace so it is never SIGKILLed.
      await podman(['stop', '-t', '60', container]);
      const state = (
        await podman(['inspect', container, '--format', '{{.State.ExitCode}}|{{.State.Status}}'])
      ).stdout.trim();
      expect(state).toBe('0|exited');
      expect(await logs()).not.toMatch(/SIGKILL|uncaught/i);
      // The data outlives the container.
      expect(existsSync(path.join(mount, 'floe.sqlite'))).toBe(true);
    },
    300_000,
  );
});
