/**
 * `floe apply` end to end with real Nix: a published "NixOS system" whose closure exists only in
 * the cache is fetched (no evaluation), the profile is set, and its activation script runs.
 */
import { execFile } from 'node:child_process';
import { readFileSync, readlinkSync, writeFileSync, mkdirSync, mkdtempSync } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLOE_BIN, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { BASE_NIX_CONFIG, fixtureDir, hostNix, requireNix, writeNetrc } from '../helpers/nix.js';

const exec = promisify(execFile);
const version = await requireNix(hostNix);
let server: TestServer;
let dir: string;
let system: string;
let reader: string;

async function publish(token: string, storePath: string): Promise<void> {
  const root = mkdtempSync('/tmp/floe-apply-flake-');
  mkdirSync(path.join(root, 'source'));
  writeFileSync(path.join(root, 'source', 'flake.nix'), '{ outputs = _: { }; }\n');
  await exec('tar', ['-czf', path.join(root, 't.tar.gz'), '-C', root, 'source']);
  const bytes = readFileSync(path.join(root, 't.tar.gz'));
  const sha = createHash('sha256').update(bytes).digest('base64');
  const inventory = {
    nixosConfigurations: { children: { web: { what: 'NixOS configuration', outputs: { out: storePath } } } },
    darwinConfigurations: { children: { mac: { what: 'nix-darwin configuration', outputs: { out: storePath } } } },
    homeConfigurations: { children: { me: { what: 'Home Manager configuration', outputs: { out: storePath } } } },
  };
  const headers = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
  const stage = await fetch(`${server.url}/upload/acme/infra/1.0.0/${bytes.length}/${sha}`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ visibility: 'private', outputs: { version: 1, docs: {}, inventory } }),
  });
  const { s3_upload_url, uuid } = (await stage.json()) as { s3_upload_url: string; uuid: string };
  await fetch(s3_upload_url, { method: 'PUT', body: new Uint8Array(bytes) });
  expect((await fetch(`${server.url}/publish/${uuid}`, { method: 'POST', headers })).status).toBe(200);
}

beforeAll(async () => {
  if (!version) return;
  server = await startFloe();
  dir = await fixtureDir('apply');
  await createOrg(server, 'acme');
  const rw = (await createToken(server, 'acme', ['read', 'write'])).token;
  reader = (await createToken(server, 'acme', ['read'])).token;
  const publisher = (await createToken(server, 'acme', ['publish'])).token;
  const expr = path.join(dir, 'system.nix');
  writeFileSync(
    expr,
    `let etc = derivation { name = "etc-${Date.now()}"; builder = "/bin/sh"; args = [ "-c" "echo motd > $out" ]; PATH = "/usr/bin:/bin"; system = builtins.currentSystem; };
in derivation { name = "nixos-system-web-${Date.now()}"; builder = "/bin/sh"; PATH = "/usr/bin:/bin"; system = builtins.currentSystem;
  args = [ "-c" "mkdir -p $out/bin; echo \${etc} > $out/etc; printf '#!/bin/sh\\\\necho \\"activated $1\\" > ${dir}/activated\\\\n' > $out/bin/switch-to-configuration; printf '#!/bin/sh\\\\necho activate >> ${dir}/activate.log\\\\n' > $out/activate; printf '#!/bin/sh\\\\necho activate-user >> ${dir}/activate.log\\\\n' > $out/activate-user; chmod +x $out/bin/switch-to-configuration $out/activate $out/activate-user" ]; }\n`,
  );
  const built = await hostNix.run(['nix-build', expr, '--no-out-link'], { cacheHome: path.join(dir, 'b') });
  if (built.code !== 0) throw new Error(built.stderr);
  system = built.stdout.trim().split('\n').at(-1)!;
  const env = { ...process.env, NIX_CONFIG: BASE_NIX_CONFIG, FLOE_SERVER: server.url, FLOE_TOKEN: rw };
  await exec(process.execPath, [FLOE_BIN, 'push', system], { env });
  await publish(publisher, system);
  // The target machine has none of it: only the cache does.
  const closure = (await hostNix.run(['nix-store', '-qR', system], { cacheHome: path.join(dir, 'b') })).stdout
    .trim()
    .split('\n');
  const del = await hostNix.run(['nix-store', '--delete', ...closure], { cacheHome: path.join(dir, 'b') });
  if (del.code !== 0) throw new Error(del.stderr);
});

