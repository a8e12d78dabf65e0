/**
 * `floe apply nixos|nix-darwin|home-manager`: resolve a published configuration to its store path,
 * fetch its closure from the cache (nothing is evaluated on the target), point the profile at it,
 * and run its activation, as `fh apply` does.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CliError, apiRequest, nixConfigDir, parseFlakeRef, type ClientOptions } from './client.js';

export type ApplyTarget = 'nixos' | 'nix-darwin' | 'home-manager';

export interface ApplyOptions {
  target: ApplyTarget;
  ref: string;
  profile?: string;
  verb: 'switch' | 'boot' | 'test' | 'dry-activate';
  netrc?: string;
  dryRun: boolean;
  log: (line: string) => void;
}

function defaultAttr(target: ApplyTarget): string {
  const host = os.hostname().split('.')[0];
  if (target === 'nixos') return `nixosConfigurations.${host}`;
  if (target === 'nix-darwin') return `darwinConfigurations.${host}`;
  return `homeConfigurations.${os.userInfo().username}`;
}

function defaultProfile(target: ApplyTarget): string {
  if (target === 'home-manager')
    return path.join(
      process.env.XDG_STATE_HOME || path.join(os.homedir(), '.local', 'state'),
      'nix',
      'profiles',
      'home-manager',
    );
  return '/nix/var/nix/profiles/system';
}

function run(cmd: string, args: string[], log: (l: string) => void): Promise<void> {
  log(`$ ${[cmd, ...args].join(' ')}`);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', (e) => reject(new CliError(`cannot run ${cmd}: ${e.message}`)));
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new CliError(`${cmd} failed with exit code ${code}`)),
    );
  });
}

export async function apply(client: ClientOptions, opts: ApplyOptions): Promise<string> {
  const ref = parseFlakeRef(opts.ref);
  const { org, flake } = ref;
  const req = ref.requirement ?? '*';
  const attr = ref.attribute ?? defaultAttr(opts.target);
  const resolved = await apiRequest<{ version: string; storePath: string }>(
    client,
    'GET',
    `/api/v1/flakes/${encodeURIComponent(org)}/${encodeURIComponent(flake)}/resolve/${encodeURIComponent(req)}/output/${encodeURIComponent(attr)}`,
  );
  opts.log(`${org}/${flake} ${resolved.version} ${attr} is ${resolved.storePath}`);
  const info = await apiRequest<{ substituter: string; publicKey: string }>(client, 'GET', '/api/v1/cache/info');
  const netrc = opts.netrc ?? path.join(nixConfigDir(), 'netrc');
  const realise = [
    '--realise',
    resolved.storePath,
    '--option',
    'extra-substituters',
    info.substituter,
    '--option',
    'extra-trusted-public-keys',
    info.publicKey,
    ...(existsSync(netrc) ? ['--option', 'netrc-file', netrc] : []),
  ];
  const profile = opts.profile ?? defaultProfile(opts.target);
  const activation =
    opts.target === 'nixos'
      ? [[path.join(resolved.storePath, 'bin', 'switch-to-configuration'), opts.verb]]
      : opts.target === 'nix-darwin'
        ? [[path.join(resolved.storePath, 'activate-user')], [path.join(resolved.storePath, 'activate')]]
        : [[path.join(resolved.storePath, 'activate')]];
  if (opts.dryRun) {
    opts.log(`would run: nix-store ${realise.join(' ')}`);
    opts.log(`would run: nix-env --profile ${profile} --set ${resolved.storePath}`);
    for (const a of activation) opts.log(`would run: ${a.join(' ')}`);
    return resolved.storePath;
  }
  await run('nix-store', realise, opts.log);
  if (opts.verb !== 'test' && opts.verb !== 'dry-activate')
    await run('nix-env', ['--profile', profile, '--set', resolved.storePath], opts.log);
  for (const [cmd, ...args] of activation) {
    if (!existsSync(cmd!)) throw new CliError(`${cmd} does not exist: is ${attr} a ${opts.target} configuration?`);
    await run(cmd!, args, opts.log);
  }
  return resolved.storePath;
}
