/**
 * `floe push --logs` with real Nix 2.8: the closure goes up, then the local build logs of the
 * derivations behind it, readable by `nix log` wherever the outputs are (test/nix/protocol.ts
 * covers reading them with Nix itself).
 */
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicAuth, createOrg, createToken, FLOE_BIN, startFloe, type TestServer } from '../helpers/server.js';
import { BASE_NIX_CONFIG, fixtureDir, hostNix, requireNix } from '../helpers/nix.js';

const exec = promisify(execFile);
const version = await requireNix(hostNix);

describe.skipIf(!version)('floe push --logs', () => {
  let server: TestServer;
  let dir: string;
  beforeAll(async () => {
    server = await startFloe();
    dir = await fixtureDir('push-logs');
    await createOrg(server, 'acme');
  });
  afterAll(async () => {
    await server?.cleanup();
  });

  it('uploads the build logs of the pushed closure after its paths', async () => {
    const seed = `pl${Date.now().toString(36)}`;
    const expr = path.join(dir, 'logged.nix');
    await writeFile(
      expr,
      `{ seed }:
let dep = derivation { name = "dep-\${seed}"; builder = "/bin/sh"; args = ["-c" "echo dep-log-\${seed}; echo dep > $out"]; PATH = "/usr/bin:/bin"; system = builtins.currentSystem; };
in derivation { name = "top-\${seed}"; builder = "/bin/sh"; args = ["-c" "echo top-log-\${seed}; echo \${dep} > $out"]; PATH = "/usr/bin:/bin"; system = builtins.currentSystem; }
`,
    );
    const cacheHome = path.join(dir, 'cache-home');
    const built = await hostNix.run(['nix-build', expr, '--argstr', 'seed', seed, '--no-out-link'], { cacheHome });
    expect(built.code, built.stderr).toBe(0);
    const out = built.stdout.trim().split('\n').at(-1)!;
    const token = (await createToken(server, 'acme', ['read', 'write'])).token;
    const env = {
      ...process.env,
      NIX_CONFIG: BASE_NIX_CONFIG,
      FLOE_SERVER: server.url,
      FLOE_TOKEN: token,
      XDG_CACHE_HOME: cacheHome,
    };
    const pushed = await exec(process.execPath, [FLOE_BIN, 'push', '--logs', '--json', out], { env });
    const summary = JSON.parse(pushed.stdout) as { uploaded: number; logs: { uploaded: number; failed: unknown[] } };
    expect(summary.uploaded).toBe(2);
    expect(summary.logs).toMatchObject({ uploaded: 2, failed: [] });

    const reader = (await createToken(server, 'acme', ['read'])).token;
    const dep = (await readFile(out, 'utf8')).trim();
    for (const [p, line] of [
      [out, `top-log-${seed}`],
      [dep, `dep-log-${seed}`],
    ] as const) {
      const drv = (await hostNix.run(['nix-store', '--query', '--deriver', p], { cacheHome })).stdout.trim();
      const res = await fetch(`${server.url}/cache/log/${path.basename(drv)}`, {
        headers: { Authorization: basicAuth(reader) },
      });
      expect(res.status).toBe(200);
      expect(await res.text()).toContain(line);
    }
    // Pushing again sends no path and replaces the logs with the same text (idempotent).
    const again = JSON.parse(
      (await exec(process.execPath, [FLOE_BIN, 'push', '--logs', '--json', out], { env })).stdout,
    ) as { uploaded: number; logs: { uploaded: number } };
    expect(again).toMatchObject({ uploaded: 0, logs: { uploaded: 2 } });
  });
});