afterAll(async () => {
  await server?.cleanup();
});

describe.skipIf(!version)('floe apply', () => {
  const env = () => ({
    ...process.env,
    NIX_CONFIG: BASE_NIX_CONFIG,
    FLOE_SERVER: server.url,
    FLOE_TOKEN: reader,
    XDG_CACHE_HOME: path.join(dir, 'target-cache'),
  });

  it('--dry-run shows the plan and changes nothing', async () => {
    const r = await exec(
      process.execPath,
      [
        FLOE_BIN,
        'apply',
        'nixos',
        'acme/infra/1#nixosConfigurations.web',
        '--profile',
        path.join(dir, 'profiles', 'system'),
        '--dry-run',
      ],
      { env: env() },
    );
    expect(r.stderr).toContain(`would run: nix-env --profile ${path.join(dir, 'profiles', 'system')} --set ${system}`);
    expect(r.stderr).toContain(`would run: ${system}/bin/switch-to-configuration switch`);
  });

  it('fetches the closure from the cache, sets the profile and activates', async () => {
    const netrc = await writeNetrc(dir, 'netrc', reader);
    mkdirSync(path.join(dir, 'profiles'), { recursive: true });
    const r = await exec(
      process.execPath,
      [
        FLOE_BIN,
        'apply',
        'nixos',
        'acme/infra/1#nixosConfigurations.web',
        '--profile',
        path.join(dir, 'profiles', 'system'),
        '--netrc',
        netrc,
      ],
      { env: env() },
    );
    expect(r.stderr).toMatch(/acme\/infra 1\.0\.0 nixosConfigurations\.web is \/nix\/store\//);
    expect(readFileSync(path.join(dir, 'activated'), 'utf8')).toBe('activated switch\n');
    expect(readlinkSync(path.join(dir, 'profiles', readlinkSync(path.join(dir, 'profiles', 'system'))))).toBe(system);
  });

  it('nix-darwin and Home Manager run their own activation', async () => {
    const netrc = await writeNetrc(dir, 'netrc2', reader);
    for (const [target, attr, expected] of [
      ['home-manager', 'homeConfigurations.me', 'activate\n'],
      ['nix-darwin', 'darwinConfigurations.mac', 'activate\nactivate-user\nactivate\n'],
    ] as const) {
      await exec(
        process.execPath,
        [
          FLOE_BIN,
          'apply',
          target,
          `acme/infra/1#${attr}`,
          '--profile',
          path.join(dir, 'profiles', target),
          '--netrc',
          netrc,
        ],
        { env: env() },
      );
      expect(readFileSync(path.join(dir, 'activate.log'), 'utf8')).toBe(expected);
    }
  });

  it('names what is wrong', async () => {
    const bad = await exec(
      process.execPath,
      [FLOE_BIN, 'apply', 'nixos', 'acme/infra/1#nixosConfigurations.db', '--dry-run'],
      { env: env() },
    ).catch((e) => e as { stderr: string });
    expect(bad.stderr).toMatch(/has no output nixosConfigurations\.db/);
    const target = await exec(process.execPath, [FLOE_BIN, 'apply', 'windows', 'acme/infra/1'], { env: env() }).catch(
      (e) => e as { stderr: string },
    );
    expect(target.stderr).toMatch(/target must be nixos, nix-darwin or home-manager/);
  });
});
